"""The decoded uint8 cache: decode and resize a folder once, then memory-map it every epoch.

`<folder>/../cache/<folder name>_<size>.npy` holds N x size x size x 3 uint8 images in file-name
order; a JSON key beside it (file names, byte sizes, mtimes, size) says what it was built from,
so the cache is rebuilt only when the folder or the size changes. A read-only data root gets an
in-memory array instead. Files that cannot be decoded are left out of the cache and all named at
once on stderr (every time the cache is used), so one bad file never stops a long job.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from maskcycle.data.images import ImageReadError, list_images, read_rgb
from maskcycle.io import atomic_path, atomic_write_text


def _fingerprint(files: list[Path], size: int) -> str:
    h = hashlib.sha256(f"size={size}\n".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def content_fingerprint(folder: str | Path) -> str:
    """What a folder holds (image names and byte sizes, not times): equal after a copy or a move."""
    h = hashlib.sha256()
    for p in list_images(folder):
        h.update(f"{p.name}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def decode_folder(files: list[Path], size: int) -> tuple[np.ndarray, dict[str, str]]:
    """The decodable files as one array, and {file name: why} for those that are not."""
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    bad: dict[str, str] = {}
    n = 0
    for p in files:
        try:
            out[n] = read_rgb(p, size)
            n += 1
        except ImageReadError as exc:
            bad[p.name] = str(exc).removeprefix(f"{p}: ")
    return out[:n], bad


def report_skipped(folder: Path, bad: dict[str, str]) -> None:
    if bad:
        listed = "; ".join(f"{name} ({why})" for name, why in bad.items())
        print(f"maskcycle: warning: {folder}: skipped {len(bad)} unreadable image(s): {listed}", file=sys.stderr)


def cached_images(folder: str | Path, size: int, cache_dir: str | Path | None = None) -> np.ndarray:
    """All decodable images of `folder` resized to size x size, as a (memory-mapped) uint8 array."""
    return cached_set(folder, size, cache_dir)[0]


def cached_set(folder: str | Path, size: int, cache_dir: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """(the images as `cached_images` gives them, their file names in the same order)."""
    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no images found")
    key = _fingerprint(files, size)
    cache_dir = Path(cache_dir) if cache_dir is not None else folder.parent / "cache"
    array_path = cache_dir / f"{folder.name}_{size}.npy"
    key_path = array_path.with_suffix(".json")
    try:
        built = json.loads(key_path.read_text()) if array_path.exists() else {}
        if built.get("key") == key:
            report_skipped(folder, built.get("skipped", {}))
            return np.load(array_path, mmap_mode="r"), built["files"]
    except (OSError, ValueError, KeyError):
        pass  # stale or half-written cache: rebuild below
    images, bad = decode_folder(files, size)
    report_skipped(folder, bad)
    if not len(images):
        raise FileNotFoundError(f"{folder}: none of its {len(files)} image(s) can be decoded")
    names = [p.name for p in files if p.name not in bad]
    try:
        with atomic_path(array_path) as tmp, tmp.open("wb") as f:
            np.save(f, images)
        atomic_write_text(key_path, json.dumps({"key": key, "files": names, "skipped": bad, "size": size}))
    except OSError:
        return images, names  # read-only data root: keep the decoded array in memory
    return np.load(array_path, mmap_mode="r"), names
