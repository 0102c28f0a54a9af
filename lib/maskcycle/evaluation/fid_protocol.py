"""The FID protocol, stated and selectable: how images reach the feature extractor, and in what format.

- Resize (`FID_RESIZE`): `legacy` hands the images to torch-fidelity as they are, so its Inception
  upsamples them to 299 with TensorFlow-1-compatible bilinear interpolation (no antialiasing), as
  the original FID code and every published FID; `clean` first resizes each image to 299 x 299 with
  PIL's antialiased bicubic filter (the clean-fid convention: Parmar et al., CVPR 2022), then the
  same Inception (whose own resize is then the identity). The clean resize works on uint8 images
  (clean-fid resizes float32 images; the rounding differs by at most half a grey level).
- Format: the real and generated sets are compared in the same file format. A real set stored as
  JPEG makes the fakes JPEG too, at the real set's estimated quality (libjpeg's quality scaling of
  its quantisation tables) with PIL's default 4:2:0 chroma subsampling (`match_format`); a PNG
  real set leaves the (lossless) fakes as they are. `describe` records both sides: protocol, image
  count, image size and file format.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

FID_RESIZE = ("legacy", "clean")
INCEPTION_SIZE = 299
# libjpeg's standard luminance quantisation table (JPEG Annex K), in natural order
_STD_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def check_resize(value: str) -> str:
    if value not in FID_RESIZE:
        raise ValueError(f"fid_resize {value!r}: expected one of {', '.join(FID_RESIZE)}")
    return value


def resize_for_inception(images_uint8: np.ndarray, mode: str) -> np.ndarray:
    """The images as the extractor gets them: unchanged (`legacy`) or antialiased-bicubic to 299 (`clean`)."""
    if check_resize(mode) == "legacy":
        return images_uint8
    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    return np.stack([np.asarray(Image.fromarray(np.asarray(im)).resize(size, Image.BICUBIC), dtype=np.uint8)
                     for im in images_uint8])


def _scaled_table(quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip((_STD_LUMA * scale + 50) // 100, 1, 255)


def jpeg_quality(path: str | Path) -> int | None:
    """libjpeg quality (1-100) whose luminance table is closest to the file's; None when not JPEG."""
    with Image.open(path) as im:
        if im.format != "JPEG" or not getattr(im, "quantization", None):
            return None
        table = np.asarray(im.quantization[0], dtype=np.float64)
    if table.shape != (64,):
        return None
    # PIL gives the table in zig-zag order in older releases and natural order in newer ones: compare
    # sorted values, which both orders share
    errors = [np.abs(np.sort(_scaled_table(q)) - np.sort(table)).sum() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def file_format(paths: list[Path]) -> dict:
    """The set's file format: {"format": "PNG" / "JPEG" / "mixed: ..." / "array", "jpeg_quality": q or None}.
    The JPEG quality is the most common estimate over (at most 20 of) the files."""
    if not paths:
        return {"format": "array", "jpeg_quality": None}
    formats = Counter()
    for p in paths:
        with Image.open(p) as im:
            formats[im.format or Path(p).suffix.lstrip(".").upper()] += 1
    if len(formats) > 1:
        return {"format": "mixed: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())), "jpeg_quality": None}
    fmt = next(iter(formats))
    quality = None
    if fmt == "JPEG":
        found = Counter(q for q in (jpeg_quality(p) for p in paths[:20]) if q is not None)
        quality = found.most_common(1)[0][0] if found else None
    return {"format": fmt, "jpeg_quality": quality}


def jpeg_roundtrip(images_uint8: np.ndarray, quality: int) -> np.ndarray:
    """Each image encoded as JPEG at `quality` (PIL defaults otherwise) and decoded again."""
    out = []
    for im in images_uint8:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(im)).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as decoded:
            out.append(np.asarray(decoded.convert("RGB"), dtype=np.uint8))
    return np.stack(out)


def match_format(fakes_uint8: np.ndarray, real: dict) -> tuple[np.ndarray, dict]:
    """The fakes in the real set's format, and the fakes' format record: JPEG at the real set's
    quality when the real set is JPEG (85, PIL's usual default, when no quality could be read), else
    unchanged (our fakes are lossless: PNG or arrays)."""
    if real.get("format") == "JPEG":
        quality = real.get("jpeg_quality") or 85
        return jpeg_roundtrip(fakes_uint8, quality), {"format": "JPEG", "jpeg_quality": quality,
                                                      "note": "re-encoded to match the real set"}
    return fakes_uint8, {"format": "PNG", "jpeg_quality": None, "note": "lossless"}


def describe(resize: str, fakes: np.ndarray, real: np.ndarray, fake_format: dict, real_format: dict) -> dict:
    """What one FID compared: protocol, and each set's image count, size and file format."""
    def side(images, fmt):
        return {"n": int(len(images)), "size": list(np.asarray(images).shape[1:3]), **fmt}

    return {"resize": resize, "fake": side(fakes, fake_format), "real": side(real, real_format)}
