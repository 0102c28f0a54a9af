"""Faces in real photos with dlib: detection (HOG or CNN), 68 landmarks, FFHQ alignment with its
transform kept, paste-back with a feathered mask, and 128-D identity descriptors.

The models come from the `face-recognition-models` wheel (found without importing it: its
`__init__` needs pkg_resources) and are loaded once per process on first use. The 68-point shape
predictor was trained on iBUG 300-W, whose licence excludes commercial use.

Alignment follows the FFHQ data set's own `recreate_aligned_images` (eye and mouth landmarks ->
an oriented square quad -> shrink, crop, reflect-pad with blur, resample), at N px instead of 1024.
`Aligned.to_aligned` is the similarity from photo to crop coordinates, so `paste_back` can warp a
translated crop into the photo at full resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DETECTORS = ("hog", "cnn")
MODEL_FILES = {"cnn": "mmod_human_face_detector.dat", "landmarks": "shape_predictor_68_face_landmarks.dat",
               "descriptor": "dlib_face_recognition_resnet_model_v1.dat"}
DETECT_MIN_SIDE = 256  # smaller images are enlarged first: HOG needs faces of ~80 px (~40 with one upsampling)
DETECT_MAX_SIDE = 1600  # larger ones are reduced for detection only (landmarks run at full resolution)
SAME_PERSON = 0.6  # dlib's threshold on descriptor distance
# The face box of an FFHQ-aligned crop as fractions of its side (left, top, right, bottom): the HOG box
# found on the aligned astronaut photo (scikit-image); used where the detector misses an aligned face.
ALIGNED_FACE_BOX = (0.25, 0.36, 0.74, 0.85)


class FaceModelError(RuntimeError):
    """A dlib model file is missing; the message names it and the package that ships it."""


@dataclasses.dataclass(frozen=True)
class Face:
    """A detected face: box (left, top, right, bottom) in image pixels, and the detector's score."""
    box: tuple[int, int, int, int]
    score: float

    @property
    def area(self) -> int:
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


@dataclasses.dataclass
class Aligned:
    """An FFHQ-aligned face crop, the quad it came from (photo coordinates: upper-left, lower-left,
    lower-right, upper-right) and the 2x3 similarity photo (x, y) -> crop (u, v) in continuous
    coordinates (pixel index + 0.5)."""
    image: np.ndarray
    quad: np.ndarray
    to_aligned: np.ndarray


def model_path(kind: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError("the dlib models need the package face-recognition-models (pip install "
                             "face-recognition-models==0.3.0)")
    path = Path(spec.submodule_search_locations[0]) / "models" / MODEL_FILES[kind]
    if not path.is_file():
        raise FaceModelError(f"{path}: dlib model file missing (reinstall face-recognition-models)")
    return path


@functools.cache
def _model(kind: str):
    import dlib

    if kind == "hog":
        return dlib.get_frontal_face_detector()
    path = str(model_path(kind))
    return {"cnn": dlib.cnn_face_detection_model_v1, "landmarks": dlib.shape_predictor,
            "descriptor": dlib.face_recognition_model_v1}[kind](path)


def _working_scale(image: np.ndarray) -> float:
    """The detector's resize. With `images.check_shape` passed first (aspect <= MAX_ASPECT, side >=
    MIN_SIDE) the working image has sides between DETECT_MAX_SIDE / MAX_ASPECT and
    DETECT_MIN_SIDE * MAX_ASPECT: never a tiny side, nor the huge strips that crash dlib."""
    from maskcycle.data.images import check_shape

    check_shape(image.shape[1], image.shape[0])
    side = min(image.shape[:2])
    if side < DETECT_MIN_SIDE:
        return DETECT_MIN_SIDE / side
    return min(1.0, DETECT_MAX_SIDE / max(image.shape[:2]))


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def detect(image: np.ndarray, detector: str = "hog", upsample: int | None = None) -> list[Face]:
    """Faces in an HxWx3 uint8 RGB image, best score first. Small images are enlarged and large ones
    reduced for the search (boxes are in the given image's pixels). HOG scores are SVM margins
    (> 0 is a face), CNN scores dlib's confidences. `upsample` (pyramid doublings; default 1 for HOG,
    0 for the CNN, which costs ~4x per doubling) lets smaller faces be found."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if upsample is None:
        upsample = 1 if detector == "hog" else 0
    scale = _working_scale(image)
    work = _resized(image, scale)
    if detector == "hog":
        rects, scores, _ = _model("hog").run(work, upsample, 0.0)
        found = list(zip(rects, scores))
    else:
        found = [(d.rect, d.confidence) for d in _model("cnn")(work, upsample)]
    h, w = image.shape[:2]
    faces = []
    for r, score in found:
        box = (max(0, round(r.left() / scale)), max(0, round(r.top() / scale)),
               min(w, round((r.right() + 1) / scale)), min(h, round((r.bottom() + 1) / scale)))
        faces.append(Face(box, float(score)))
    return sorted(faces, key=lambda f: -f.score)


def main_face(found: list[Face]) -> Face | None:
    """The largest face; among faces of nearly that size (side >= 0.8 of it) the best scoring, since
    HOG's false faces come out as large as real ones but with low scores."""
    if not found:
        return None
    side = max(f.area for f in found) ** 0.5
    return max((f for f in found if f.area ** 0.5 >= 0.8 * side), key=lambda f: f.score)


def _rect(box):
    import dlib

    return dlib.rectangle(*(int(round(v)) for v in box))


def landmarks(image: np.ndarray, box) -> np.ndarray:
    """68 x 2 float landmarks (x, y; iBUG 300-W order) of the face in `box` (a Face or l, t, r, b)."""
    box = box.box if isinstance(box, Face) else box
    shape = _model("landmarks")(np.ascontiguousarray(image), _rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def ffhq_quad(lm: np.ndarray) -> np.ndarray:
    """The oriented square of FFHQ's alignment from 68 landmarks: 4 x 2 corners (x, y) in the order
    upper-left, lower-left, lower-right, upper-right of the aligned image."""
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg, eye_to_eye = (eye_left + eye_right) / 2, eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_affine(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity mapping photo (x, y) to aligned (u, v) in a size x size crop, both in continuous
    coordinates (pixel i spans [i, i + 1), as PIL transforms sample): pass `quad + 0.5` for a quad
    in pixel indices (dlib's landmarks)."""
    origin, ex, ey = quad[0], (quad[3] - quad[0]) / size, (quad[1] - quad[0]) / size
    back = np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0, 0, 1]])  # (u, v) -> (x, y)
    return np.linalg.inv(back)[:2]


def _pad_reflect_blur(img: np.ndarray, pad: tuple, qsize: float) -> np.ndarray:
    """FFHQ's padding: reflect, blur towards the edges, fade to the median colour."""
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = pad
    img = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w, _ = img.shape
    y, x, _ = np.ogrid[:h, :w, :1]
    mask = np.maximum(1.0 - np.minimum(np.float32(x) / left, np.float32(w - 1 - x) / right),
                      1.0 - np.minimum(np.float32(y) / top, np.float32(h - 1 - y) / bottom))
    blur = qsize * 0.02
    img += (gaussian_filter(img, [blur, blur, 0]) - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return np.uint8(np.clip(np.rint(img), 0, 255))


def align(image: np.ndarray, lm: np.ndarray, size: int) -> Aligned:
    """FFHQ alignment of the face with 68 landmarks `lm` to a size x size crop."""
    quad0 = ffhq_quad(lm)
    quad, qsize = quad0.copy(), np.hypot(*(quad0[3] - quad0[0]))
    img = Image.fromarray(image)
    transform_size = 4 * size  # FFHQ resamples at 4096 for 1024
    shrink = int(np.floor(qsize / transform_size * 0.5))
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))), Image.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]),
            min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad = quad - crop[:2]
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0),
           max(hi[1] - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = tuple(int(v) for v in np.maximum(pad, int(np.rint(qsize * 0.3))))
        img = Image.fromarray(_pad_reflect_blur(np.asarray(img), pad, qsize))
        quad = quad + pad[:2]
    img = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()),
                        Image.BILINEAR)
    img = img.resize((size, size), Image.LANCZOS)
    return Aligned(np.asarray(img), quad0, quad_affine(quad0 + 0.5, size))


def face_mask(size: int, feather: float = 0.12) -> np.ndarray:
    """size x size float mask in aligned coordinates: 1 over the face (an ellipse from the forehead to
    below the chin, where FFHQ alignment puts it), fading to 0 over `feather` of its radius."""
    v, u = (np.mgrid[:size, :size] + 0.5) / size
    d = np.hypot((u - 0.5) / 0.30, (v - 0.58) / 0.36)
    return np.clip((1.0 - d) / feather, 0.0, 1.0).astype(np.float32)


def paste_back(photo: np.ndarray, face: np.ndarray, to_aligned: np.ndarray, feather: float = 0.12) -> np.ndarray:
    """`photo` with the aligned crop `face` (at the size `to_aligned` was made for) warped back and
    blended with a feathered face mask. Pixels the mask does not reach are returned exactly as they were."""
    n = face.shape[0]
    mask = face_mask(n, feather)
    A = np.vstack([to_aligned, [0, 0, 1]])
    back = np.linalg.inv(A)
    corners = back @ np.array([[0, 0, n, n], [0, n, n, 0], [1, 1, 1, 1]], dtype=np.float64)
    h, w = photo.shape[:2]
    x0, y0 = max(0, int(np.floor(corners[0].min())) - 1), max(0, int(np.floor(corners[1].min())) - 1)
    x1, y1 = min(w, int(np.ceil(corners[0].max())) + 1), min(h, int(np.ceil(corners[1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
    # PIL's AFFINE maps continuous output coordinates (pixel centres at +0.5) to input ones, the
    # convention `to_aligned` is in; only the box's offset in the photo is added.
    coeffs = tuple((A @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]]))[:2].flatten())
    box = (x1 - x0, y1 - y0)
    warped = np.asarray(Image.fromarray(face).transform(box, Image.AFFINE, coeffs, Image.BICUBIC), dtype=np.float32)
    alpha = np.asarray(Image.fromarray(mask, mode="F").transform(box, Image.AFFINE, coeffs, Image.BILINEAR))
    alpha = np.clip(alpha, 0.0, 1.0)[..., None]
    out = photo.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = np.uint8(np.clip(np.rint(region * (1 - alpha) + warped * alpha), 0, 255))
    out[y0:y1, x0:x1] = np.where(alpha > 0, blended, out[y0:y1, x0:x1])
    return out


def aligned_face_box(size_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The fixed face box of an FFHQ-aligned crop of (height, width)."""
    h, w = size_hw
    left, top, right, bottom = ALIGNED_FACE_BOX
    return round(left * w), round(top * h), round(right * w), round(bottom * h)


def descriptor(image: np.ndarray, box) -> np.ndarray:
    """dlib's 128-D face descriptor (ResNet) of the face in `box`; same person when distance < 0.6."""
    image = np.ascontiguousarray(image)
    box = box.box if isinstance(box, Face) else box
    shape = _model("landmarks")(image, _rect(box))
    return np.array(_model("descriptor").compute_face_descriptor(image, shape), dtype=np.float64)


def aligned_descriptor(image: np.ndarray, detector: str = "hog") -> tuple[np.ndarray, bool]:
    """(descriptor, found) of an aligned face crop: the largest detected face, or, where the detector
    finds none, the fixed FFHQ-aligned face box (found = False). The crop is brought to 256 px first."""
    from maskcycle.data.images import check_shape

    check_shape(image.shape[1], image.shape[0])  # before the resize below makes a strip huge
    side = DETECT_MIN_SIDE
    work = _resized(image, side / min(image.shape[:2])) if min(image.shape[:2]) != side else image
    faces = detect(work, detector, upsample=0)
    box = main_face(faces).box if faces else aligned_face_box(work.shape[:2])
    return descriptor(work, box), bool(faces)


def scan(inputs, out_csv: str | Path, detector: str = "hog", progress: bool = True) -> list[dict]:
    """One row per input file (path, n_faces, the main face's box and score (`main_face`), error) -> CSV."""
    import csv
    import io

    import tqdm

    from maskcycle.data.images import ImageReadError, list_inputs, read_rgb
    from maskcycle.io import atomic_write_text

    rows = []
    for path in tqdm.tqdm(list_inputs(inputs, "--input"), disable=not progress, desc=f"faces ({detector})"):
        row = {"path": str(path), "n_faces": "", "width": "", "height": "", "left": "", "top": "", "right": "",
               "bottom": "", "score": "", "error": ""}
        try:
            image = read_rgb(path)
        except ImageReadError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        found = detect(image, detector)
        row.update(n_faces=len(found), height=image.shape[0], width=image.shape[1])
        if found:
            face = main_face(found)
            row.update(dict(zip(("left", "top", "right", "bottom"), face.box)), score=round(face.score, 4))
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["path", "n_faces"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_csv, buf.getvalue())
    return rows


def add_arguments(p) -> None:
    """`maskcycle faces` flags (argparse only)."""
    p.add_argument("--input", required=True, nargs="+", metavar="FILE_OR_DIR", help="images and/or folders of images")
    p.add_argument("--out", required=True, help="CSV to write: path, n_faces, the largest face's box and score")
    p.add_argument("--detector", default="hog", choices=list(DETECTORS), help="dlib HOG (fast) or CNN (slow on CPU)")


def run_command(args) -> int:
    from maskcycle.data.images import none_readable
    from maskcycle.io import check_output

    check_output(args.out, [("--input", args.input)], kind="file", suffix=".csv")
    rows = scan(args.input, args.out, args.detector)
    found = sum(1 for r in rows if r["n_faces"] not in ("", 0))
    bad = sum(1 for r in rows if r["error"])
    for r in rows:
        if r["error"]:
            print(r["error"], file=sys.stderr)
    if bad == len(rows):
        print(f"maskcycle faces: error: nothing done: {none_readable([r['error'] for r in rows])}", file=sys.stderr)
    print(f"{found} of {len(rows)} files with a face ({args.detector}); {bad} unreadable; wrote {args.out}")
    return 1 if bad else 0
