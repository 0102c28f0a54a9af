"""Per-image measurements for curation, and the thresholds that turn them into reasons.

`measure(path)` decodes one file and returns plain numbers (size, mode, sharpness, face count);
`reasons(measurement, thresholds)` says why an image is rejected. Measuring is the slow part and
is done once per file (curation keeps a log of measurements); thresholds can change afterwards
without decoding again.

Sharpness is the variance of the Laplacian on a grayscale copy resized to `work_size`, so that
thresholds mean the same for 128-px thumbnails and 1024-px originals; its threshold comes from each
domain's own distribution (`sharpness_threshold`), above an absolute floor. Faces are counted twice:
with OpenCV's frontal-face Haar cascade (cheap; kept for comparison) and with the face module's dlib
detector (`faces_dlib`, HOG or CNN) on the RGB copy at `work_size`, which is what curation uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from maskcycle.data.images import decode_rgb

MEASURE_VERSION = 2  # bump when measure() changes meaning: logged measurements are then redone
CASCADE = "haarcascade_frontalface_alt2.xml"  # no double hits on one face in our checks
# detectMultiScale settings; part of the measurement key, so changing them re-measures
DETECT = {"cascade": CASCADE, "scale_factor": 1.15, "min_neighbors": 3, "min_size_fraction": 1 / 8}


@dataclass(frozen=True)
class Thresholds:
    """What a kept image must satisfy."""

    min_size: int = 256  # shorter side in pixels
    sharpness_min: float = 8.0  # variance of the Laplacian at work_size
    max_faces: int = 1
    require_face: bool = False  # reject images where the detector finds no face (misses many masked faces)


def sharpness_threshold(values, floor: float, k: float) -> float:
    """A domain's blur threshold: the robust low tail of log sharpness, median - k * 1.4826 * MAD
    (a normal's k-sigma tail that a few planted or real outliers do not move), never below `floor`.
    Drawn faces and real photos differ by orders of magnitude, so no one constant fits both."""
    v = np.asarray(values, dtype=np.float64)
    v = np.log(v[np.isfinite(v) & (v > 0)])
    if k <= 0 or len(v) < 10:  # too few images to estimate a tail
        return float(floor)
    med = float(np.median(v))
    sigma = 1.4826 * float(np.median(np.abs(v - med)))
    return round(max(float(floor), float(np.exp(med - k * sigma))), 3)


@functools.cache
def _detector(name: str = CASCADE):
    import cv2

    cv2.setNumThreads(1)  # one image per process; the pool supplies the parallelism
    path = cv2.data.haarcascades + name
    det = cv2.CascadeClassifier(path)
    if det.empty():
        raise RuntimeError(f"{path}: cannot load the Haar cascade (opencv-python-headless 4.x ships it; 5.x does not)")
    return det


def gray_work(rgb: np.ndarray, work_size: int) -> np.ndarray:
    """uint8 grayscale copy resized to work_size x work_size."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if g.shape != (work_size, work_size):
        interp = cv2.INTER_AREA if g.shape[0] > work_size else cv2.INTER_CUBIC
        g = cv2.resize(g, (work_size, work_size), interpolation=interp)
    return g


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurred images."""
    import cv2

    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def count_faces(gray: np.ndarray) -> int:
    """Frontal faces found by the Haar cascade (settings in DETECT)."""
    n = int(gray.shape[0] * DETECT["min_size_fraction"])
    found = _detector(DETECT["cascade"]).detectMultiScale(gray, scaleFactor=DETECT["scale_factor"],
                                                          minNeighbors=DETECT["min_neighbors"], minSize=(n, n))
    return int(len(found))


def count_faces_dlib(rgb: np.ndarray, work_size: int, detector: str) -> int:
    """Faces found by the face module's detector on an RGB copy at work_size (-1: not counted)."""
    if detector not in ("hog", "cnn"):
        return -1
    from PIL import Image as _Image

    from maskcycle.data import faces

    if rgb.shape[:2] != (work_size, work_size):
        rgb = np.asarray(_Image.fromarray(rgb).resize((work_size, work_size), _Image.BICUBIC))
    return len(faces.detect(rgb, detector))


def measure(path, work_size: int = 256, detector: str = "") -> dict:
    """Decode one file and measure it. Never raises for a bad file: `error` says what went wrong.
    `detector` ('hog', 'cnn' or '' for none) also counts faces with dlib (`faces_dlib`)."""
    out = {"error": "", "width": 0, "height": 0, "mode": "", "gray_content": False, "sharpness": np.nan,
           "faces": -1, "faces_dlib": -1}
    try:
        rgb, mode = decode_rgb(path)  # upright, as every reader sees it
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        return out
    out.update(width=rgb.shape[1], height=rgb.shape[0], mode=mode)
    # an RGB file whose three channels are equal holds a grayscale picture
    out["gray_content"] = bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))
    g = gray_work(rgb, work_size)
    out["sharpness"] = round(sharpness(g), 3)
    out["faces"] = count_faces(g)
    out["faces_dlib"] = count_faces_dlib(rgb, work_size, detector)
    return out


def reasons(m: dict, t: Thresholds) -> list[str]:
    """Why a measured image is rejected (empty when kept), in a fixed order."""
    if m.get("error"):
        return ["unreadable"]
    why = []
    if min(m["width"], m["height"]) < t.min_size:
        why.append("too_small")
    if m["mode"] != "RGB" or m["gray_content"]:
        why.append("not_rgb")
    if m["faces"] > t.max_faces:
        why.append("multiple_faces")
    elif m["faces"] == 0 and t.require_face:
        why.append("no_face")
    if not m["sharpness"] >= t.sharpness_min:
        why.append("blurry")
    return why
