"""Curation: filter the raw sets with recorded reasons, split identity-disjointly, write the
curated folders, `manifest.csv`, `pairs_test.csv`, the training pairs and the decoded cache.

    maskcycle curate --ffhq RAW/ffhq --maskedfacenet RAW/maskedfacenet --out data/curated
    maskcycle curate --curated SHARED_CURATED_FOLDER --out data/curated

Steps (each rerunnable; an interrupted run resumes):
1. list the raw files (`readers`); masks whose placement is not wanted are rejected by name;
2. measure every other file once in a process pool (`measures.measure`), appending to
   `judgments.csv` so that a rerun skips files already judged (same path, size and mtime);
3. turn measurements into reasons with the thresholds, add the manual exclusion list;
4. split: n_test, n_val, then n_train identities per domain, seeded, identity-disjoint (val picks a
   trial's epoch, so that test numbers are never chosen on the test set). Ids are identities
   only where the data set says so (MaskedFace-Net image N is FFHQ image N with a mask); a curated
   folder's file names mean nothing, so there each file is its own identity unless `--pairs CSV`
   pairs files. Test and val images are drawn among identities with a counterpart in the other raw
   set; each pair is checked (`pairs.check_pair`) and flagged in `pairs_test.csv` / `pairs_val.csv`
   when it fails;
   a split that cannot be filled is an error naming it, the counts and the top reasons;
5. write `<split><domain>/<id>.png` resized to load_size (skipping those already written from the
   same source and size), remove stale ones, and build the uint8 cache the trainer reads;
6. the training pairs of the paired oracle (pix2pix): ids whose A and B images both passed the
   filters and that are no test id (so identity-disjoint from every test image), up to n_train,
   as `pairs_train.csv` and `pairs_trainA/<id>.png`, `pairs_trainB/<id>.png`. They may share
   identities with trainA/trainB (the unpaired models never see pairs_train*). An already-curated
   folder defines no identities and gets no pair list.

The output folder never overlaps a source folder (refused before any work), and "stale" files are
only ever ones this command wrote: `written_files.txt` lists every image it set out to write.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from maskcycle.data import measures, pair_files, readers
from maskcycle.data import pair_checks as pairs_mod
from maskcycle.data.cache import cached_images
from maskcycle.data.images import ImageReadError, read_rgb, write_png
from maskcycle.data.paired_batches import PAIR_FOLDERS
from maskcycle.data.parallel import parallel_map
from maskcycle.io import atomic_write_text, check_output, read_pairs
from maskcycle.settings import add_field_arguments, at_least, check_field_types, from_arguments, setting

MEASURE_COLUMNS = ["source_path", "bytes", "mtime_ns", "error", "width", "height", "mode", "gray_content",
                   "sharpness", "faces", "faces_dlib"]
MANIFEST_COLUMNS = ["id", "domain", "source_path", "placement", "split", "reason", "note", "out_file", "width",
                    "height", "mode", "sharpness", "faces", "faces_source", "faces_haar", "identity",
                    "identity_source", "ffhq_category"]
PAIR_COLUMNS = ["domain", "file", "id", "counterpart_path", *pairs_mod.CHECK_COLUMNS]
# How identities were decided (the manifest's identity_source)
IDENTITY_DATASET = "dataset ids (MaskedFace-Net N is FFHQ N)"
IDENTITY_NONE = "none (file names of a curated folder mean nothing)"
IDENTITY_PAIRS = "pairs CSV"
SPLIT_BUCKETS = (("test", "A"), ("test", "B"), ("val", "A"), ("val", "B"), ("train", "A"), ("train", "B"))
HELD_OUT = ("test", "val")  # splits drawn among identities with a counterpart; each has its pairs_<split>.csv
WRITTEN = "written_files.txt"  # every image curation set out to write: the only ones it ever removes


class CurationError(ValueError):
    """Bad curation input (settings, exclusion list, too few images); the message names it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides the curated set; `maskcycle curate` flags and notebook 01's
    parameters are these fields (config.add_field_arguments / field_flags)."""

    n_train: int = setting(6000, "train images per domain (the study's target)")
    n_test: int = setting(1000, "test images per domain")
    n_val: int = setting(500, "validation images per domain (identity-disjoint from train and test): "
                              "evaluation picks each trial's epoch on them")
    load_size: int = setting(286, "side of the written images")
    seed: int = setting(0, "seed of the split")
    min_size: int = setting(0, "smallest accepted shorter side (0: load_size, or any size with allow_upscale)")
    allow_upscale: bool = setting(False, "accept images smaller than load_size and upscale them (a choice: "
                                        "upscaled images are softer than real ones)")
    sharpness_min: float = setting(8.0, "absolute floor of the blur threshold (variance of the Laplacian at "
                                       "work_size)")
    sharpness_tail: float = setting(3.0, "per-domain blur threshold: median - k robust sigmas of log sharpness, "
                                        "never below sharpness_min (0: the floor only)")
    detector: Literal["hog", "cnn", "haar"] = setting("hog", "face counter: dlib HOG (face module), dlib CNN "
                                                            "(slow on CPU) or OpenCV's Haar cascade")
    max_faces: int = setting(1, "images with more detected faces are rejected (masked images with an FFHQ "
                               "counterpart are counted on the counterpart)")
    require_face: bool = setting(False, "also reject images where no face is detected")
    placements: tuple[readers.Placement, ...] = setting(("correct",), "MaskedFace-Net placement classes kept "
                                                       "(IMFD classes are opt-in)")
    work_size: int = setting(256, "side at which sharpness, faces and pairs are measured")
    exclusions: str = setting("", "manual exclusion list (id,reason[,domain]); empty: none")
    pairs: str = setting("", "curated folders only: CSV a,b of files (relative to the folder) that show one "
                            "person; without it a curated folder has no pairs and no identity exclusion")
    pair_share_min: float = setting(pairs_mod.SHARE_RANGE[0], "smallest plausible mask share of a pair's image")
    pair_share_max: float = setting(pairs_mod.SHARE_RANGE[1], "largest plausible mask share of a pair's image")
    pair_faces: bool = setting(True, "check pairs with dlib too: same upper face, nose and mouth in the mask")

    def __post_init__(self) -> None:
        check_field_types(self, CurationError)
        for name in ("n_train", "load_size", "work_size", "max_faces"):
            if getattr(self, name) < 1:
                raise CurationError(f"curation setting {name}={getattr(self, name)} must be >= 1")
        for name in ("n_test", "n_val", "min_size", "sharpness_min", "sharpness_tail"):
            if getattr(self, name) < 0:
                raise CurationError(f"curation setting {name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.pair_share_min < self.pair_share_max <= 1:
            raise CurationError(f"curation settings pair_share_min={self.pair_share_min}, pair_share_max="
                                f"{self.pair_share_max}: need 0 <= min < max <= 1")

    def thresholds(self, sharpness_min: float | None = None) -> measures.Thresholds:
        min_size = self.min_size or (1 if self.allow_upscale else self.load_size)
        return measures.Thresholds(min_size=min_size, max_faces=self.max_faces, require_face=self.require_face,
                                   sharpness_min=self.sharpness_min if sharpness_min is None else sharpness_min)

    @property
    def dlib_detector(self) -> str:
        return "" if self.detector == "haar" else self.detector


# --- step 2: measuring, resumable -----------------------------------------------------------------

def _measure_one(args) -> dict:
    path, work_size, detector = args
    st = os.stat(path)
    row = {"source_path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    row.update(measures.measure(path, work_size, detector))
    return row


def _read_log(path: Path) -> pd.DataFrame:
    """The judgments log; a half-written last line (interrupted run) is dropped."""
    if not path.exists():
        return pd.DataFrame(columns=MEASURE_COLUMNS)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    df = pd.read_csv(io.StringIO("".join(lines)), dtype=str, keep_default_na=False)
    for col in ("bytes", "mtime_ns", "width", "height", "faces", "faces_dlib"):
        df[col] = pd.to_numeric(df[col]).astype("int64")
    df["sharpness"] = pd.to_numeric(df.sharpness, errors="coerce")  # nan for unreadable files
    df["gray_content"] = df.gray_content == "True"
    return df.drop_duplicates("source_path", keep="last")


def judge(paths: list[Path], out: Path, work_size: int = 256, workers: int = 0, progress: bool = True,
          detector: str = "", no_dlib: set[str] = frozenset()) -> tuple[pd.DataFrame, dict]:
    """Measurements of every path, reusing `out/judgments.csv`; returns them and timing figures.
    `detector` ('hog', 'cnn' or '') also counts faces with dlib, except on paths in `no_dlib`
    (masked images whose faces are counted on their unmasked counterpart)."""
    log = out / "judgments.csv"
    stamp = out / "judgments.json"
    want = {"measure_version": measures.MEASURE_VERSION, "work_size": work_size, "dlib": detector,
            **measures.DETECT}
    if log.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != want):
        log.unlink()  # measured differently before: start again
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(want))
    done = _read_log(log)
    known = {(r.source_path, int(r.bytes), int(r.mtime_ns)) for r in done.itertuples()}
    todo = []
    for p in paths:
        st = p.stat()
        if (str(p), st.st_size, st.st_mtime_ns) not in known:
            todo.append(p)
    t0 = time.perf_counter()
    if todo:
        jobs = [(p, work_size, "" if str(p) in no_dlib else detector) for p in todo]
        _run_measurements(jobs, log, workers, progress)
    seconds = time.perf_counter() - t0
    df = _read_log(log)
    df = df[df.source_path.isin({str(p) for p in paths})]
    timing = {"measured": len(todo), "reused": len(paths) - len(todo), "measure_seconds": round(seconds, 2),
              "images_per_s": round(len(todo) / seconds, 1) if todo and seconds > 0 else None}
    return df, timing


def _run_measurements(jobs: list[tuple], log: Path, workers: int, progress: bool) -> None:
    new_file = not log.exists() or log.stat().st_size == 0
    with open(log, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MEASURE_COLUMNS)
        if new_file:
            w.writeheader()
        for k, row in enumerate(parallel_map(_measure_one, jobs, workers, "measuring", progress)):
            w.writerow(row)
            if k % 64 == 63:
                fh.flush()  # what is flushed survives an interruption


# --- step 3: reasons ------------------------------------------------------------------------------

def read_exclusions(path: str | Path) -> dict[tuple[str, str], str]:
    """The manual list: `id,reason[,domain]` lines ('#' comments; domain A, B or empty = both).
    Returns {(id, domain): reason} with domain '' for both."""
    path = Path(path)
    if not path.exists():
        raise CurationError(f"{path}: manual exclusion list not found")
    out = {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for k, row in enumerate(csv.reader(lines)):
        row = [c.strip() for c in row]
        if k == 0 and row[0].lower() == "id":
            continue
        if len(row) < 2 or not row[0].isdigit() or not row[1]:
            raise CurationError(f"{path}: line {','.join(row)!r}: expected 'id,reason[,domain]' with a numeric id")
        domain = row[2].upper() if len(row) > 2 else ""
        if domain not in ("", "A", "B"):
            raise CurationError(f"{path}: line {','.join(row)!r}: domain must be A, B or empty")
        out[(f"{int(row[0]):05d}", domain)] = row[1]
    return out


def sharpness_thresholds(records: list[readers.Record], measured: pd.DataFrame, s: Settings) -> dict[str, float]:
    """Per domain, the blur threshold from that domain's measured, readable images (`measures.sharpness_threshold`)."""
    value = dict(zip(measured.source_path, measured.sharpness)) if len(measured) else {}
    out = {}
    for d in ("A", "B"):
        v = [value[str(r.path)] for r in records if r.domain == d and str(r.path) in value]
        out[d] = measures.sharpness_threshold(v, s.sharpness_min, s.sharpness_tail)
    return out


def _face_count(m: dict, counterpart: dict | None, detector: str) -> tuple[int, str]:
    """(faces, where counted): a masked image with a readable unmasked counterpart is counted there,
    since the mask hides only the main face and the detectors miss many masked faces."""
    def count(x):
        return int(x["faces"]) if detector == "haar" or int(x.get("faces_dlib", -1)) < 0 else int(x["faces_dlib"])

    if counterpart is not None and not counterpart.get("error"):
        return count(counterpart), "counterpart"
    return count(m), "self"


def judge_records(records: list[readers.Record], measured: pd.DataFrame, s: Settings,
                  exclusions: dict[tuple[str, str], str], counterparts: dict[str, Path] | None = None,
                  sharpness: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per record with its measurements and rejection reason ('' when kept). `counterparts`
    maps a masked file to its unmasked counterpart (known identities only); `sharpness` the
    per-domain blur threshold (default: sharpness_thresholds)."""
    by_path = measured.set_index("source_path").to_dict("index") if len(measured) else {}
    counterparts = counterparts or {}
    sharpness = sharpness or sharpness_thresholds(records, measured, s)
    rows = []
    for r in records:
        m = by_path.get(str(r.path))
        why, faces, source = [], None, ""
        if r.domain == "B" and r.placement not in s.placements:
            why.append(f"placement:{r.placement}")
        elif m is None:
            why.append("not_measured")
        else:
            other = by_path.get(str(counterparts.get(str(r.path), "")))
            faces, source = _face_count(m, other, s.detector) if not m.get("error") else (m["faces"], "self")
            why.extend(measures.reasons({**m, "faces": faces}, s.thresholds(sharpness[r.domain])))
        manual = exclusions.get((r.id, r.domain)) or exclusions.get((r.id, ""))
        if manual and not why:
            why.append(f"manual:{manual}")
        m = m or {}
        rows.append({"id": r.id, "domain": r.domain, "source_path": str(r.path), "placement": r.placement,
                     "reason": ";".join(why), "width": m.get("width"), "height": m.get("height"),
                     "mode": m.get("mode"), "sharpness": m.get("sharpness"), "faces": faces,
                     "faces_source": source, "faces_haar": m.get("faces"), "given_split": r.split})
    return pd.DataFrame(rows)


# --- step 4: the split ----------------------------------------------------------------------------

def choose_b(kept_b: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One B image per identity: a correctly worn mask when there is one, else a seeded choice."""
    rng = np.random.default_rng([seed, 1])
    kept_b = kept_b.assign(_pref=(kept_b.placement != "correct").astype(int),
                           _r=rng.random(len(kept_b)))
    return kept_b.sort_values(["identity", "_pref", "_r"]).drop_duplicates("identity").drop(columns=["_pref", "_r"])


def split_ids(ids_a: set[str], ids_b: set[str], n_train: int, n_test: int, seed: int,
              test_ok_a: set[str] | None = None, test_ok_b: set[str] | None = None,
              n_val: int = 0) -> dict[tuple[str, str], list]:
    """Assign ids to (split, domain) buckets: each id to at most one bucket, so A and B share no
    identity and test, val and train share none. Ids go round-robin over the buckets in a seeded
    order; test and val buckets take only ids in test_ok_* (those with a counterpart), when given."""
    order = np.random.default_rng(seed).permutation(sorted(ids_a | ids_b))
    need = {b: {"test": n_test, "val": n_val}.get(b[0], n_train) for b in SPLIT_BUCKETS}
    out = {b: [] for b in SPLIT_BUCKETS}

    def ok(i, b):
        pool = ids_a if b[1] == "A" else ids_b
        if i not in pool:
            return False
        if b[0] in HELD_OUT:
            allowed = test_ok_a if b[1] == "A" else test_ok_b
            return allowed is None or i in allowed
        return True

    ptr = 0
    for i in order:
        for k in range(len(SPLIT_BUCKETS)):
            b = SPLIT_BUCKETS[(ptr + k) % len(SPLIT_BUCKETS)]
            if len(out[b]) < need[b] and ok(i, b):
                out[b].append(str(i))
                ptr = (ptr + k + 1) % len(SPLIT_BUCKETS)
                break
        if all(len(out[b]) >= need[b] for b in SPLIT_BUCKETS):
            break
    return {b: sorted(v) for b, v in out.items()}


def read_pairs_csv(path: str | Path, root: Path, records: list[readers.Record]) -> dict[str, str]:
    """A curated folder's pairs CSV (columns a,b: files relative to the folder, one person each) ->
    {source path: identity} for both files of every pair. Checked by io.read_pairs (a B image in
    two pairs is refused); a file that is no A (or B) image of the folder, and a pair whose images
    lie in different splits (a training identity would be a test image's true counterpart), are
    errors naming the line."""
    path = Path(path)
    known = {str(r.path.relative_to(root)): r for r in records}

    def resolve(column: str, value: str, row) -> readers.Record:
        r = known.get(str(Path(value)))
        if r is None or r.domain != column.upper():
            raise CurationError(f"{path} line {row.line}: {column}={value!r} is not an image of "
                                f"{'trainA/ or testA/' if column == 'a' else 'trainB/ or testB/'} in {root}")
        return r

    out = {}
    for line, rb, ra in read_pairs(path, ("b", "a"), resolve, CurationError):  # b first: each b once
        if ra.split != rb.split:
            raise CurationError(
                f"{path} line {line}: a={str(ra.path.relative_to(root))!r} is in {ra.split}, "
                f"b={str(rb.path.relative_to(root))!r} in {rb.split}; one person cannot be in both splits "
                f"(a training identity would be a test image's true counterpart): move one, or drop the row")
        out[str(ra.path)] = out[str(rb.path)] = f"pair:{ra.path.relative_to(root)}"
    return out


def identities(records: list[readers.Record], curated_root: Path | None, pairs_csv: str) -> tuple[dict, str]:
    """{source path: identity} and how they were decided. The raw readers' ids are identities (the
    data sets say so); a curated folder's file names are not: each file is its own identity unless
    a pairs CSV says two files show one person."""
    if curated_root is None:
        if pairs_csv:
            raise CurationError("--pairs is for --curated folders (FFHQ and MaskedFace-Net ids already pair)")
        return {str(r.path): r.id for r in records}, IDENTITY_DATASET
    own = {str(r.path): f"{r.split}{r.domain}/{r.path.name}" for r in records}
    if not pairs_csv:
        return own, IDENTITY_NONE
    return {**own, **read_pairs_csv(pairs_csv, curated_root, records)}, IDENTITY_PAIRS


def train_pairs(table: pd.DataFrame, s: Settings, test_ids: set[str]) -> pd.DataFrame:
    """Training pairs (id, file, source_A, source_B): ids with a kept A and a kept B image (the
    B chosen as for the unpaired set), none of them a test id; a seeded draw of up to n_train."""
    kept = table[table.reason == ""]
    a = kept[kept.domain == "A"].drop_duplicates("id").set_index("id").source_path
    b = choose_b(kept[kept.domain == "B"], s.seed).set_index("id").source_path
    ids = sorted((set(a.index) & set(b.index)) - test_ids)
    ids = sorted(np.random.default_rng([s.seed, 2]).permutation(ids)[:s.n_train].tolist()) if ids else []
    return pd.DataFrame({"id": ids, "file": [f"{i}.png" for i in ids], "source_A": [a[i] for i in ids],
                         "source_B": [b[i] for i in ids]}, columns=["id", "file", "source_A", "source_B"])


def write_pairs(pairs: pd.DataFrame | None, out: Path, load_size: int, workers: int = 0,
                progress: bool = True) -> dict:
    """pairs_trainA/B images (reusing ones written before from the same sources and size) and
    pairs_train.csv; `pairs` None (no identities) removes any earlier pair list."""
    listing = pair_files.pairs_path(out, "train")
    previous = {}
    if listing.exists() and (out / "curation.json").exists():
        try:
            if json.loads((out / "curation.json").read_text())["settings"]["load_size"] == load_size:
                prev = pd.read_csv(listing, dtype=str, keep_default_na=False)
                previous = {r.file: (r.source_A, r.source_B) for r in prev.itertuples()}
        except (ValueError, KeyError, AttributeError):
            previous = {}
    rows = [] if pairs is None else list(pairs.itertuples())
    jobs = []
    for folder, col in zip(PAIR_FOLDERS, ("source_A", "source_B")):
        wanted = {r.file for r in rows}
        if (out / folder).is_dir():
            for p in (out / folder).glob("*.png"):
                if p.name not in wanted:
                    p.unlink()
        jobs += [(getattr(r, col), str(out / folder / r.file), load_size) for r in rows
                 if not ((out / folder / r.file).exists() and previous.get(r.file) == (r.source_A, r.source_B))]
    for _ in parallel_map(_write_one, jobs, workers, "writing pairs", progress, min_pool_jobs=33):
        pass
    if pairs is None:
        listing.unlink(missing_ok=True)
    else:
        _write_csv(listing, pairs)
    return {"pairs_train": len(rows), "pairs_written": len(jobs)}


def assign(table: pd.DataFrame, s: Settings, all_records: list[readers.Record]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fill `split`, `note`, `out_file` in the judged table (which has an `identity` column);
    returns it and the pairs table (test images whose counterpart, same identity, is in the other domain)."""
    table = table.copy()
    table["split"] = np.where(table.reason == "", "unused", "rejected")
    table["note"] = ""
    table["out_file"] = ""
    ident = dict(zip(table.source_path, table.identity))
    kept = table[table.reason == ""]
    kept_a = kept[kept.domain == "A"].drop_duplicates("identity")
    kept_b = choose_b(kept[kept.domain == "B"], s.seed)
    # A counterpart must decode (it is read at evaluation); rejected for blur etc. is still a true pair.
    decodable = set(table.source_path[table.width.notna() & ~table.reason.str.contains("unreadable")])
    candidates = [r for r in all_records if str(r.path) in decodable]
    raw = {"A": {}, "B": {}}
    for r in sorted(candidates, key=lambda r: (r.placement not in ("", "correct"), str(r.path))):
        raw[r.domain].setdefault(ident[str(r.path)], r)
    if (table.given_split != "").any():  # an already-curated folder keeps its split
        chosen = {}
        for (sp, d) in SPLIT_BUCKETS:
            src = kept_a if d == "A" else kept_b
            chosen[(sp, d)] = sorted(src[src.given_split == sp].identity)
    else:
        chosen = split_ids(set(kept_a.identity), set(kept_b.identity), s.n_train, s.n_test, s.seed,
                           test_ok_a=set(raw["B"]), test_ok_b=set(raw["A"]), n_val=s.n_val)
    used = {(i, d): sp for (sp, d), ids in chosen.items() for i in ids}
    pick = set(kept_b.source_path) | set(kept_a.source_path)
    for k, r in table.iterrows():
        if r.reason:
            continue
        sp = used.get((r.identity, r.domain))
        if r.source_path not in pick:
            table.at[k, "note"] = "another image of this identity chosen"
        elif sp:
            table.at[k, "split"] = sp
            table.at[k, "out_file"] = f"{sp}{r.domain}/{r.id}.png"
        elif any((r.identity, d) in used for d in "AB"):
            table.at[k, "note"] = "identity used in the other domain"
        else:
            table.at[k, "note"] = "not drawn (beyond n_train)"
    written = table[table.out_file != ""]
    pairs = []
    for r in written[written.split.isin(HELD_OUT)].itertuples():
        other = raw["B" if r.domain == "A" else "A"].get(r.identity)
        if other is not None:
            pairs.append({"split": r.split, "domain": r.domain, "file": Path(r.out_file).name, "id": r.id,
                          "counterpart_path": str(other.path), "src_path": r.source_path,
                          "named": r.placement if r.domain == "B" else other.placement})
    return table, pd.DataFrame(pairs, columns=["split", "domain", "file", "id", "counterpart_path", "src_path",
                                               "named"])


def _check_one(args) -> dict:
    masked, unmasked, placement, size, share_range, use_faces = args
    try:
        b, a = read_rgb(masked, size), read_rgb(unmasked, size)
    except ImageReadError as exc:
        return {c: "" for c in pairs_mod.CHECK_COLUMNS} | {"check": "unreadable", "error": str(exc)}
    return pairs_mod.check_pair(b, a, placement or "correct", share_range, use_faces)


def check_pairs(pairs: pd.DataFrame, s: Settings, workers: int = 0, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Add the pair checks (`pairs.CHECK_COLUMNS`) to the pairs table (its `split` column kept);
    returns it and the summary."""
    jobs = []
    for r in pairs.itertuples():
        masked, unmasked = (r.counterpart_path, r.src_path) if r.domain == "A" else (r.src_path, r.counterpart_path)
        jobs.append((masked, unmasked, r.named, s.work_size, (s.pair_share_min, s.pair_share_max),
                     s.pair_faces))
    rows = list(parallel_map(_check_one, jobs, workers, "checking pairs", progress, min_pool_jobs=17)) if jobs else []
    checked = pairs.drop(columns=["src_path", "named"]).reset_index(drop=True)
    for c in pairs_mod.CHECK_COLUMNS:
        checked[c] = [row.get(c, "") for row in rows]
    return checked.reindex(columns=["split", *PAIR_COLUMNS]), pairs_mod.summary(rows, list(pairs.named))


# --- step 5: writing ------------------------------------------------------------------------------

def _write_one(args) -> str:
    src, dest, size = args
    write_png(dest, read_rgb(src, size))
    return dest


def write_images(table: pd.DataFrame, out: Path, load_size: int, workers: int = 0, progress: bool = True) -> dict:
    """Write the chosen images resized; reuse ones written before from the same source and size."""
    previous = {}
    prev_path = out / "manifest.csv"
    prev_info = out / "curation.json"
    if prev_path.exists() and prev_info.exists():
        try:
            if json.loads(prev_info.read_text())["settings"]["load_size"] == load_size:
                prev = pd.read_csv(prev_path, dtype=str, keep_default_na=False)
                previous = dict(zip(prev.out_file, prev.source_path))
        except (ValueError, KeyError):
            previous = {}
    chosen = table[table.out_file.fillna("") != ""]
    record = _written_record(out, previous)
    for name in sorted(record - set(chosen.out_file)):  # stale images of an earlier split, ours only
        (out / name).unlink(missing_ok=True)
    jobs = [(r.source_path, str(out / r.out_file), load_size) for r in chosen.itertuples()
            if not ((out / r.out_file).exists() and previous.get(r.out_file) == r.source_path)]
    atomic_write_text(out / WRITTEN, "".join(f"{f}\n" for f in sorted(set(chosen.out_file))))
    t0 = time.perf_counter()
    for _ in parallel_map(_write_one, jobs, workers, "writing", progress, min_pool_jobs=33):
        pass
    return {"written": len(jobs), "written_before": len(chosen) - len(jobs),
            "write_seconds": round(time.perf_counter() - t0, 2)}


def _written_record(out: Path, previous: dict[str, str]) -> set[str]:
    """The images an earlier run wrote: written_files.txt, else (older runs) its manifest's out_file."""
    path = out / WRITTEN
    names = set(path.read_text().split("\n")) if path.exists() else set(previous)
    return {n for n in names if n and Path(n).parts[:1] and Path(n).parts[0] in readers.CURATED_FOLDERS
            and ".." not in Path(n).parts}


def build_cache(out: Path, load_size: int) -> dict[str, list[int]]:
    """Decode each curated folder once into `out/cache/<folder>_<load_size>.npy` (the trainer's cache)."""
    shapes = {}
    for sub in readers.CURATED_FOLDERS + PAIR_FOLDERS:
        if (out / sub).is_dir() and any((out / sub).glob("*.png")):
            shapes[sub] = list(cached_images(out / sub, load_size).shape)
    return shapes


# --- the whole step -------------------------------------------------------------------------------

def _records(ffhq, maskedfacenet, curated) -> list[readers.Record]:
    if curated is not None:
        if ffhq is not None or maskedfacenet is not None:
            raise CurationError("give either --curated or --ffhq and --maskedfacenet, not both")
        return readers.read_curated(curated)
    if ffhq is None or maskedfacenet is None:
        raise CurationError("curation needs both --ffhq and --maskedfacenet (or --curated)")
    return readers.read_ffhq(ffhq) + readers.read_maskedfacenet(maskedfacenet)


def _counterparts(records: list[readers.Record], ident: dict[str, str]) -> dict[str, Path]:
    """masked file -> its unmasked counterpart (same identity), where identities are known."""
    a = {ident[str(r.path)]: r.path for r in records if r.domain == "A"}
    return {str(r.path): a[ident[str(r.path)]] for r in records if r.domain == "B" and ident[str(r.path)] in a}


def curate(out: str | Path, ffhq: str | Path | None = None, maskedfacenet: str | Path | None = None,
           curated: str | Path | None = None, settings: Settings = Settings(), workers: int = 0,
           progress: bool = True, sheets: bool = False) -> pd.DataFrame:
    """Curate raw FFHQ + MaskedFace-Net (or re-check an already-curated folder) into `out`.
    Returns the manifest; writes manifest.csv, pairs_test.csv, curation.json, the folders, the cache
    (and contact sheets under figures/ with `sheets`). A split that cannot be filled raises
    CurationError after the manifest is written (so it can be inspected)."""
    out = Path(out)
    records = _records(ffhq, maskedfacenet, curated)
    # after the layout checks: nothing is written before
    check_output(out, [("--ffhq", ffhq), ("--maskedfacenet", maskedfacenet), ("--curated", curated),
                       ("--exclusions", settings.exclusions), ("--pairs", settings.pairs)], own=("manifest.csv",))
    exclusions = read_exclusions(settings.exclusions) if settings.exclusions else {}
    ident, identity_source = identities(records, Path(curated) if curated is not None else None, settings.pairs)
    counterparts = _counterparts(records, ident) if identity_source != IDENTITY_NONE else {}
    t_start = time.perf_counter()
    to_measure = [r.path for r in records if r.domain == "A" or r.placement in settings.placements]
    measured, timing = judge(to_measure, out, settings.work_size, workers, progress, settings.dlib_detector,
                             no_dlib=set(counterparts))
    blur = sharpness_thresholds(records, measured, settings)
    table = judge_records(records, measured, settings, exclusions, counterparts, blur)
    table["identity"] = [ident[p] for p in table.source_path]
    table["identity_source"] = identity_source
    table, pairs = assign(table, settings, records)
    t0 = time.perf_counter()
    pairs, pair_summary = check_pairs(pairs, settings, workers, progress)
    timing["pair_check_seconds"] = round(time.perf_counter() - t0, 2)
    meta = readers.ffhq_metadata(ffhq) if ffhq is not None else {}
    table["ffhq_category"] = [meta.get(i, "") for i in table.id]  # training / validation (ffhq-dataset-v2.json)
    timing.update(write_images(table, out, settings.load_size, workers, progress))
    pairs_train = None
    if curated is None:  # only the raw readers define identities
        test_ids = set(table.id[table.split.isin(HELD_OUT)])
        pairs_train = train_pairs(table, settings, test_ids)
    timing.update(write_pairs(pairs_train, out, settings.load_size, workers, progress))
    cache = build_cache(out, settings.load_size)
    timing["total_seconds"] = round(time.perf_counter() - t_start, 2)
    manifest = table.reindex(columns=MANIFEST_COLUMNS)
    manifest["out_file"] = manifest.out_file.fillna("")
    for col in ("width", "height", "faces", "faces_haar"):
        manifest[col] = manifest[col].astype("Int64")
    _write_csv(out / "manifest.csv", manifest)
    for split in HELD_OUT:
        _write_csv(pair_files.pairs_path(out, split), pairs[pairs.split == split].drop(columns="split"))
    problems, warnings = shortfalls(manifest, settings, curated is not None, records)
    info = _info(manifest, settings, (ffhq, maskedfacenet, curated), timing, cache)
    info.update(identities=identity_source, sharpness_threshold=blur, pair_checks=pair_summary,
                warnings=warnings, problems=problems)
    if sheets:
        from maskcycle.data import report

        info["sheets"] = {k: str(v) for k, v in report.review_sheets(manifest, out, seed=settings.seed).items()}
    atomic_write_text(out / "curation.json", json.dumps(info, indent=2) + "\n")
    for w in warnings:
        print(f"curate: warning: {w}", file=sys.stderr)
    if problems:
        raise CurationError("\n".join(problems))
    return manifest


def _info(manifest: pd.DataFrame, settings: Settings, sources: tuple, timing: dict, cache: dict) -> dict:
    counts = manifest.groupby(["domain", "split"]).size().unstack(fill_value=0)
    short = {f"{sp}{d}": int(len(manifest[(manifest.split == sp) & (manifest.domain == d)])) for sp, d in SPLIT_BUCKETS}
    return {"settings": {**dataclasses.asdict(settings), "placements": list(settings.placements)},
            "sources": dict(zip(("ffhq", "maskedfacenet", "curated"), (str(x or "") for x in sources))),
            "timing": timing, "counts": short, "cache": cache,
            "per_domain_split": {d: {k: int(v) for k, v in row.items()} for d, row in counts.iterrows()}}


# --- saying what went wrong -----------------------------------------------------------------------

def top_reasons(m: pd.DataFrame, domain: str, k: int = 3) -> list[tuple[str, int]]:
    """The domain's most frequent rejection reasons (placement choices and manual ones aside)."""
    r = m[(m.domain == domain) & (m.reason != "")].reason.str.split(";").explode()
    r = r[~r.str.startswith("placement:")].str.replace(r"^manual:.*", "manual", regex=True)
    return [(str(a), int(b)) for a, b in r.value_counts().head(k).items()]


def _hint(reason: str, m: pd.DataFrame, domain: str, s: Settings) -> str:
    if reason == "too_small":
        d = m[(m.domain == domain) & m.reason.str.contains("too_small")]
        side = int(np.median(np.minimum(d.width.astype(float), d.height.astype(float))))
        return (f"--load-size {side} (the median shorter side of those images), or --allow-upscale "
                f"to upscale them to {s.load_size}")
    return {"blurry": "--sharpness-tail (lower k keeps more) or --sharpness-min (the floor)",
            "multiple_faces": "--max-faces 2, or look at figures/rejected_*_multiple_faces.png",
            "no_face": "--no-require-face, or --detector cnn (finds more masked faces)",
            "not_rgb": "grayscale images are not used; convert them or leave them out",
            "unreadable": "the files named in manifest.csv do not decode",
            }.get(reason, "see manifest.csv")


def shortfalls(m: pd.DataFrame, s: Settings, curated: bool, records: list[readers.Record]) -> tuple[list, list]:
    """(problems, warnings): a split that cannot be filled (none found where some were asked for)
    is a problem; a split filled only in part, and a reason that rejects more than a quarter of a
    domain, are warnings. Each names the split or domain, the counts, the top reasons and what to change."""
    problems, warnings = [], []
    for d in "AB":
        considered = m[(m.domain == d) & ~m.reason.str.startswith("placement:")]
        for why, n in top_reasons(m, d):
            if len(considered) and n > 0.25 * len(considered):
                warnings.append(f"{why} rejects {n} of {len(considered)} images of domain {d}; to change: "
                                f"{_hint(why, m, d, s)}")
    for sp, d in SPLIT_BUCKETS:
        asked = (sum(1 for r in records if r.domain == d and r.split == sp) if curated
                 else {"train": s.n_train, "test": s.n_test, "val": s.n_val}[sp])
        found = int(((m.split == sp) & (m.domain == d)).sum())
        if asked == 0 or found >= asked:
            continue
        why = top_reasons(m, d)
        text = (f"{sp}{d}: {found} images of the {asked} asked for; top rejection reasons in {d}: "
                + (", ".join(f"{r} {n}" for r, n in why) or "none"))
        if why:
            text += f"; to change: {_hint(why[0][0], m, d, s)}"
        if sp in HELD_OUT and not curated:
            text += (f"; {sp} images need a counterpart in the other raw set "
                     f"({int((m[m.domain == d].note == 'identity used in the other domain').sum())} kept ids "
                     f"went to the other domain)")
        (problems if found == 0 else warnings).append(text)
    return problems, warnings


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False))


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle curate`: the inputs, then one flag per Settings field."""
    p.add_argument("--ffhq", default=None, help="FFHQ root (images1024x1024/ or thumbnails128x128/ inside)")
    p.add_argument("--maskedfacenet", default=None, help="MaskedFace-Net root (CMFD/ and/or IMFD/ inside)")
    p.add_argument("--curated", default=None, help="an already-curated trainA/trainB/testA/testB folder instead")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=at_least(0), default=0, help="processes (0 = all cores)")
    p.add_argument("--no-sheets", action="store_true", help="skip the contact sheets (figures/*.png)")
    add_field_arguments(p.add_argument_group("curation settings"), Settings)


def run_command(args) -> int:
    try:
        s = from_arguments(Settings, args)
        m = curate(args.out, ffhq=args.ffhq, maskedfacenet=args.maskedfacenet, curated=args.curated, settings=s,
                   workers=args.workers, sheets=not args.no_sheets)
    except (readers.LayoutError, CurationError) as exc:
        print(f"maskcycle curate: error: {exc}", file=sys.stderr)
        return 2
    print(m.groupby(["domain", "split"]).size().unstack(fill_value=0).to_string())
    info = json.loads((Path(args.out) / "curation.json").read_text())
    pc = info["pair_checks"]
    print(f"identities: {info['identities']}; pairs: {pc['checked']} checked, {pc['ok']} ok, flagged "
          f"{pc['flagged'] or 'none'}; placement from landmarks agrees with the file name for "
          f"{pc['placement_agreement']} of {pc['with_face']} pairs with a face")
    print(f"blur thresholds (variance of the Laplacian): {info['sharpness_threshold']}")
    if info.get("sheets"):
        print(f"contact sheets: {Path(args.out) / 'figures'}/ ({len(info['sheets'])} files)")
    return 0
