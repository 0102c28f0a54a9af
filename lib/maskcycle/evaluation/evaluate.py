"""Evaluation: translate the test sets, FID/KID per direction, paired metrics, FID over training,
and the sweep's results table.

    maskcycle evaluate --sweep results/demo/sweep [--curated results/demo/curated] [--every-k-epochs K]
    maskcycle evaluate --reference old_run/checkpoints --curated data/curated --set crop_size=256

For every finished run of a sweep, the reported epoch is chosen on the validation split (valA/valB:
every saved epoch is scored there, `selection`), and only that epoch's test numbers are reported
(the test-set best over epochs is kept beside them as `*_test_best`, optimistic). Then G_AB
translates all of test A and G_BA all of test B (test
images are stored at load_size and resized to the trial's crop_size, as the reference's test.py
does with load_size = crop_size). Fakes are kept as PNG (lossless) under `<trial>/eval/fakes_AB`
and `fakes_BA`.
  FID_AB = FID(G_AB(test A), test B)   FID_BA = FID(G_BA(test B), test A)   (and KID)
Both sides of each comparison are the same size and file format (fid_protocol: a JPEG real set
gets its fakes re-encoded at its quality; `fid_resize` legacy or clean), and every FID records its
protocol, image counts, size and formats, a within-run interval from resampling the test images,
FID at a fixed sample count (`FID_<dir>_ref`) and by sample count. After the runs,
`<sweep>/comparison.csv` compares every trial with the baseline (maskcycle.evaluation.comparison). Paired metrics come
from the curated `pairs_test.csv` (columns domain,file,id,counterpart_path). Saved epoch
checkpoints give FID over training. Everything lands in `<trial>/eval/metrics.json` (scalars for
the final checkpoint, `by_epoch` for the curve), per-pair rows in `<trial>/eval/paired.csv`, and
the scores join the trial's row in `<sweep>/summary.csv` (maskcycle.results).

For the final checkpoint the face-feature metrics (`facedist`: fd_face/kd_face per direction,
identity of G_AB(A) against A and of G_BA(B) against the true face from pairs_test.csv) are added;
they need no download. A one-way trial (CUT, FastCUT, pix2pix: `cfg.directions`) is scored in the
direction it learned only; the other direction's numbers stay empty (None) and it writes no fakes
for it, so a sweep pairs an AB and a BA trial to fill both FID columns (summary.csv's `directions`
column says which trial filled which). Without the Inception weights, FID/KID are recorded as unavailable with the
reason and the rest is still computed. Results already computed for an unchanged checkpoint are reused.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from maskcycle import results
from maskcycle.config import TrialConfig
from maskcycle.data.images import list_images, write_png
from maskcycle.devices import resolve_device
from maskcycle.evaluation import baselines, comparison, external, facedist, fid_protocol, held_out, metrics, selection
from maskcycle.evaluation import fid as fidlib
from maskcycle.evaluation import paired_metrics as paired
from maskcycle.evaluation import statistics as stats
from maskcycle.evaluation.held_out import TestSets, has_split, load_test_sets
from maskcycle.evaluation.translate import translate_crops
from maskcycle.io import atomic_write_text, check_output, utc_now
from maskcycle.models import checkpoints
from maskcycle.params import parse_overrides
from maskcycle.settings import ConfigError, at_least

# The study's numbers (its results table survives only as an image); shown beside ours, labelled.
PUBLISHED = {
    "FID_AB": {"best": 17.07, "low": 17.07, "high": 32.18,
               "best_trial": "batch 16, instance norm, linear lr, lsgan"},
    "FID_BA": {"best": 48.39, "low": 48.39, "high": 261.78,
               "best_trial": "batch 32, instance norm, linear lr, vanilla"},
}
PAIRED_NAMES = ("psnr", "ssim", "psnr_mask", "ssim_mask", "psnr_input", "ssim_input", "mask_fraction", "mask_iou")
EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


# ---------------------------------------------------------------- FID scorer


@dataclasses.dataclass
class Scorer:
    """FID/KID with one feature extractor and one protocol (fid_protocol: resize, matched formats),
    or the reason there is none; real-set features are computed once and reused for every trial and
    epoch. `ref_n`: the fixed sample count of FID_<dir>_ref (comparable across test-set sizes)."""
    extractor: fidlib.FeatureExtractor | None
    unavailable: str | None
    real: dict = dataclasses.field(default_factory=dict)
    resize: str = "legacy"
    ref_n: int = fidlib.FID_REF_N

    @property
    def key(self) -> str:
        if self.extractor is None:
            return "none"
        return f"{self.extractor.name}:{self.extractor.weights}:{self.resize}:{self.ref_n}:{fidlib.PROTOCOL_VERSION}"

    def _features(self, images: np.ndarray) -> np.ndarray:
        return fidlib.features(self.extractor, fid_protocol.resize_for_inception(images, self.resize))

    def score(self, fakes: np.ndarray, real_key: tuple, real: np.ndarray, real_format: dict | None = None,
              detail: bool = False) -> dict:
        """{"FID", "KID", "KID_std", "protocol"} of fakes against real images, the fakes first put in
        the real set's file format (empty when unavailable). With `detail`: also the within-run
        bootstrap interval over the images ("FID_lo", "FID_hi", "FID_se"), FID at `ref_n` images
        ("FID_ref", None when a set is smaller) and FID by sample count ("FID_by_n")."""
        if self.extractor is None:
            return {}
        real_format = real_format or {"format": "array", "jpeg_quality": None}
        fakes, fake_format = fid_protocol.match_format(fakes, real_format)
        if (real_key, self.resize) not in self.real:
            self.real[(real_key, self.resize)] = self._features(real)
        f_fake, f_real = self._features(fakes), self.real[(real_key, self.resize)]
        kid, kid_std = fidlib.kid_from_features(f_fake, f_real)
        out = {"FID": fidlib.fid_from_features(f_fake, f_real), "KID": kid, "KID_std": kid_std,
               "protocol": fid_protocol.describe(self.resize, fakes, real, fake_format, real_format)}
        if detail:
            out.update(fidlib.fid_detail(f_fake, f_real, self.ref_n))
        return out


def _device(device: torch.device | str) -> torch.device:
    from maskcycle.devices import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(device)


def open_scorer(feature_extractor: str = fidlib.INCEPTION, weights: str | None = None, download: bool = True,
                device: torch.device | str = "cpu", fid_resize: str = "legacy", fid_ref_n: int = fidlib.FID_REF_N
                ) -> Scorer:
    """A Scorer; when the Inception weights cannot be found, one that records why (FID unavailable)."""
    fid_protocol.check_resize(fid_resize)
    try:
        return Scorer(fidlib.load_extractor(feature_extractor, weights or None, download, _device(device)), None,
                      resize=fid_resize, ref_n=fid_ref_n)
    except fidlib.InceptionWeightsMissing as exc:
        return Scorer(None, str(exc), resize=fid_resize, ref_n=fid_ref_n)


# ---------------------------------------------------------------- one set of generators


@dataclasses.dataclass
class Snapshot:
    """Generators to evaluate: an epoch (None if unknown), a label, the files, and a loader."""
    epoch: int | None
    label: str
    files: list[Path]
    load: Callable[[torch.device], tuple[torch.nn.Module | None, torch.nn.Module | None]]  # None: not learned


def paired_rows(test: TestSets, fakes_AB: np.ndarray | None, fakes_BA: np.ndarray | None,
                changed: dict | None = None) -> list[dict]:
    """Per pair: the direction, file, id and PSNR/SSIM (whole, mask region, do-nothing baseline).
    For a masked test image the truth is its unmasked face (G_BA); for an unmasked one, its masked
    version (G_AB). The mask region is where the real pair differs. A direction without fakes
    (None: the trial did not learn it) has no rows. `changed` ({direction: per-image maps}, where a
    method acts only in a region: the baselines, compositing) adds `mask_iou`, the IoU of the
    region it changed (map >= 0.5) with the true mask region; nan where it does not apply."""
    changed = changed or {}
    index = {"A": {n: i for i, n in enumerate(test.names_A)}, "B": {n: i for i, n in enumerate(test.names_B)}}
    rows = []
    for pair in test.pairs:
        i = index[pair["domain"]][pair["file"]]
        # a masked source: G_BA should recover the true face; an unmasked one: G_AB its masked version
        fakes, direction = (fakes_BA, "BA") if pair["domain"] == "B" else (fakes_AB, "AB")
        if fakes is None:
            continue
        fake = fakes[i]
        maps = changed.get(direction)
        region = None if maps is None or maps[i] is None else maps[i] >= 0.5
        rows.append({"direction": direction, "file": pair["file"], "id": pair["id"],
                     **paired.translation_metrics(fake, pair["truth"], pair["region"]), **pair["baseline"],
                     "mask_iou": float("nan") if region is None else segment_iou(region, pair["region"])})
    return rows


def segment_iou(a: np.ndarray, b: np.ndarray) -> float:
    from maskcycle.data.segment import iou

    return iou(a, b)


def paired_column(name: str, direction: str) -> str:
    """Column of a paired metric's mean: psnr -> psnr_BA, ssim_mask -> ssim_BA_mask, ..."""
    return metrics.column(name, direction)


def paired_means(rows: list[dict]) -> dict:
    """Means over pairs (finite values only) per direction, named by `paired_column`, and
    `n_pairs_<direction>`."""
    out = {}
    for direction in ("AB", "BA"):
        sub = [r for r in rows if r["direction"] == direction]
        out[f"n_pairs_{direction}"] = len(sub)
        for name in PAIRED_NAMES:
            vals = [r[name] for r in sub if math.isfinite(r[name])]
            out[paired_column(name, direction)] = float(np.mean(vals)) if vals else None
    return out


def evaluate_snapshot(snap: Snapshot, cfg: TrialConfig, test: TestSets, scorer: Scorer, device: torch.device,
                      batch_size: int = 16, progress: bool = False,
                      detail: bool = False) -> tuple[dict, np.ndarray, np.ndarray, list[dict]]:
    """Translate both test sets with one snapshot and score them: (metrics, fakes_AB, fakes_BA, pair rows).
    A non-learned family (no generators) and a composited model go through `translate_crops` too.
    With `detail` (the reported snapshot): within-run intervals, FID at the reference size and by
    sample count, and FID's protocol per direction."""
    gens = dict(zip(("AB", "BA"), snap.load(device)))
    made, changed, left = {}, {}, {}
    for direction, images in (("AB", test.A), ("BA", test.B)):
        if direction not in cfg.directions or (cfg.learned and gens[direction] is None):
            made[direction] = None
            continue
        # every test B image wears a mask: inpaint need not decide whether it does
        lms = test.landmarks(direction[0]) if baselines.needs_landmarks(cfg) else None
        done = translate_crops(gens[direction], cfg, direction, images, lms, batch_size=batch_size,
                               progress=progress, desc=f"{direction} {snap.label}", check_masked=False)
        made[direction] = done.images
        if not cfg.learned:
            left[direction] = sum(n is not None for n in done.notes)
        if done.regional:
            changed[direction] = done.changed
    del gens
    fakes_AB, fakes_BA = made["AB"], made["BA"]
    out: dict = {"epoch": snap.epoch, "checkpoint": snap.label}
    for direction, fakes, real_domain in (("AB", fakes_AB, "B"), ("BA", fakes_BA, "A")):
        real = test.B if real_domain == "B" else test.A
        scores = {} if fakes is None else scorer.score(fakes, (str(test.root), test.split, real_domain, test.size),
                                                       np.asarray(real), test.formats.get(real_domain), detail)
        out[f"FID_{direction}"] = scores.get("FID")
        out[f"KID_{direction}"] = scores.get("KID")
        out[f"KID_{direction}_std"] = scores.get("KID_std")
        if direction in left:  # faces a baseline could not translate (left as they were)
            out[f"n_left_{direction}"] = left[direction]
        if scores:  # every FID says what it compared; the reported one also gets its interval and curve
            out[f"fid_protocol_{direction}"] = scores["protocol"]
        if detail and scores:
            out.update(fid_record(direction, scores, scorer.ref_n))
    rows = paired_rows(test, fakes_AB, fakes_BA, changed)
    out.update(paired_means(rows))
    out.update(metrics.score({"AB": fakes_AB, "BA": fakes_BA}, {"AB": test.B, "BA": test.A},
                             {"AB": _pairs_of(test, fakes_AB, "A"), "BA": _pairs_of(test, fakes_BA, "B")}))
    if detail:
        out.update(paired_intervals(rows))
    return out, fakes_AB, fakes_BA, rows


def fid_record(direction: str, scores: dict, ref_n: int) -> dict:
    """One direction's FID details, flat for summary.csv (interval, reference size, both sets'
    count, size and format, the protocol) plus the nested protocol and sample-count curve."""
    d, proto = direction, scores["protocol"]

    def fmt(side):
        q = side.get("jpeg_quality")
        return side["format"] + (f" q{q}" if q else "")

    return {f"FID_{d}_lo": scores["FID_lo"], f"FID_{d}_hi": scores["FID_hi"], f"FID_{d}_se": scores["FID_se"],
            f"FID_{d}_ref": scores["FID_ref"], "fid_ref_n": ref_n, "fid_resize": proto["resize"],
            f"FID_{d}_n_fake": proto["fake"]["n"], f"FID_{d}_n_real": proto["real"]["n"],
            f"FID_{d}_size": "x".join(map(str, proto["fake"]["size"])),
            f"FID_{d}_format_fake": fmt(proto["fake"]), f"FID_{d}_format_real": fmt(proto["real"]),
            f"fid_protocol_{d}": proto, f"FID_{d}_by_n": scores["FID_by_n"]}


PAIRED_INTERVALS = ("psnr", "ssim", "psnr_mask", "ssim_mask")  # paired means that get a within-run interval


def paired_intervals(rows: list[dict]) -> dict:
    """Within-run bootstrap intervals (over the test pairs) of the paired means: <column>_lo/_hi/_se."""
    out = {}
    for direction in ("AB", "BA"):
        sub = [r for r in rows if r["direction"] == direction]
        for name in PAIRED_INTERVALS:
            if not sub:
                continue
            b = stats.bootstrap_mean([r[name] for r in sub])
            col = paired_column(name, direction)
            out.update({f"{col}_lo": b["lo"], f"{col}_hi": b["hi"], f"{col}_se": b["se"]})
    return out


def _pairs_of(test: TestSets, fakes: np.ndarray | None, domain: str) -> list[metrics.Pair]:
    """(fake, truth, region) of the test pairs whose source is in `domain`."""
    if fakes is None:
        return []
    index = {n: i for i, n in enumerate(test.names_A if domain == "A" else test.names_B)}
    return [(fakes[index[p["file"]]], p["truth"], p["region"]) for p in test.pairs if p["domain"] == domain]


def face_metrics(test: TestSets, fakes_AB: np.ndarray | None, fakes_BA: np.ndarray | None,
                 progress: bool = False) -> dict:
    """fd_face/kd_face per direction and identity: G_AB(A) against A itself; G_BA(B) against the
    true unmasked face where pairs_test.csv knows it, else against its input (`id_reference_BA`).
    A direction without fakes (one-way models) gets no face numbers."""
    from maskcycle.data.faces import FaceModelError

    b_pairs = [p for p in test.pairs if p["domain"] == "B"]
    try:
        cache = test.faces
        for name, images in (("A", test.A), ("B", test.B)):
            if name not in cache:
                cache[name] = facedist.descriptors(np.asarray(images), progress, f"faces test{name}")
        if fakes_BA is not None and b_pairs and "truth_B" not in cache:
            cache["truth_B"] = facedist.descriptors([p["truth"] for p in b_pairs], progress, "faces truth")
        d_AB, miss_AB = facedist.descriptors(fakes_AB, progress, "faces G_AB") if fakes_AB is not None else (None, None)
        d_BA, miss_BA = facedist.descriptors(fakes_BA, progress, "faces G_BA") if fakes_BA is not None else (None, None)
    except FaceModelError as exc:
        return {"face_unavailable_reason": str(exc)}
    out = {"face_unavailable_reason": None, "face_fallback_AB": miss_AB, "face_fallback_BA": miss_BA,
           "face_fallback_test_A": cache["A"][1], "face_fallback_test_B": cache["B"][1]}
    if d_AB is not None:
        out.update(facedist.flat("AB", facedist.distribution_distances(d_AB, cache["B"][0]),
                                 facedist.identity(d_AB, cache["A"][0]), "input"))
    if d_BA is not None:
        if b_pairs:
            index = {n: i for i, n in enumerate(test.names_B)}
            rows = [index[p["file"]] for p in b_pairs]
            ident_BA, ref = facedist.identity(d_BA[rows], cache["truth_B"][0]), "counterpart"
        else:
            ident_BA, ref = facedist.identity(d_BA, cache["B"][0]), "input"
        out.update(facedist.flat("BA", facedist.distribution_distances(d_BA, cache["A"][0]), ident_BA, ref))
    for d, fake, real in (("AB", d_AB, cache["B"][0]), ("BA", d_BA, cache["A"][0])):
        if fake is not None:
            out.update(face_intervals(d, fake, real, out))
    return out


def face_intervals(direction: str, fake: np.ndarray, real: np.ndarray, flat: dict) -> dict:
    """Within-run intervals of one direction's face numbers: fd_face by bootstrap over the images
    (and by sample count), the identity rate's binomial standard error."""
    d = direction
    boot = stats.bootstrap_two_sample(fidlib.fid_from_features, fake, real)
    n_max = min(len(fake), len(real))
    sizes = [n for n in fidlib.CURVE_SIZES if n < n_max] + [n_max]
    out = {f"fd_face_{d}_lo": boot["lo"], f"fd_face_{d}_hi": boot["hi"], f"fd_face_{d}_se": boot["se"],
           f"fd_face_{d}_by_n": stats.subsample_curve(fidlib.fid_from_features, fake, real, sizes, repeats=3)}
    rate, n = flat.get(f"id_rate_{d}"), flat.get(f"id_pairs_{d}")
    if rate is not None and n:
        out[f"id_rate_{d}_se"] = math.sqrt(rate * (1 - rate) / n)
    return out


def _snapshot_key(snap: Snapshot, cfg: TrialConfig, test: TestSets, scorer: Scorer) -> str:
    extra = f"{test.key}|{scorer.key}|{cfg.crop_size}|{snap.label}|{facedist.VERSION}"
    if not cfg.learned or cfg.composite != "none":  # what the image operations depend on
        extra += f"|{baselines.VERSION}|{json.dumps(cfg.to_dict(), sort_keys=True)}"
    return held_out.fingerprint(snap.files, extra)


def _select(snaps: list[Snapshot], final: Snapshot, every_k_epochs: int | None) -> list[Snapshot]:
    """The epochs of the FID-over-training curve: every saved one (None), none but the final (0),
    or every k-th (k > 0); the final checkpoint always."""
    if every_k_epochs is None:
        chosen = list(snaps)
    elif every_k_epochs == 0:
        chosen = []
    elif every_k_epochs > 0:
        chosen = [s for s in snaps if s.epoch is not None and s.epoch % every_k_epochs == 0]
    else:
        raise ValueError(f"every_k_epochs must be None, 0 or positive, got {every_k_epochs}")
    if all(s.label != final.label for s in chosen):
        chosen.append(final)
    return sorted(chosen, key=lambda s: (s.epoch is None, s.epoch or 0))


def evaluate_snapshots(out_dir: Path, name: str, cfg: TrialConfig, snaps: list[Snapshot], final: Snapshot,
                       test: TestSets, scorer: Scorer, every_k_epochs: int | None = None,
                       device: torch.device | str = "cpu", batch_size: int = 16, progress: bool = True,
                       force: bool = False, val: TestSets | None = None, no_val: str = "no validation split") -> dict:
    """Choose the reported snapshot on `val` (selection.choose; the last one without `val`, `no_val`
    saying why), evaluate it and the curve's snapshots on the test sets into `<out_dir>/eval/`, and
    return its metrics.json record. Entries of an earlier run with the same checkpoint, sets and
    extractor are reused."""
    device = _device(device)
    eval_dir = out_dir / "eval"
    path = eval_dir / "metrics.json"
    old = {} if force or not path.is_file() else json.loads(path.read_text())
    t0 = time.perf_counter()
    val_entries, chosen = _validate(snaps, final, cfg, val, scorer, device, batch_size, progress,
                                    {e.get("key"): e for e in old.get("val_by_epoch", [])})
    choice = selection.choose(val_entries, cfg.directions, final.label) if val is not None \
        else selection.fallback(final.label, no_val)
    reported = next((s for s in chosen if s.label == choice["checkpoint"]), final)
    reuse = {e.get("key"): e for e in old.get("by_epoch", [])}
    by_epoch, final_entry = [], None
    for snap in _select(snaps, reported, every_k_epochs):
        key = _snapshot_key(snap, cfg, test, scorer)
        is_final = snap.label == reported.label
        done = reuse.get(key)
        if is_final and done is not None:  # the reported one also needs its details, fakes and pair rows
            have = all(len(list_images(eval_dir / f"fakes_{d}")) == n if (eval_dir / f"fakes_{d}").is_dir() else False
                       for d, n in (("AB", len(test.names_A)), ("BA", len(test.names_B))) if d in cfg.directions)
            done = done if have and done.get("reported") and (eval_dir / "paired.csv").is_file() else None
        if done is None:
            entry, fakes_AB, fakes_BA, rows = evaluate_snapshot(snap, cfg, test, scorer, device, batch_size, progress,
                                                                detail=is_final)
            entry["key"] = key
            if is_final:  # face metrics for the reported checkpoint only (descriptors cost ~0.1 s an image)
                entry.update(face_metrics(test, fakes_AB, fakes_BA, progress), reported=True)
                _write_fakes(eval_dir, fakes_AB, fakes_BA, test)
                _write_rows(eval_dir / "paired.csv", rows)
        else:
            entry = done
        by_epoch.append(entry)
        if is_final:
            final_entry = entry
    curve = [{k: v for k, v in e.items() if not isinstance(v, (list, dict))} for e in by_epoch]
    record = {
        "trial": name, "checkpoint": final_entry["checkpoint"], "epoch": final_entry["epoch"],
        "epoch_chosen_on": choice["split"] or "last checkpoint (no validation score)",
        "selection_metric": choice["metric"], "last_checkpoint": final.label, "selection": choice,
        "crop_size": cfg.crop_size, "test_root": str(test.root), "model": cfg.model,
        "directions": ",".join(cfg.directions),
        "n_test_A": len(test.names_A), "n_test_B": len(test.names_B),
        "n_val_A": len(val.names_A) if val else None, "n_val_B": len(val.names_B) if val else None,
        "feature_extractor": scorer.extractor.name if scorer.extractor else None,
        "inception_weights": scorer.extractor.weights if scorer.extractor else None,
        "fid_available": scorer.extractor is not None, "fid_unavailable_reason": scorer.unavailable,
        "paired_available": bool(test.pairs), "paired_unavailable_reason": test.pairs_note,
        "n_pairs_skipped": len(test.pairs_skipped), "pairs_skipped": test.pairs_skipped,
        "n_pairs_flagged": test.pairs_flagged,
        **{k: v for k, v in final_entry.items() if k not in ("epoch", "checkpoint", "key", "reported")},
        # optimistic: the best test score over the curve's epochs, chosen on the test set itself
        **selection.test_best(curve, cfg.directions),
        "eval_wall_s": round(time.perf_counter() - t0, 3), "evaluated_at": utc_now(),
        "by_epoch": by_epoch, "val_by_epoch": val_entries,
    }
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, default=_json_default) + "\n")
    return record


def _validate(snaps: list[Snapshot], final: Snapshot, cfg: TrialConfig, val: TestSets | None, scorer: Scorer,
              device: torch.device, batch_size: int, progress: bool, reuse: dict) -> tuple[list[dict], list[Snapshot]]:
    """Every candidate snapshot (each saved epoch and the last) scored on the validation split:
    (entries, candidates); ([], candidates) without a val split."""
    candidates = sorted({s.label: s for s in [*snaps, final]}.values(), key=lambda s: (s.epoch is None, s.epoch or 0))
    if val is None:
        return [], candidates
    entries = []
    for snap in candidates:
        key = _snapshot_key(snap, cfg, val, scorer)
        entry = reuse.get(key)
        if entry is None:
            entry = {**evaluate_snapshot(snap, cfg, val, scorer, device, batch_size, progress)[0], "key": key}
        entries.append(entry)
    return entries, candidates


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write_fakes(eval_dir: Path, fakes_AB: np.ndarray | None, fakes_BA: np.ndarray | None, test: TestSets) -> None:
    for direction, fakes, names in (("AB", fakes_AB, test.names_A), ("BA", fakes_BA, test.names_B)):
        folder = eval_dir / f"fakes_{direction}"
        if fakes is None:
            continue
        stale = {p.name for p in list_images(folder)} if folder.is_dir() else set()
        for fake, name in zip(fakes, names):
            write_png(folder / f"{Path(name).stem}.png", fake)
        for extra in stale - {f"{Path(n).stem}.png" for n in names}:
            (folder / extra).unlink()  # from an earlier, different test set


def _write_rows(path: Path, rows: list[dict]) -> None:
    import io

    columns = ["direction", "file", "id", *PAIRED_NAMES]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------- trials, references, sweeps


def trial_snapshots(trial_dir: str | Path) -> tuple[TrialConfig, list[Snapshot], Snapshot]:
    """(config, saved epoch snapshots, final snapshot) of one of our trial folders. The final is the
    highest `checkpoints/epoch_NNN.pt`, else `checkpoints/latest.pt`."""
    trial_dir = Path(trial_dir)
    cfg = TrialConfig.from_yaml(trial_dir / "config.yaml")
    if not cfg.learned:  # nothing to load: the family is its settings
        return cfg, [], Snapshot(None, cfg.model, [trial_dir / "config.yaml"], lambda device: (None, None))
    source = results.read_json(trial_dir / "run.json").get(VARIANT_OF)
    ck = (trial_dir.parent / source if source else trial_dir) / "checkpoints"

    def snapshot(path: Path, epoch: int | None) -> Snapshot:
        return Snapshot(epoch, path.name, [path], lambda device: checkpoints.load_generators(path, device)[1:])

    snaps = sorted((snapshot(p, int(m.group(1))) for p in (ck.glob("epoch_*.pt") if ck.is_dir() else [])
                    if (m := EPOCH_FILE.match(p.name))), key=lambda s: s.epoch)
    if snaps:
        return cfg, snaps, snaps[-1]
    if (ck / "latest.pt").is_file():
        return cfg, [], snapshot(ck / "latest.pt", results.read_json(ck.parent / "metrics.json").get("epochs_done"))
    raise checkpoints.CheckpointError(f"{ck}: no epoch_NNN.pt or latest.pt to evaluate")


def reference_snapshots(checkpoint_dir: str | Path, cfg: TrialConfig) -> tuple[list[Snapshot], Snapshot]:
    """Snapshots of a reference-implementation run: each `<label>_net_G_A.pth` with its
    `<label>_net_G_B.pth` (G_A = our G_AB, G_B = our G_BA). Final: `latest`, else the highest epoch."""
    from maskcycle.evaluation.translate import load_generator

    folder = Path(checkpoint_dir)
    labels = sorted(p.name[:-len("_net_G_A.pth")] for p in folder.glob("*_net_G_A.pth")
                    if (folder / p.name.replace("_net_G_A.pth", "_net_G_B.pth")).is_file())
    if not labels:
        raise checkpoints.CheckpointError(f"{folder}: no pair of <epoch>_net_G_A.pth / <epoch>_net_G_B.pth")

    def snapshot(label: str) -> Snapshot:
        a, b = folder / f"{label}_net_G_A.pth", folder / f"{label}_net_G_B.pth"
        def load(device):
            return load_generator(a, "AB", device, cfg)[1], load_generator(b, "BA", device, cfg)[1]

        return Snapshot(int(label) if label.isdigit() else None, label, [a, b], load)

    snaps = [snapshot(label) for label in labels]
    numbered = sorted((s for s in snaps if s.epoch is not None), key=lambda s: s.epoch)
    final = next((s for s in snaps if s.label == "latest"), numbered[-1] if numbered else snaps[0])
    return numbered, final


def evaluate_trial(trial_dir: str | Path, scorer: Scorer, curated_dir: str | Path | None = None,
                   every_k_epochs: int | None = None, device: torch.device | str = "cpu", batch_size: int = 16,
                   progress: bool = True, force: bool = False, _tests: dict | None = None) -> dict:
    """Evaluate one trial folder (test sets from `curated_dir`, default the trial's dataroot)."""
    trial_dir = Path(trial_dir)
    cfg, snaps, final = trial_snapshots(trial_dir)
    root = Path(curated_dir) if curated_dir else Path(cfg.dataroot)
    test = held_out.memoized(root, cfg.crop_size, _tests)
    val = held_out.memoized(root, cfg.crop_size, _tests, "val") if has_split(root, "val") else None
    return evaluate_snapshots(trial_dir, trial_dir.name, cfg, snaps, final, test, scorer, every_k_epochs,
                              device, batch_size, progress, force, val, f"no valA/ and valB/ in {root}")


def evaluate_reference(checkpoint_dir: str | Path, curated_dir: str | Path, cfg: TrialConfig | None = None,
                       out_dir: str | Path | None = None, scorer: Scorer | None = None,
                       every_k_epochs: int | None = None, device: torch.device | str = "cpu",
                       batch_size: int = 16, progress: bool = True, force: bool = False) -> dict:
    """Score a reference-implementation checkpoint folder the same way; `cfg` gives its architecture
    and crop_size (default: the reference defaults). Writes `<out_dir or checkpoint_dir>/eval/`."""
    cfg = cfg or TrialConfig()
    snaps, final = reference_snapshots(checkpoint_dir, cfg)
    scorer = scorer or open_scorer(device=device)
    test = load_test_sets(curated_dir, cfg.crop_size)
    val = load_test_sets(curated_dir, cfg.crop_size, "val") if has_split(curated_dir, "val") else None
    out = Path(out_dir) if out_dir else Path(checkpoint_dir)
    return evaluate_snapshots(out, Path(checkpoint_dir).name, cfg, snaps, final, test, scorer, every_k_epochs,
                              device, batch_size, progress, force, val, f"no valA/ and valB/ in {curated_dir}")


def evaluate_sweep(sweep_dir: str | Path, curated_dir: str | Path | None = None, every_k_epochs: int | None = None,
                   inception_weights: str | None = None, feature_extractor: str = fidlib.INCEPTION,
                   download: bool = True, device: str = "auto", batch_size: int = 16, progress: bool = True,
                   force: bool = False, composite_variants: bool = False, fid_resize: str = "legacy",
                   fid_ref_n: int = fidlib.FID_REF_N, baseline: str = "baseline", workers: int = 1):
    """Evaluate every finished run of a sweep, write the results table (summary.csv) and the
    comparison with the `baseline` trial (comparison.csv); returns the results table (pandas).

    A run that is not finished, or whose evaluation fails, keeps its row with the status/error;
    the others still run. FID is computed when the extractor loads, else marked unavailable.
    Without a trial named `baseline` no comparison.csv is written (the reason is printed).
    `composite_variants`: every finished learned run is also scored with the other `composite`
    setting, as `<run>+composite` (`composite_variant`), so the table holds it both ways.
    `workers` > 1 on a CPU scores that many runs side by side in worker processes (0: one per core,
    at most MAX_WORKERS); the numbers do not depend on it."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder")
    dev = _device(device)
    for trial in results.find_trials(sweep_dir) if composite_variants else []:
        if results.trial_status(trial) == "finished":
            composite_variant(trial)
    # a variant's curve would repeat its source's FID over training: its final checkpoint only
    runs = [(trial, 0 if results.read_json(trial / "run.json").get(VARIANT_OF) else every_k_epochs)
            for trial in results.find_trials(sweep_dir) if results.trial_status(trial) == "finished"]
    opening = (feature_extractor, inception_weights, download, str(dev), fid_resize, fid_ref_n)
    common = (curated_dir, dev, batch_size, progress, force)
    workers = eval_workers(workers, dev, len(runs))
    errors = _score_runs_in_workers(runs, opening, common, workers) if workers > 1 else None
    if errors is None:
        errors = _score_runs(runs, opening, common)
    table = results.write_summary(sweep_dir, errors)
    try:
        comparison.write_comparison(sweep_dir, baseline)
    except comparison.ComparisonError as exc:
        print(f"maskcycle evaluate: no {comparison.COMPARISON}: {exc}", file=sys.stderr)
    return table


MAX_WORKERS = 4  # each worker holds the test sets, their face descriptors and the feature extractor


def eval_workers(asked: int, device: torch.device, n_runs: int) -> int:
    """How many runs to score side by side: 1 on a GPU (one device, and it is the fast part), else
    `asked` (0: one per core, at most MAX_WORKERS), never more than there are runs."""
    if device.type != "cpu":
        return 1
    return max(1, min(asked or min(os.cpu_count() or 1, MAX_WORKERS), n_runs))


def _score_runs(runs: list[tuple[Path, int | None]], opening: tuple, common: tuple) -> dict[str, str]:
    """Score the runs one after another in this process: {run: error} of those that failed."""
    scorer, tests, errors = open_scorer(*opening), {}, {}
    for trial, every_k in runs:
        error = _score_run(trial, every_k, scorer, tests, common)
        if error:
            errors[trial.name] = error
    return errors


def _score_run(trial: Path, every_k: int | None, scorer: Scorer, tests: dict, common: tuple) -> str | None:
    curated_dir, dev, batch_size, progress, force = common
    try:
        evaluate_trial(trial, scorer, curated_dir, every_k, dev, batch_size, progress, force, tests)
    except (OSError, ValueError) as exc:  # a broken trial must not stop the others
        return f"{type(exc).__name__}: {exc}"
    return None


# A worker process's scorer and test sets, opened once and kept for every run it scores (a
# ProcessPoolExecutor initializer can hand state to later tasks only through the worker's module).
_WORKER: dict = {}


def _registry() -> dict[str, list[str]]:
    """What this process has registered that a run's numbers depend on. A metric or family added in
    the parent only (a notebook cell, not a $MASKCYCLE_PLUGINS module) is unknown to a new process."""
    from maskcycle.models import families

    return {"metrics": [m.name for m in metrics.METRICS], "families": sorted(families.FAMILIES),
            "non-learned families": sorted(families.BASELINES)}


def _open_worker(opening: tuple, threads: int, parents: dict) -> None:
    torch.set_num_threads(threads)
    mine = _registry()
    missing = [f"{k}: {', '.join(sorted(set(v) - set(mine[k])))}" for k, v in parents.items() if set(v) - set(mine[k])]
    _WORKER.update(scorer=open_scorer(*opening), tests={}, missing="; ".join(missing))


def _score_in_worker(trial: Path, every_k: int | None, common: tuple) -> tuple[str | None, str, str, str]:
    """(error or None, what the run printed to stdout, to stderr, what the worker lacks): the output
    is printed by the parent, in order; a worker that lacks a registration scores nothing."""
    import contextlib
    import io as stdio

    if _WORKER["missing"]:
        return None, "", "", _WORKER["missing"]
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        error = _score_run(trial, every_k, _WORKER["scorer"], _WORKER["tests"], common)
    return error, out.getvalue(), err.getvalue(), ""


def _score_runs_in_workers(runs, opening: tuple, common: tuple, workers: int) -> dict[str, str] | None:
    """Score the runs in `workers` processes (spawned: a forked child of a process that has started
    OpenMP threads can hang); each run's output is printed when it is done. None (nothing scored)
    when the workers lack a metric or family registered here: the caller then scores in this process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, torch.get_num_threads() // workers)
    errors = {}
    progress = common[3]
    common = (*common[:3], False, *common[4:])  # a worker's bars, replayed afterwards, would be noise: a line a run
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _open_worker,
                               (opening, threads, _registry()))
    # numpy's BLAS reads its thread count once, on import in the new process: each worker gets its
    # share of the cores (2 workers x all cores each made every run 2x slower on 2 cores)
    saved = {k: os.environ.get(k) for k in BLAS_THREADS}
    os.environ.update({k: str(threads) for k in BLAS_THREADS})
    try:
        futures = [(trial, pool.submit(_score_in_worker, trial, every_k, common)) for trial, every_k in runs]
        _restore(saved)  # the workers have started
        for done, (trial, future) in enumerate(futures, 1):
            error, out, err, missing = future.result()
            if missing:
                print(f"maskcycle evaluate: scoring one run after another in this process: worker processes "
                      f"would not have what was registered here only ({missing})", file=sys.stderr)
                return None
            sys.stdout.write(out)
            sys.stderr.write(err)
            if progress:
                print(f"{'failed' if error else 'evaluated'} {trial.name} ({done}/{len(futures)})", file=sys.stderr)
            if error:
                errors[trial.name] = error
    finally:  # a crash or Ctrl-C: the runs not started are dropped, not scored after the error
        _restore(saved)
        pool.shutdown(cancel_futures=True)
    return errors


BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _restore(saved: dict) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


VARIANT_OF = "variant_of"  # run.json key of a composite variant: the trial whose checkpoints it uses


def composite_variant(trial_dir: str | Path) -> Path | None:
    """For a finished learned trial, the folder `<trial>+composite` (or `+raw` when the trial itself
    composites) beside it: the same checkpoints evaluated with the other `composite` setting, so the
    sweep's table holds each learned model both ways. Refreshed from the trial each time; None for a
    non-learned trial or a variant."""
    trial_dir = Path(trial_dir)
    if results.read_json(trial_dir / "run.json").get(VARIANT_OF):
        return None
    cfg = TrialConfig.from_yaml(trial_dir / "config.yaml")
    if not cfg.learned:
        return None
    other = "mask" if cfg.composite == "none" else "none"
    suffix = "+composite" if other == "mask" else "+raw"
    variant = trial_dir.parent / f"{trial_dir.name}{suffix}"
    variant.mkdir(exist_ok=True)
    # named for its trial, not its folder: the variants of a trial's seed runs are one trial too
    cfg.replace(composite=other, name=f"{cfg.name}{suffix}").to_yaml(variant / "config.yaml")
    metrics = results.read_json(trial_dir / "metrics.json")
    atomic_write_text(variant / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    run = results.read_json(trial_dir / "run.json")
    record = {VARIANT_OF: trial_dir.name, "status": run.get("status"), "start": run.get("start"),
              "end": run.get("end"), "note": f"{trial_dir.name}'s checkpoints with composite: {other}"}
    atomic_write_text(variant / "run.json", json.dumps(record, indent=2) + "\n")
    return variant


def fid_curves(sweep_dir: str | Path):
    """Long table of the FID-over-training entries: trial, epoch, FID/KID and paired means per epoch."""
    import pandas as pd

    rows = []
    for trial in results.find_trials(sweep_dir):
        path = trial / "eval" / "metrics.json"
        if path.is_file():
            for entry in json.loads(path.read_text()).get("by_epoch", []):
                scalars = {k: v for k, v in entry.items() if not isinstance(v, (list, dict))}
                rows.append({"trial": trial.name, **{k: v for k, v in scalars.items() if k not in ("key", "reported")}})
    return pd.DataFrame(rows)


def paired_table(sweep_dir: str | Path):
    """All trials' per-pair rows (eval/paired.csv) with a trial column."""
    import pandas as pd

    frames = [pd.read_csv(t / "eval" / "paired.csv").assign(trial=t.name) for t in results.find_trials(sweep_dir)
              if (t / "eval" / "paired.csv").is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle evaluate`."""
    p.add_argument("--sweep", help="sweep folder: evaluates every finished trial, writes summary.csv")
    p.add_argument("--reference", help="folder of the reference's <epoch>_net_G_A.pth / _net_G_B.pth")
    p.add_argument("--curated", default=None, help="curated folder with testA/testB[/pairs_test.csv] "
                   "(default for --sweep: each trial's dataroot)")
    p.add_argument("--every-k-epochs", type=at_least(0), default=None,
                   help="FID over training at every K-th saved epoch (0: final only; default: every saved epoch)")
    p.add_argument("--inception-weights", default=None, help=f"path of {fidlib.INCEPTION_WEIGHTS_FILE} "
                   f"(default: ${fidlib.WEIGHTS_ENV}, then the torch hub cache)")
    p.add_argument("--no-download", action="store_true", help="never try to download the Inception weights")
    p.add_argument("--require-fid", action="store_true", help="exit 3 when FID/KID cannot be computed")
    p.add_argument("--feature-extractor", default=fidlib.INCEPTION,
                   help="a torch-fidelity extractor name (the standard FID uses the default)")
    p.add_argument("--fid-resize", choices=fid_protocol.FID_RESIZE, default="legacy",
                   help="legacy: torch-fidelity's TF-compatible bilinear upsampling inside Inception (published "
                   "FIDs); clean: antialiased bicubic resize to 299 first (clean-fid)")
    p.add_argument("--fid-ref-n", type=at_least(2), default=fidlib.FID_REF_N,
                   help="FID_<dir>_ref: FID at this many images of each set (comparable across test-set sizes)")
    p.add_argument("--baseline", default="baseline", help="--sweep: the trial every other is compared with "
                   "(comparison.csv)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="--reference only: the run's settings (netG, ngf, norm, crop_size, ...)")
    p.add_argument("--out", default=None, help="--reference: where eval/ goes (default: the folder); "
                   "--fakes-ab/--fakes-ba: the folder for metrics.json")
    external.add_arguments(p)
    p.add_argument("--batch-size", type=at_least(1), default=16)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="recompute even what an earlier run already scored")
    p.add_argument("--composite-variants", action="store_true", help="--sweep: also score every learned trial "
                   "with the other `composite` setting, as <trial>+composite (notebook 03 does)")
    p.add_argument("--workers", type=at_least(0), default=0, help="--sweep on a CPU: runs scored side by side "
                   f"in processes (0: one per core, at most {MAX_WORKERS}; 1: one after another)")


def run_command(args) -> int:
    if args.fakes_ab or args.fakes_ba:
        return _run_fakes(args)
    if bool(args.sweep) == bool(args.reference):
        raise ConfigError("give exactly one of --sweep DIR, --reference DIR or --fakes-ab/--fakes-ba DIR")
    common = dict(every_k_epochs=args.every_k_epochs, batch_size=args.batch_size, force=args.force)
    weights = ("--inception-weights", args.inception_weights)
    if args.sweep:  # evaluated in place (eval/ in each trial, summary.csv): only the other inputs are guarded
        check_output(args.sweep, [("--curated", args.curated), weights], "--sweep")
    else:  # eval/ goes into --out (default the reference folder), beside the checkpoints it reads
        checkpoints_read = sorted(Path(args.reference).glob("*.pth")) if Path(args.reference).is_dir() else []
        check_output(Path(args.out or args.reference) / "eval", [("--curated", args.curated), weights,
                                                                 ("--reference", checkpoints_read)], "--out")
    if args.sweep:
        table = evaluate_sweep(args.sweep, args.curated, inception_weights=args.inception_weights,
                               feature_extractor=args.feature_extractor, download=not args.no_download,
                               device=args.device, composite_variants=args.composite_variants,
                               fid_resize=args.fid_resize, fid_ref_n=args.fid_ref_n, baseline=args.baseline,
                               workers=args.workers, **common)
        print(table.to_string(index=False) if len(table) else "(no trials)")
        print(f"results: {Path(args.sweep) / results.SUMMARY}")
        column = table.get("fid_unavailable_reason")
        reasons = set(column.dropna()) if column is not None else set()
        failed = table[table["eval_error"].notna()] if "eval_error" in table else table.iloc[:0]
        for _, row in failed.iterrows():
            print(f"maskcycle evaluate: {row.get('run', row['trial'])}: could not be evaluated: {row['eval_error']}",
                  file=sys.stderr)
        if len(failed):
            return 1
    else:
        if not args.curated:
            raise ConfigError("--reference needs --curated DIR (the folder with testA/ and testB/)")
        cfg = TrialConfig().replace(**parse_overrides(args.set))
        device = resolve_device(args.device)
        scorer = open_scorer(args.feature_extractor, args.inception_weights, not args.no_download, device,
                             args.fid_resize, args.fid_ref_n)
        record = evaluate_reference(args.reference, args.curated, cfg, args.out, scorer, device=device, **common)
        print("\n".join(f"{k}: {v}" for k, v in record.items() if not isinstance(v, (list, dict))))
        reasons = {record["fid_unavailable_reason"]} - {None}
    for reason in reasons:
        print(f"maskcycle evaluate: FID/KID unavailable: {reason}", file=sys.stderr)
    return 3 if reasons and args.require_fid else 0


def _run_fakes(args) -> int:
    if args.sweep or args.reference or not args.out:
        raise ConfigError("--fakes-ab/--fakes-ba take --out DIR and neither --sweep nor --reference")
    external.check_paths(args.out, {"AB": args.fakes_ab, "BA": args.fakes_ba}, {"A": args.real_a, "B": args.real_b},
                         {"AB": args.pairs_ab, "BA": args.pairs_ba})
    scorer = open_scorer(args.feature_extractor, args.inception_weights, not args.no_download,
                         resolve_device(args.device))
    record = external.evaluate_fakes(args.out, {"AB": args.fakes_ab, "BA": args.fakes_ba},
                                     {"A": args.real_a, "B": args.real_b},
                                     {"AB": args.pairs_ab, "BA": args.pairs_ba}, scorer)
    print("\n".join(f"{k}: {v}" for k, v in record.items() if not isinstance(v, (list, dict))))
    print(f"wrote {args.out}/metrics.json")
    if scorer.unavailable:
        print(f"maskcycle evaluate: FID/KID unavailable: {scorer.unavailable}", file=sys.stderr)
    return 3 if scorer.unavailable and args.require_fid else 0
