"""The decoded uint8 cache: decode and resize a folder once, then memory-map it every epoch.

`<folder>/../cache/<folder name>_<size>.npy` holds N x size x size x 3 uint8 images in file-name
order; a JSON key beside it (file names, byte sizes, mtimes, size) says what it was built from,
so the cache is rebuilt only when the folder or the size changes. A read-only data root gets an
in-memory array instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from maskcycle.data.images import list_images, read_rgb
from maskcycle.io import atomic_path, atomic_write_text


def _fingerprint(files: list[Path], size: int) -> str:
    h = hashlib.sha256(f"size={size}\n".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode_folder(files: list[Path], size: int) -> np.ndarray:
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(files):
        out[i] = read_rgb(p, size)
    return out


def cached_images(folder: str | Path, size: int, cache_dir: str | Path | None = None) -> np.ndarray:
    """All images of `folder` resized to size x size, as a (memory-mapped) uint8 array."""
    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no images found")
    key = _fingerprint(files, size)
    cache_dir = Path(cache_dir) if cache_dir is not None else folder.parent / "cache"
    array_path = cache_dir / f"{folder.name}_{size}.npy"
    key_path = array_path.with_suffix(".json")
    try:
        if array_path.exists() and json.loads(key_path.read_text()).get("key") == key:
            return np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        pass  # stale or half-written cache: rebuild below
    images = decode_folder(files, size)
    try:
        with atomic_path(array_path) as tmp, tmp.open("wb") as f:
            np.save(f, images)
        atomic_write_text(key_path, json.dumps({"key": key, "files": [p.name for p in files], "size": size}))
    except OSError:
        return images  # read-only data root: keep the decoded array in memory
    return np.load(array_path, mmap_mode="r")
