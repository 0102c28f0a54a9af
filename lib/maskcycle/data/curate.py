"""Curation: filter the raw sets with recorded reasons, split identity-disjointly, write the
curated folders, `manifest.csv`, `pairs_test.csv` and the decoded cache.

    maskcycle curate --ffhq RAW/ffhq --maskedfacenet RAW/maskedfacenet --out data/curated
    maskcycle curate --curated SHARED_CURATED_FOLDER --out data/curated

Steps (each rerunnable; an interrupted run resumes):
1. list the raw files (`readers`); masks whose placement is not wanted are rejected by name;
2. measure every other file once in a process pool (`measures.measure`), appending to
   `judgments.csv` so that a rerun skips files already judged (same path, size and mtime);
3. turn measurements into reasons with the thresholds, add the manual exclusion list;
4. split: n_test then n_train ids per domain, seeded, identity-disjoint (an FFHQ id used in A
   never appears in B, since MaskedFace-Net image N is FFHQ image N with a mask); test images
   are drawn among ids whose counterpart exists in the other raw set (`pairs_test.csv`);
5. write `<split><domain>/<id>.png` resized to load_size (skipping those already written from the
   same source and size), remove stale ones, and build the uint8 cache the trainer reads.

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

import numpy as np
import pandas as pd

from maskcycle.config import add_field_arguments, at_least, check_field_types, from_arguments
from maskcycle.data import measures, readers
from maskcycle.data.cache import cached_images
from maskcycle.data.images import read_rgb, write_png
from maskcycle.data.parallel import parallel_map
from maskcycle.io import atomic_write_text

MEASURE_COLUMNS = ["source_path", "bytes", "mtime_ns", "error", "width", "height", "mode", "gray_content",
                   "sharpness", "faces"]
MANIFEST_COLUMNS = ["id", "domain", "source_path", "placement", "split", "reason", "note", "out_file", "width",
                    "height", "mode", "sharpness", "faces", "ffhq_category"]
SPLIT_BUCKETS = (("test", "A"), ("test", "B"), ("train", "A"), ("train", "B"))
WRITTEN = "written_files.txt"  # every image curation set out to write: the only ones it ever removes


class CurationError(ValueError):
    """Bad curation input (settings, exclusion list, too few images); the message names it."""


def _field(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides the curated set; `maskcycle curate` flags and notebook 01's
    parameters are these fields (config.add_field_arguments / field_flags)."""

    n_train: int = _field(6000, "train images per domain (the study's target)")
    n_test: int = _field(1000, "test images per domain")
    load_size: int = _field(286, "side of the written images")
    seed: int = _field(0, "seed of the split")
    min_size: int = _field(0, "smallest accepted shorter side (0: load_size, i.e. never upscale)")
    sharpness_min: float = _field(8.0, "variance-of-Laplacian threshold at work_size")
    max_faces: int = _field(1, "images with more detected faces are rejected")
    require_face: bool = _field(False, "also reject images where no face is detected (Haar misses many masked faces)")
    placements: tuple[readers.Placement, ...] = _field(("correct",), "MaskedFace-Net placement classes kept "
                                                       "(IMFD classes are opt-in)")
    work_size: int = _field(256, "grayscale side at which sharpness and faces are measured")
    exclusions: str = _field("", "manual exclusion list (id,reason[,domain]); empty: none")

    def __post_init__(self) -> None:
        check_field_types(self, CurationError)
        for name in ("n_train", "load_size", "work_size", "max_faces"):
            if getattr(self, name) < 1:
                raise CurationError(f"curation setting {name}={getattr(self, name)} must be >= 1")
        for name in ("n_test", "min_size", "sharpness_min"):
            if getattr(self, name) < 0:
                raise CurationError(f"curation setting {name}={getattr(self, name)} must be >= 0")

    def thresholds(self) -> measures.Thresholds:
        return measures.Thresholds(min_size=self.min_size or self.load_size, sharpness_min=self.sharpness_min,
                                   max_faces=self.max_faces, require_face=self.require_face)


# --- step 2: measuring, resumable -----------------------------------------------------------------

def _measure_one(args) -> dict:
    path, work_size = args
    st = os.stat(path)
    row = {"source_path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    row.update(measures.measure(path, work_size))
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
    for col in ("bytes", "mtime_ns", "width", "height", "faces"):
        df[col] = pd.to_numeric(df[col]).astype("int64")
    df["sharpness"] = pd.to_numeric(df.sharpness, errors="coerce")  # nan for unreadable files
    df["gray_content"] = df.gray_content == "True"
    return df.drop_duplicates("source_path", keep="last")


def judge(paths: list[Path], out: Path, work_size: int = 256, workers: int = 0, progress: bool = True) -> tuple[
        pd.DataFrame, dict]:
    """Measurements of every path, reusing `out/judgments.csv`; returns them and timing figures."""
    log = out / "judgments.csv"
    stamp = out / "judgments.json"
    want = {"measure_version": measures.MEASURE_VERSION, "work_size": work_size, **measures.DETECT}
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
        _run_measurements(todo, log, work_size, workers, progress)
    seconds = time.perf_counter() - t0
    df = _read_log(log)
    df = df[df.source_path.isin({str(p) for p in paths})]
    timing = {"measured": len(todo), "reused": len(paths) - len(todo), "measure_seconds": round(seconds, 2),
              "images_per_s": round(len(todo) / seconds, 1) if todo and seconds > 0 else None}
    return df, timing


def _run_measurements(todo: list[Path], log: Path, work_size: int, workers: int, progress: bool) -> None:
    new_file = not log.exists() or log.stat().st_size == 0
    with open(log, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MEASURE_COLUMNS)
        if new_file:
            w.writeheader()
        jobs = [(p, work_size) for p in todo]
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


def judge_records(records: list[readers.Record], measured: pd.DataFrame, s: Settings,
                  exclusions: dict[tuple[str, str], str]) -> pd.DataFrame:
    """One row per record with its measurements and rejection reason ('' when kept)."""
    by_path = measured.set_index("source_path").to_dict("index") if len(measured) else {}
    t = s.thresholds()
    rows = []
    for r in records:
        m = by_path.get(str(r.path))
        why = []
        if r.domain == "B" and r.placement not in s.placements:
            why.append(f"placement:{r.placement}")
        elif m is None:
            why.append("not_measured")
        else:
            why.extend(measures.reasons(m, t))
        manual = exclusions.get((r.id, r.domain)) or exclusions.get((r.id, ""))
        if manual and not why:
            why.append(f"manual:{manual}")
        m = m or {}
        rows.append({"id": r.id, "domain": r.domain, "source_path": str(r.path), "placement": r.placement,
                     "reason": ";".join(why), "width": m.get("width"), "height": m.get("height"),
                     "mode": m.get("mode"), "sharpness": m.get("sharpness"), "faces": m.get("faces"),
                     "given_split": r.split})
    return pd.DataFrame(rows)


# --- step 4: the split ----------------------------------------------------------------------------

def choose_b(kept_b: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One B image per id: a correctly worn mask when there is one, else a seeded choice."""
    rng = np.random.default_rng([seed, 1])
    kept_b = kept_b.assign(_pref=(kept_b.placement != "correct").astype(int),
                           _r=rng.random(len(kept_b)))
    return kept_b.sort_values(["id", "_pref", "_r"]).drop_duplicates("id").drop(columns=["_pref", "_r"])


def split_ids(ids_a: set[str], ids_b: set[str], n_train: int, n_test: int, seed: int,
              test_ok_a: set[str] | None = None, test_ok_b: set[str] | None = None) -> dict[tuple[str, str], list]:
    """Assign ids to (split, domain) buckets: each id to at most one bucket, so A and B share no
    identity and test shares none with train. Ids go round-robin over the buckets in a seeded
    order; test buckets take only ids in test_ok_* (those with a counterpart), when given."""
    order = np.random.default_rng(seed).permutation(sorted(ids_a | ids_b))
    need = {b: (n_test if b[0] == "test" else n_train) for b in SPLIT_BUCKETS}
    out = {b: [] for b in SPLIT_BUCKETS}

    def ok(i, b):
        pool = ids_a if b[1] == "A" else ids_b
        if i not in pool:
            return False
        if b[0] == "test":
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


def assign(table: pd.DataFrame, s: Settings, all_records: list[readers.Record]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fill `split`, `note`, `out_file` in the judged table; returns it and the pairs table."""
    table = table.copy()
    table["split"] = np.where(table.reason == "", "unused", "rejected")
    table["note"] = ""
    table["out_file"] = ""
    kept = table[table.reason == ""]
    kept_a = kept[kept.domain == "A"].drop_duplicates("id")
    kept_b = choose_b(kept[kept.domain == "B"], s.seed)
    # A counterpart must decode (it is read at evaluation); rejected for blur etc. is still a true pair.
    decodable = set(table.source_path[table.width.notna() & ~table.reason.str.contains("unreadable")])
    candidates = [r for r in all_records if str(r.path) in decodable]
    raw_a = {r.id: r for r in candidates if r.domain == "A"}
    raw_b = {}
    for r in sorted((r for r in candidates if r.domain == "B"), key=lambda r: (r.placement != "correct", str(r.path))):
        raw_b.setdefault(r.id, r)
    if (table.given_split != "").any():  # an already-curated folder keeps its split
        chosen = {}
        for (sp, d) in SPLIT_BUCKETS:
            src = kept_a if d == "A" else kept_b
            chosen[(sp, d)] = sorted(src[src.given_split == sp].id)
    else:
        chosen = split_ids(set(kept_a.id), set(kept_b.id), s.n_train, s.n_test, s.seed,
                           test_ok_a=set(raw_b), test_ok_b=set(raw_a))
    used = {}
    for (sp, d), ids in chosen.items():
        for i in ids:
            used[(i, d)] = sp
    pick_b = set(kept_b.source_path)
    for k, r in table.iterrows():
        if r.reason:
            continue
        sp = used.get((r.id, r.domain))
        if r.domain == "B" and r.source_path not in pick_b:
            table.at[k, "note"] = "another image of this id chosen"
        elif sp:
            table.at[k, "split"] = sp
            table.at[k, "out_file"] = f"{sp}{r.domain}/{r.id}.png"
        elif any((r.id, d) in used for d in "AB"):
            table.at[k, "note"] = "identity used in the other domain"
        else:
            table.at[k, "note"] = "not drawn (beyond n_train)"
    pairs = []
    for (sp, d), ids in chosen.items():
        if sp != "test":
            continue
        other = raw_b if d == "A" else raw_a
        for i in ids:
            if i in other:
                pairs.append({"domain": d, "file": f"{i}.png", "id": i, "counterpart_path": str(other[i].path)})
    return table, pd.DataFrame(pairs, columns=["domain", "file", "id", "counterpart_path"])


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


def check_out(out: Path, sources: list) -> None:
    """Refuse an output folder that is, lies inside, or holds a source folder: curation resizes
    and removes files in its output."""
    o = out.resolve()
    for src in (Path(s).resolve() for s in sources if s is not None):
        if o == src or src in o.parents or o in src.parents:
            raise CurationError(f"--out {out} overlaps the source folder {src}: curation writes and removes "
                                "images in its output; choose a folder outside the sources")


def build_cache(out: Path, load_size: int) -> dict[str, list[int]]:
    """Decode each curated folder once into `out/cache/<folder>_<load_size>.npy` (the trainer's cache)."""
    shapes = {}
    for sub in readers.CURATED_FOLDERS:
        if (out / sub).is_dir() and any((out / sub).glob("*.png")):
            shapes[sub] = list(cached_images(out / sub, load_size).shape)
    return shapes


# --- the whole step -------------------------------------------------------------------------------

def curate(out: str | Path, ffhq: str | Path | None = None, maskedfacenet: str | Path | None = None,
           curated: str | Path | None = None, settings: Settings = Settings(), workers: int = 0,
           progress: bool = True) -> pd.DataFrame:
    """Curate raw FFHQ + MaskedFace-Net (or re-check an already-curated folder) into `out`.
    Returns the manifest; writes manifest.csv, pairs_test.csv, curation.json, the folders, the cache."""
    out = Path(out)
    if curated is not None:
        if ffhq is not None or maskedfacenet is not None:
            raise CurationError("give either --curated or --ffhq and --maskedfacenet, not both")
        records = readers.read_curated(curated)
    else:
        if ffhq is None or maskedfacenet is None:
            raise CurationError("curation needs both --ffhq and --maskedfacenet (or --curated)")
        records = readers.read_ffhq(ffhq) + readers.read_maskedfacenet(maskedfacenet)
    check_out(out, [ffhq, maskedfacenet, curated])  # after the layout checks: nothing is written before
    exclusions = read_exclusions(settings.exclusions) if settings.exclusions else {}
    t_start = time.perf_counter()
    to_measure = [r.path for r in records if r.domain == "A" or r.placement in settings.placements]
    measured, timing = judge(to_measure, out, settings.work_size, workers, progress)
    table = judge_records(records, measured, settings, exclusions)
    table, pairs = assign(table, settings, records)
    meta = readers.ffhq_metadata(ffhq) if ffhq is not None else {}
    table["ffhq_category"] = [meta.get(i, "") for i in table.id]  # training / validation (ffhq-dataset-v2.json)
    timing.update(write_images(table, out, settings.load_size, workers, progress))
    cache = build_cache(out, settings.load_size)
    timing["total_seconds"] = round(time.perf_counter() - t_start, 2)
    manifest = table.reindex(columns=MANIFEST_COLUMNS)
    manifest["out_file"] = manifest.out_file.fillna("")
    for col in ("width", "height", "faces"):
        manifest[col] = manifest[col].astype("Int64")
    _write_csv(out / "manifest.csv", manifest)
    _write_csv(out / "pairs_test.csv", pairs)
    counts = manifest.groupby(["domain", "split"]).size().unstack(fill_value=0)
    short = {f"{sp}{d}": int(len(manifest[(manifest.split == sp) & (manifest.domain == d)]))
             for sp, d in SPLIT_BUCKETS}
    info = {"settings": {**dataclasses.asdict(settings), "placements": list(settings.placements)},
            "sources": {"ffhq": str(ffhq or ""), "maskedfacenet": str(maskedfacenet or ""),
                        "curated": str(curated or "")},
            "timing": timing, "counts": short, "cache": cache,
            "per_domain_split": {d: {k: int(v) for k, v in row.items()} for d, row in counts.iterrows()}}
    atomic_write_text(out / "curation.json", json.dumps(info, indent=2) + "\n")
    if curated is None:
        wanted = {"train": settings.n_train, "test": settings.n_test}
        for b, n in short.items():
            if n == 0:
                raise CurationError(f"{out}: no images left for {b} after filtering (see manifest.csv)")
            if n < wanted[b[:-1]]:
                print(f"curate: warning: {b} has {n} images, fewer than the {wanted[b[:-1]]} asked for "
                      f"(an identity-disjoint split needs 2 x (n_train + n_test) distinct kept ids)")
    return manifest


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
    add_field_arguments(p.add_argument_group("curation settings"), Settings)


def run_command(args) -> int:
    try:
        s = from_arguments(Settings, args)
        m = curate(args.out, ffhq=args.ffhq, maskedfacenet=args.maskedfacenet, curated=args.curated, settings=s,
                   workers=args.workers)
    except (readers.LayoutError, CurationError) as exc:
        print(f"maskcycle curate: error: {exc}", file=sys.stderr)
        return 2
    print(m.groupby(["domain", "split"]).size().unstack(fill_value=0).to_string())
    return 0
