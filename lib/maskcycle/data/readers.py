"""Readers for the real data layouts: FFHQ, MaskedFace-Net, and an already-curated folder.

Each reader lists what is there as `Record`s (face id, domain, file, placement) without decoding
anything; a missing or wrongly laid-out root raises `LayoutError` saying what was expected and
what was found.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from maskcycle.data.images import is_image_file, list_images

# MaskedFace-Net file-name suffix (lower case) -> placement class: what the mask leaves uncovered.
PLACEMENT_BY_SUFFIX = {
    "mask": "correct",
    "mask_mouth_chin": "nose_uncovered",
    "mask_nose_mouth": "chin_uncovered",
    "mask_chin": "nose_mouth_uncovered",
}
Placement = Literal["correct", "nose_uncovered", "chin_uncovered", "nose_mouth_uncovered"]
PLACEMENTS = get_args(Placement)
assert set(PLACEMENTS) == set(PLACEMENT_BY_SUFFIX.values())
FFHQ_VARIANTS = ("images1024x1024", "thumbnails128x128")
CURATED_FOLDERS = ("trainA", "trainB", "testA", "testB", "valA", "valB")

_FFHQ_NAME = re.compile(r"^(\d{5})$")
_MFN_NAME = re.compile(r"^(\d{5})_(mask(?:_[a-z]+)*)$", re.IGNORECASE)


class LayoutError(ValueError):
    """A data root that is not laid out as expected; the message says what was expected and found."""


@dataclass(frozen=True)
class Record:
    """One raw image: face id (5 digits; the FFHQ id, shared by MaskedFace-Net), domain A or B."""

    id: str
    domain: str
    path: Path
    placement: str = ""  # B only: one of PLACEMENTS, or "unknown"
    split: str = ""  # set only for an already-curated folder


def _found(folder: Path, limit: int = 8) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "nothing (not a readable folder)"
    if not names:
        return "an empty folder"
    more = f" ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_file(p))


def _require_dir(root: Path, what: str) -> None:
    if not root.exists():
        raise LayoutError(f"{root}: {what} root does not exist")
    if not root.is_dir():
        raise LayoutError(f"{root}: expected the {what} folder, found a file")


def ffhq_image_folder(root: str | Path, variant: str = "auto") -> Path:
    """The folder of FFHQ images under `root` (the FFHQ root, or the images folder itself)."""
    root = Path(root)
    _require_dir(root, "FFHQ")
    if root.name in FFHQ_VARIANTS:
        return root
    want = FFHQ_VARIANTS if variant == "auto" else (variant,)
    for name in want:
        if (root / name).is_dir():
            return root / name
    raise LayoutError(
        f"{root}: expected an FFHQ tree with {' or '.join(want)}/ holding folders 00000/, 01000/, ... "
        f"of NNNNN.png; found {_found(root)}")


def read_ffhq(root: str | Path, variant: str = "auto") -> list[Record]:
    """Domain A records of an FFHQ tree (`images1024x1024` or `thumbnails128x128`)."""
    folder = ffhq_image_folder(root, variant)
    records = []
    for p in _images_under(folder):
        m = _FFHQ_NAME.match(p.stem)
        if m:
            records.append(Record(m.group(1), "A", p))
    if not records:
        raise LayoutError(f"{folder}: expected FFHQ images named NNNNN.png (5-digit ids) in folders of 1000; "
                          f"found {_found(folder)}")
    return records


def ffhq_metadata(root: str | Path) -> dict[str, str]:
    """id -> category ('training' / 'validation') from the optional `ffhq-dataset-v2.json`."""
    root = Path(root)
    path = root / "ffhq-dataset-v2.json" if root.name not in FFHQ_VARIANTS else root.parent / "ffhq-dataset-v2.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
        return {f"{int(k):05d}": str(v.get("category", "")) for k, v in meta.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise LayoutError(f"{path}: expected FFHQ's metadata JSON {{'0': {{'category': ...}}, ...}} ({exc})") from None


def read_maskedfacenet(root: str | Path) -> list[Record]:
    """Domain B records of a MaskedFace-Net tree: `CMFD/` and/or `IMFD/` (any case), placement
    read from the file suffix (`_Mask`, `_Mask_Mouth_Chin`, `_Mask_Nose_Mouth`, `_Mask_Chin`)."""
    root = Path(root)
    _require_dir(root, "MaskedFace-Net")
    tops = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() in ("cmfd", "imfd")]
    if not tops:
        raise LayoutError(f"{root}: expected a MaskedFace-Net tree with CMFD/ and/or IMFD/ (any case) holding "
                          f"NNNNN_Mask*.jpg; found {_found(root)}")
    records = []
    for top in tops:
        for p in _images_under(top):
            m = _MFN_NAME.match(p.stem)
            if m:
                placement = PLACEMENT_BY_SUFFIX.get(m.group(2).lower(), "unknown")
                records.append(Record(m.group(1), "B", p, placement))
    if not records:
        raise LayoutError(f"{root}: found {', '.join(t.name for t in tops)} but no images named NNNNN_Mask*.jpg "
                          f"in them")
    return records


def read_curated(root: str | Path) -> list[Record]:
    """Records of an already-curated folder `trainA/ trainB/ [testA/ testB/ valA/ valB/]`; the file stem is the id."""
    root = Path(root)
    _require_dir(root, "curated")
    by_lower = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    missing = [n for n in ("trainA", "trainB") if n.lower() not in by_lower]
    if missing:
        raise LayoutError(f"{root}: expected a curated folder with trainA/ trainB/ (and testA/ testB/); "
                          f"missing {', '.join(missing)}; found {_found(root)}")
    records = []
    for name in CURATED_FOLDERS:
        folder = by_lower.get(name.lower())
        if folder is None:
            continue
        for p in list_images(folder):
            records.append(Record(p.stem, name[-1], p, "correct" if name[-1] == "B" else "", name[:-1]))
    if not any(r.domain == "A" for r in records) or not any(r.domain == "B" for r in records):
        raise LayoutError(f"{root}: trainA/ and trainB/ must both hold images")
    return records
