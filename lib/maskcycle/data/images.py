"""Listing, decoding and resizing images (PIL, bicubic as the reference).

Every image file is decoded through `decode_rgb`, which checks the header (sides, aspect ratio,
pixel count, mode: `check_shape`) before any pixel is decoded, so that no file can bring a shape
to the native libraries (dlib, OpenCV) that they mishandle: a 20000x20 PNG, enlarged by the face
detector to 256x256000, corrupted dlib's heap (`malloc(): corrupted top size`, exit 134)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from maskcycle.io import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}
# Image formats people have but PIL (as installed) cannot read: named, not silently passed over
UNSUPPORTED_SUFFIXES = {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".cr2": "Canon RAW", ".cr3": "Canon RAW",
                        ".nef": "Nikon RAW", ".arw": "Sony RAW", ".dng": "DNG RAW", ".raf": "Fuji RAW",
                        ".orf": "Olympus RAW", ".rw2": "Panasonic RAW", ".psd": "Photoshop", ".svg": "SVG",
                        ".jxl": "JPEG XL", ".gif": "GIF"}
MIN_SIDE = 8  # px: a smaller image cannot hold a face
# Longer over shorter side. Bounds what the face detector's resize makes of an image (shorter side
# enlarged to faces.DETECT_MIN_SIDE, so the longer one to at most 16x that), far from the wide
# shapes dlib's HOG pyramid corrupts memory on (256 x ~200000); a stitched panorama is ~4-10.
MAX_ASPECT = 16
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # PIL's decompression-bomb limit (~89 M), refused rather than warned
# File modes decoded to RGB (16-bit gray scaled, the rest by PIL's convert); others are refused
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "I;16L",
         "I;16B", "I;16N"}


class ImageReadError(OSError):
    """An image file that cannot be decoded; the message names the file."""


class ImageShapeError(ValueError):
    """An image whose sides, aspect ratio, pixel count or mode no reader accepts (`check_shape`)."""


def check_shape(width: int, height: int, mode: str = "RGB") -> None:
    """The one rule on what an image may be before native code sees it: ImageShapeError saying what
    is wrong ("too thin to hold a face: 20000x20")."""
    short, long = min(width, height), max(width, height)
    if short < MIN_SIDE:
        raise ImageShapeError(f"too small to hold a face: {width}x{height} (a side under {MIN_SIDE} px)")
    if long > MAX_ASPECT * short:
        raise ImageShapeError(f"too thin to hold a face: {width}x{height} (one side over {MAX_ASPECT}x the other)")
    if width * height > MAX_PIXELS:
        raise ImageShapeError(f"too large: {width}x{height} is over {MAX_PIXELS} pixels")
    if mode not in MODES:
        raise ImageShapeError(f"image mode {mode} is not supported")


def unsupported_format(path: Path) -> str:
    """"HEIC" etc. for a file of an image format this Pillow cannot read, else ""."""
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES and suffix not in Image.registered_extensions():
        return UNSUPPORTED_SUFFIXES[suffix]
    return ""


def is_image_file(path: Path) -> bool:
    """An image by its suffix, and not hidden: macOS `._x.png` / `.DS_Store` files are metadata."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder` (hidden files left out), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "nothing there"
        raise FileNotFoundError(f"{folder}: expected a folder of images, found {what}")
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def list_inputs(inputs, flag: str = "input") -> list[Path]:
    """Files given directly and the images directly inside the folders given, in the order given;
    files of image formats that cannot be read (HEIC, RAW) are listed too, so that each is reported.
    Nothing to work on is an error saying what the folders hold."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            out.extend(sorted(p for p in item.iterdir() if is_image_file(p) or
                              (unsupported_format(p) and not p.name.startswith(".") and p.is_file())))
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{flag} {item}: no such file or folder")
    if not out:
        others = sorted(p.name for item in map(Path, inputs) for p in item.iterdir() if not p.name.startswith("."))
        found = (f"{len(others)} other file(s), none an image: {', '.join(others[:3])}"
                 + (", ..." if len(others) > 3 else "")) if others else "it is empty"
        raise FileNotFoundError(f"{flag} {' '.join(map(str, inputs))}: no image files to work on ({found}; "
                                f"images are {', '.join(sorted(IMAGE_SUFFIXES))})")
    return out


def none_readable(problems: list[str]) -> str:
    """"3 files, none readable: a.HEIC (HEIC is not supported; ...), ..." from "path: why" lines."""
    parts = []
    for line in problems[:3]:
        path, _, why = line.partition(": ")
        why = why.removeprefix("cannot decode image (").removesuffix(")")
        parts.append(f"{Path(path).name} ({why})")
    more = ", ..." if len(problems) > 3 else ""
    return f"{len(problems)} file(s), none readable: {', '.join(parts)}{more}"


def decode_rgb(path: str | Path) -> tuple[np.ndarray, str]:
    """(uint8 HxWx3 RGB upright per its EXIF orientation, the file's own mode). Every reader decodes
    through here, so a truncated file or a decompression bomb is an ImageReadError everywhere."""
    rgb, mode, _ = _decode(path, keep=False)
    return rgb, mode


@dataclasses.dataclass
class Photo:
    """A decoded photo and what RGB leaves out: its alpha channel and ICC profile (to be written
    back), and how the output will differ from the file (`notes`)."""
    rgb: np.ndarray
    mode: str
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def decode_photo(path: str | Path) -> Photo:
    """`decode_rgb` plus the alpha channel (also a palette's transparency) and an RGB ICC profile."""
    rgb, mode, (alpha, icc) = _decode(path, keep=True)
    photo = Photo(rgb, mode, alpha, None)
    if icc and icc[16:20] == b"RGB ":  # the header's colour space: only an RGB profile describes RGB pixels
        photo.icc = icc
    elif icc:
        space = icc[16:20].decode("latin-1").strip() or "?"
        photo.notes.append(f"its {space} ICC profile is not kept (written as RGB)")
    changes = {"P": "palette", "PA": "palette", "1": "black-and-white", "L": "grayscale", "LA": "grayscale",
               "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}
    if mode.startswith("I"):
        photo.notes.append("16-bit grayscale written as 8-bit RGB")
    elif mode in changes:
        photo.notes.append(f"{changes[mode]} written as RGB" + ("A" if alpha is not None else ""))
    return photo


def _decode(path: str | Path, keep: bool) -> tuple[np.ndarray, str, tuple]:
    what = unsupported_format(Path(path))
    if what:
        raise ImageReadError(f"{path}: cannot decode image ({what} is not supported; convert it to PNG or JPEG)")
    try:
        with warnings.catch_warnings():
            # A header claiming a huge image: refuse it (PIL only warns below twice its limit).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_shape(*img.size, img.mode)  # from the header, before any pixel is decoded
                img.load()
                mode = img.mode
                upright = ImageOps.exif_transpose(img)
                extra = _alpha_and_icc(upright, img.info.get("icc_profile")) if keep else ()
                return _to_rgb8(upright), mode, extra
    except ImageShapeError as exc:
        raise ImageReadError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure (OSError, SyntaxError, struct.error, a bomb) is the file's
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None


def split_readable(paths) -> tuple[list[Path], list[str]]:
    """(the paths that decode, one "path: why" line per path that does not); decodes each once."""
    ok, bad = [], []
    for p in paths:
        try:
            decode_rgb(p)
            ok.append(Path(p))
        except ImageReadError as exc:
            bad.append(str(exc))
    return ok, bad


def _alpha_and_icc(img: Image.Image, icc: bytes | None) -> tuple[np.ndarray | None, bytes | None]:
    alpha = None
    if "A" in img.getbands():
        alpha = np.asarray(img.getchannel("A"), dtype=np.uint8).copy()
    elif "transparency" in img.info and img.mode in ("P", "L", "RGB"):
        alpha = np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.uint8).copy()
    return alpha, icc or None


def _to_rgb8(img: Image.Image) -> np.ndarray:
    # PIL's convert("RGB") clips 16-bit grayscale (I;16, I) at 255 instead of scaling it; 16-bit
    # RGB PNGs already open as 8-bit RGB (the high byte).
    if img.mode.startswith("I;16") or (img.mode == "I" and np.asarray(img).max() > 255):
        gray = np.round(np.asarray(img, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def centre_square(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square of an image (the whole image when it is square)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top:top + side, left:left + side]


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode to uint8 HxWx3 RGB (`decode_rgb`), optionally resized to size x size (bicubic)."""
    rgb, _ = decode_rgb(path)
    if size is not None and rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC), dtype=np.uint8).copy()
    return rgb


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


ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}  # formats Pillow writes an ICC profile into
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def write_image(path: str | Path, image_uint8: np.ndarray, alpha: np.ndarray | None = None,
                icc: bytes | None = None) -> list[str]:
    """Write one HxWx3 uint8 image atomically in the format its suffix names (JPEG at quality 95),
    with an alpha channel and ICC profile where given; returns notes on what the format could not hold."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}")
    img, notes, options = Image.fromarray(image_uint8), [], {"quality": 95} if fmt == "JPEG" else {}
    if alpha is not None and fmt in ALPHA_FORMATS:
        img = Image.fromarray(np.dstack([image_uint8, alpha]), mode="RGBA")
    elif alpha is not None:
        notes.append(f"alpha channel not kept ({fmt} cannot hold one)")
    if icc and fmt in ICC_FORMATS:
        options["icc_profile"] = icc
    elif icc:
        notes.append(f"ICC profile not kept ({fmt} cannot hold one)")
    with atomic_path(path, suffix=path.suffix) as tmp:
        img.save(tmp, format=fmt, **options)
    return notes
