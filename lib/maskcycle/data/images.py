"""Listing, decoding and resizing images (PIL, bicubic as the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from maskcycle.io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


class ImageReadError(OSError):
    """An image file that cannot be decoded; the message names the file."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: expected a folder of images, found nothing there")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_inputs(inputs, flag: str = "input") -> list[Path]:
    """Files given directly and the images directly inside the folders given, in the order given."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out.extend(list_images(item))
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{flag} {item}: no such file or folder")
    return out


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode to uint8 HxWx3 RGB, upright per its EXIF orientation (phone photos), optionally resized
    to size x size (bicubic)."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img).convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            return np.asarray(img, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: cannot decode image ({exc})") from None


def to_unit_range(t):
    """A tensor of 0..255 values -> float in [-1, 1], the models' range (the one place it is set)."""
    return t.float().div_(127.5).sub_(1.0)


def to_tensor(images_uint8: np.ndarray):
    """NxHxWx3 uint8 -> Nx3xHxW float in [-1, 1]."""
    import torch

    return to_unit_range(torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2))


def to_uint8(images) -> np.ndarray:
    """Nx3xHxW float in [-1, 1] -> NxHxWx3 uint8 (rounded)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu").byte()
    return x.permute(0, 2, 3, 1).numpy()


def write_png(path: str | Path, image_uint8: np.ndarray) -> None:
    """Write one HxWx3 uint8 image as PNG atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image_uint8).save(tmp, format="PNG")


def write_image(path: str | Path, image_uint8: np.ndarray) -> None:
    """Write one HxWx3 uint8 image atomically in the format its suffix names (JPEG at quality 95)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}")
    with atomic_path(path, suffix=path.suffix) as tmp:
        Image.fromarray(image_uint8).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
