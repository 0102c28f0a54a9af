"""The curated folder's pair lists, the one place their names, columns and reader are spelled:
`pairs_test.csv` / `pairs_val.csv` (a held-out image and its true counterpart, with curation's
pair check) and `pairs_train.csv` (pix2pix's aligned training pairs)."""

from __future__ import annotations

from pathlib import Path

from maskcycle.io import CsvRow, read_csv_rows

HELD_OUT_COLUMNS = ("domain", "file", "id", "counterpart_path")  # plus `check` since pair checks exist


def pairs_path(root: str | Path, split: str) -> Path:
    """`<root>/pairs_<split>.csv` (split: train, val or test)."""
    return Path(root) / f"pairs_{split}.csv"


def read_held_out(root: str | Path, split: str = "test") -> list[CsvRow] | None:
    """The rows of `pairs_<split>.csv` (None when the folder has none); a malformed file is an error
    naming the file and line (io.read_csv_rows)."""
    path = pairs_path(root, split)
    return read_csv_rows(path, set(HELD_OUT_COLUMNS)) if path.is_file() else None


def failed_check(row: CsvRow) -> bool:
    """Whether curation's pair checks flagged this row (it is then no true pair)."""
    return row.get("check", "ok") not in ("", "ok")
