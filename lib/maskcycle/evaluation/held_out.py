"""The held-out sets evaluation scores against: `<split>A/` and `<split>B/` of a curated folder
(split test, or val where epochs are chosen) resized to a trial's crop size through the decoded
cache, with their known pairs (`pairs_<split>.csv`: the true counterpart, the mask region where a
pair differs, the do-nothing baseline's numbers), decoded and measured once for every run."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from maskcycle.data import pair_files
from maskcycle.data.cache import cached_set
from maskcycle.data.images import ImageReadError, list_images, read_rgb
from maskcycle.evaluation import baselines, fid_protocol
from maskcycle.evaluation import paired_metrics as paired
from maskcycle.io import refuse_repeats


@dataclasses.dataclass
class TestSets:
    """The real test images of both domains at one size, their names, and the known pairs."""
    root: Path
    size: int
    A: np.ndarray
    B: np.ndarray
    names_A: list[str]
    names_B: list[str]
    pairs: list[dict]  # rows of pairs_test.csv: counterpart resolved to a Path, `truth` decoded at size
    pairs_note: str | None  # why there are no paired metrics, when there are none
    pairs_skipped: list[str]  # counterparts that cannot be decoded, each with the reason
    key: str  # fingerprint of what the sets were built from
    faces: dict = dataclasses.field(default_factory=dict)  # descriptors of the real sets, computed once
    pairs_flagged: int = 0  # rows of pairs_test.csv left out: they failed curation's pair checks
    split: str = "test"  # test, or val (where epochs are chosen)
    formats: dict = dataclasses.field(default_factory=dict)  # {"A"/"B": fid_protocol.file_format of the files}
    found_landmarks: dict = dataclasses.field(default_factory=dict)  # {"A"/"B": per image}, see `landmarks`

    def landmarks(self, domain: str) -> list:
        """The 68 landmarks of every image of `domain`, found once for all the runs that place
        themselves by them (compositing, the template and inpainting baselines)."""
        if domain not in self.found_landmarks:
            self.found_landmarks[domain] = baselines.crop_landmarks(self.A if domain == "A" else self.B)
        return self.found_landmarks[domain]


def _resolve_counterpart(value: str, root: Path) -> Path | None:
    path = Path(value)
    # Curation writes paths relative to the project root (or absolute); try every folder above too.
    candidates = [path] if path.is_absolute() else [root / path, *(a / path for a in root.resolve().parents),
                                                    Path.cwd() / path]
    return next((p for p in candidates if p.is_file()), None)


def read_pairs(root: str | Path, names_A: list[str], names_B: list[str],
               split: str = "test") -> tuple[list[dict], str | None]:
    """Rows of `<root>/pairs_<split>.csv` whose test file and counterpart exist: (rows, note).
    A malformed file or a row naming an unknown test file is an error naming the file and row;
    a counterpart path that is not there is an error too (relative paths are tried against the
    curated folder, every folder above it and the working directory)."""
    root, path = Path(root), pair_files.pairs_path(root, split)
    rows = pair_files.read_held_out(root, split)
    if rows is None:
        return [], f"no {path}: paired metrics need the curated pairs file"
    # a test file listed twice would count twice in every paired mean
    refuse_repeats(path, [(r.line, (r["domain"], r["file"]), f"test{r['domain']}/{r['file']}") for r in rows])
    known = {"A": set(names_A), "B": set(names_B)}
    out, flagged = [], 0
    for row in rows:
        line = row.line
        if pair_files.failed_check(row):
            flagged += 1
            continue
        domain = row["domain"].strip()
        if domain not in known:
            raise ValueError(f"{path} line {line}: domain {domain!r} is not 'A' or 'B'")
        if row["file"] not in known[domain]:
            raise ValueError(f"{path} line {line}: file {row['file']!r} is not in {split}{domain}/")
        counterpart = _resolve_counterpart(row["counterpart_path"], root)
        if counterpart is None:
            raise FileNotFoundError(f"{path} line {line}: counterpart_path {row['counterpart_path']!r} not found "
                                    f"(tried under {root}, every folder above it and the working directory)")
        out.append({"domain": domain, "file": row["file"], "id": row["id"], "counterpart": counterpart})
    if out:
        return out, None
    return out, (f"{path}: all {flagged} pairs failed curation's checks (column check)" if flagged
                 else f"{path} lists no pairs (no test image has a known counterpart)")


def flagged_pairs(root: str | Path, split: str = "test") -> int:
    """Rows of `<root>/pairs_<split>.csv` that failed curation's pair checks (column `check`)."""
    return sum(map(pair_files.failed_check, pair_files.read_held_out(root, split) or []))


def fingerprint(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def has_split(root: str | Path, split: str) -> bool:
    """Whether a curated folder holds `<split>A/` and `<split>B/` (old curations have no val split)."""
    return all((Path(root) / f"{split}{d}").is_dir() for d in "AB")


def load_test_sets(root: str | Path, size: int, split: str = "test") -> TestSets:
    """<split>A/<split>B of a curated folder resized to `size` (through the decoded cache), and its pairs."""
    root = Path(root)
    files_A, files_B = list_images(root / f"{split}A"), list_images(root / f"{split}B")
    for name, files in ((f"{split}A", files_A), (f"{split}B", files_B)):
        if len(files) < 2:
            raise FileNotFoundError(f"{root / name}: evaluation needs at least 2 {split} images, found {len(files)}")
    (A, names_A), (B, names_B) = cached_set(root / f"{split}A", size), cached_set(root / f"{split}B", size)
    pairs, note = read_pairs(root, names_A, names_B, split)  # unreadable test images are left out (named)
    index = {"A": {n: i for i, n in enumerate(names_A)}, "B": {n: i for i, n in enumerate(names_B)}}
    # Decoded and measured once here, not per epoch: the truth, the mask region (where the real pair
    # differs) and the do-nothing baseline. A broken counterpart drops its pair (recorded), not the trial.
    kept, skipped = [], []
    for pair in pairs:
        try:
            truth = read_rgb(pair["counterpart"], size)
        except ImageReadError as exc:
            skipped.append(f"{pair['domain']}/{pair['file']}: {exc}")
            continue
        source = np.asarray((B if pair["domain"] == "B" else A)[index[pair["domain"]][pair["file"]]])
        region = paired.mask_region(source, truth) if pair["domain"] == "B" else paired.mask_region(truth, source)
        kept.append({**pair, "truth": truth, "region": region,
                     "baseline": paired.baseline_metrics(source, truth, region)})
    if pairs and not kept:
        note = f"no counterpart in {pair_files.pairs_path(root, split)} could be decoded"
    pairs_file = [p for p in [pair_files.pairs_path(root, split)] if p.is_file()]
    key = fingerprint(files_A + files_B + pairs_file, f"size={size}")
    formats = {"A": fid_protocol.file_format(files_A), "B": fid_protocol.file_format(files_B)}
    return TestSets(root, size, A, B, names_A, names_B, kept, note, skipped, key,
                    pairs_flagged=flagged_pairs(root, split), split=split, formats=formats)


def memoized(root: Path, size: int, memo: dict | None, split: str = "test") -> TestSets:
    """load_test_sets, once per (folder, size, split) for all the runs that share `memo`."""
    if memo is None:
        return load_test_sets(root, size, split)
    if (str(root), size, split) not in memo:
        memo[(str(root), size, split)] = load_test_sets(root, size, split)
    return memo[(str(root), size, split)]
