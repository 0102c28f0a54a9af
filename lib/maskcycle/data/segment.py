"""Where the mask is on a face: a segmenter that needs no pair and no training, plus the tools to
measure it against the masks that true pairs give (`pair_checks.mask_region`).

Three methods, all from dlib's 68 landmarks (which the shape predictor still places on a masked
face, guessing the covered points from the face's outline):
- `landmarks`: the region a correctly worn mask covers (nose bridge to under the chin, cheek to
  cheek), whatever the face shows;
- `colour`: inside a generous lower-face region, the pixels whose colour is far from the skin
  sampled between the eyes and above the brows (robust Lab statistics), cleaned (the component
  under the nose, holes filled);
- `grabcut`: OpenCV's GrabCut seeded by the two above: definite mask where the colour is far from
  the skin, probable mask in the lower face, definite background above the eyes; where its result
  disagrees with the landmark region (IoU < `FALLBACK_IOU`: a mask of skin-like colour, where the
  colour seeds find nothing), the landmark region.
`DEFAULT_METHOD` and `COLOUR_THRESHOLD` were chosen by IoU against pair-derived masks on the demo's
curated pairs (the threshold on the train pairs, the method on the held-out test pairs; see
BENCHMARKS.md "Baselines and mask segmentation" and `measure`).
"""

from __future__ import annotations

import numpy as np

METHODS = ("colour", "grabcut", "landmarks")
DEFAULT_METHOD = "grabcut"
COLOUR_THRESHOLD = 3.0  # robust skin distances beyond which a pixel is not skin (calibrated, see above)
FALLBACK_IOU = 0.3  # grabcut -> landmark region below this agreement (chosen on the train pairs)
# A face counts as masked when at least this share of its lower face is far from its skin colour
# (chosen on the demo's train faces, 100 a domain: balanced accuracy 0.875; held-out test 0.77).
MASKED_SHARE = 0.65


def _outward(lm: np.ndarray, points: np.ndarray, k: float) -> np.ndarray:
    centre = lm[27:36].mean(axis=0)
    scale = np.hypot(*(lm[16] - lm[0]))
    d = points - centre
    return points + k * scale * d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]


def lower_face(lm: np.ndarray, shape: tuple[int, ...], margin: float = 0.04) -> np.ndarray:
    """Boolean HxW region of a correctly worn mask: under the eyes across the nose bridge, down the
    cheeks and along the jaw, pushed out by `margin` face widths."""
    import cv2

    scale = np.hypot(*(lm[16] - lm[0]))
    down = (lm[8] - lm[27]) / max(np.hypot(*(lm[8] - lm[27])), 1e-9)
    top = np.array([lm[1], lm[40:42].mean(0) + 0.06 * scale * down, lm[28],
                    lm[46:48].mean(0) + 0.06 * scale * down, lm[15]])
    jaw = _outward(lm, lm[15:0:-1][1:], margin)  # 14 ... 2, right to left along the jaw
    jaw[len(jaw) // 2] += 0.03 * scale * down
    poly = np.vstack([_outward(lm, top, margin), jaw])
    canvas = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(canvas, [np.round(poly * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
    return canvas.astype(bool)


def _disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.hypot(xx + 0.5 - centre[0], yy + 0.5 - centre[1]) <= max(radius, 1.0)


def skin_distance(image: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """HxW distance of each pixel's Lab colour from the skin between the eyes and above the brows,
    in robust standard deviations (median / MAD per channel, with floors so flat skin is not brittle)."""
    from skimage.color import rgb2lab

    lab = rgb2lab(image)
    scale = np.hypot(*(lm[16] - lm[0]))
    up = (lm[27] - lm[8]) / max(np.hypot(*(lm[27] - lm[8])), 1e-9)
    seeds = _disc(image.shape, lm[27], 0.05 * scale)
    for brow in (lm[19], lm[24]):
        seeds |= _disc(image.shape, brow + 0.08 * scale * up, 0.04 * scale)
    skin = lab[seeds] if seeds.sum() >= 4 else lab.reshape(-1, 3)
    med = np.median(skin, axis=0)
    mad = 1.4826 * np.median(np.abs(skin - med), axis=0)
    spread = np.maximum(mad, [6.0, 3.0, 3.0])  # L, a, b floors: lighting varies more than hue
    return np.sqrt((((lab - med) / spread) ** 2).sum(axis=2))


def _clean(region: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Open away specks, keep the components that touch the lower face's core, fill holes."""
    from scipy import ndimage

    region = ndimage.binary_opening(region, np.ones((3, 3), bool))
    labels, n = ndimage.label(region)
    if n == 0:
        return region
    core = lower_face(lm, region.shape, margin=-0.15)
    keep = [i for i in range(1, n + 1) if (core & (labels == i)).any()]
    if not keep:
        sizes = ndimage.sum(region, labels, range(1, n + 1))
        keep = [int(np.argmax(sizes)) + 1]
    region = np.isin(labels, keep)
    region = ndimage.binary_closing(np.pad(region, 2, mode="edge"), np.ones((3, 3), bool))[2:-2, 2:-2]
    return ndimage.binary_fill_holes(region)


def masked_share(image: np.ndarray, lm: np.ndarray, threshold: float = COLOUR_THRESHOLD) -> float:
    """Share of the lower face (`lower_face`) whose colour is far from the face's skin."""
    prior = lower_face(lm, image.shape)
    if not prior.any():
        return 0.0
    return float((skin_distance(image, lm)[prior] > threshold).mean())


def is_masked(image: np.ndarray, lm: np.ndarray) -> bool:
    """Whether the face wears a mask, by `masked_share` >= MASKED_SHARE (a mask of skin-like
    colour is missed: the measure only sees colour)."""
    return masked_share(image, lm) >= MASKED_SHARE


def segment(image: np.ndarray, lm: np.ndarray, method: str = DEFAULT_METHOD,
            threshold: float = COLOUR_THRESHOLD) -> np.ndarray:
    """Boolean HxW mask region of the face with 68 landmarks `lm` (x, y) in an HxWx3 uint8 image."""
    if method not in METHODS:
        raise ValueError(f"segmenter method must be one of {', '.join(METHODS)}, got {method!r}")
    prior = lower_face(lm, image.shape)
    if method == "landmarks":
        return prior
    search = lower_face(lm, image.shape, margin=0.12)
    far = skin_distance(image, lm) > threshold
    colour = _clean(far & search, lm)
    if method == "colour":
        return colour
    cut = _grabcut(image, lm, prior, search, colour)
    return cut if iou(cut, prior) >= FALLBACK_IOU else prior


def _grabcut(image, lm, prior, search, colour) -> np.ndarray:
    import cv2

    seeds = np.full(image.shape[:2], cv2.GC_PR_BGD, np.uint8)
    seeds[search] = cv2.GC_PR_BGD
    seeds[prior] = cv2.GC_PR_FGD
    eye_line = lm[36:48, 1].min()
    seeds[: max(0, int(eye_line)), :] = cv2.GC_BGD
    from scipy import ndimage

    sure = ndimage.binary_erosion(colour, np.ones((3, 3), bool)) & prior
    seeds[sure] = cv2.GC_FGD
    seeds[~search & (seeds != cv2.GC_BGD)] = cv2.GC_BGD
    if not (seeds == cv2.GC_FGD).any() and not (seeds == cv2.GC_PR_FGD).any():
        return colour
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        # GrabCut's colour models start from k-means on OpenCV's process-wide random generator: reseeded,
        # a face's mask does not depend on what was segmented before it (or in which process)
        cv2.setRNGSeed(0)
        cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), seeds, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # too few pixels of one kind to fit its colour model
        return colour
    return _clean((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD), lm)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean maps (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def measure(pairs, landmarks_of, methods=METHODS, thresholds=(COLOUR_THRESHOLD,)) -> list[dict]:
    """Mean IoU against pair-derived masks: rows (method, threshold, n, mean_iou, median_iou) over
    `pairs`, an iterable of (masked, unmasked) uint8 images; `landmarks_of(image)` -> 68x2 or None.
    Pairs without landmarks count as IoU 0 (the segmenter found nothing)."""
    from maskcycle.data.pair_checks import mask_region

    scores: dict[tuple, list[float]] = {}
    for masked, unmasked in pairs:
        truth = mask_region(masked, unmasked)
        lm = landmarks_of(masked)
        for method in methods:
            for t in (thresholds if method != "landmarks" else (None,)):
                got = segment(masked, lm, method, t) if lm is not None else np.zeros_like(truth)
                scores.setdefault((method, t), []).append(iou(got, truth))
    return [{"method": m, "threshold": t, "n": len(v), "mean_iou": round(float(np.mean(v)), 4),
             "median_iou": round(float(np.median(v)), 4)} for (m, t), v in scores.items()]


# --- maskcycle masks ---------------------------------------------------------------------------
MASK_COLUMNS = ["file", "face", "faces", "mask_share", "method", "mask_png", "note"]
ALIGN_SIDE = 256  # faces are segmented as FFHQ-aligned crops of this side


def photo_masks(photo: np.ndarray, method: str = DEFAULT_METHOD, detector: str = "hog") -> tuple[int, list]:
    """(faces found, [(face, boolean HxW mask at the photo's size, share of the aligned face)]) for
    every face of `photo` that wears a mask (`is_masked`)."""
    from maskcycle.data import faces

    found = faces.detect(photo, detector)
    masked = []
    for face in found:
        lm = faces.landmarks(photo, face)
        crop = faces.align(photo, lm, ALIGN_SIDE)
        clm = faces.photo_to_crop(lm, crop.to_aligned)
        if not is_masked(crop.image, clm):
            continue
        region = segment(crop.image, clm, method)
        masked.append((face, faces.warp_to_photo(region, crop.to_aligned, photo.shape) >= 0.5, float(region.mean())))
    return len(found), masked


def write_masks(inputs, out_dir, method: str = DEFAULT_METHOD, detector: str = "hog",
                progress: bool = True) -> list[dict]:
    """One binary PNG (0/255, the input's upright size) per masked face, `<stem>_face<k>.png`, and
    `masks.csv` (MASK_COLUMNS: one row per masked face, one row with a note for a file with none)."""
    import csv
    import io
    from pathlib import Path

    import tqdm
    from PIL import Image

    from maskcycle.data.images import ImageReadError, list_inputs, read_rgb
    from maskcycle.io import atomic_path, atomic_write_text

    out = Path(out_dir)
    rows = []
    for path in tqdm.tqdm(list_inputs(inputs, "--input"), disable=not progress, desc="masks", unit="file"):
        base = {"file": str(path), "face": "", "faces": "", "mask_share": "", "method": method, "mask_png": ""}
        try:
            photo = read_rgb(path)
        except ImageReadError as exc:
            rows.append({**base, "note": str(exc)})
            continue
        n, masked = photo_masks(photo, method, detector)
        if not masked:
            rows.append({**base, "faces": n, "note": "no face found" if n == 0 else "no masked face"})
        for k, (face, region, share) in enumerate(masked, start=1):
            target = out / f"{path.stem}_face{k}.png"
            with atomic_path(target, suffix=".png") as tmp:
                Image.fromarray(np.uint8(region) * 255).save(tmp, format="PNG")
            rows.append({**base, "face": k, "faces": n, "mask_share": round(share, 4), "mask_png": target.name,
                         "note": f"box {','.join(map(str, face.box))}"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MASK_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "masks.csv", buf.getvalue())
    return rows


def add_arguments(p) -> None:
    """`maskcycle masks` flags (argparse only)."""
    p.add_argument("--input", required=True, nargs="+", metavar="FILE_OR_DIR", help="images and/or folders of images")
    p.add_argument("--out", required=True, help="folder for <stem>_face<k>.png masks and masks.csv")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                   help=f"segmenter (default {DEFAULT_METHOD}: best mean IoU on held-out pairs, BENCHMARKS.md)")
    p.add_argument("--detector", default="cnn", choices=["hog", "cnn"],
                   help="dlib CNN (default: finds most masked faces; ~1-2 s an image on a CPU) or HOG "
                   "(fast, but misses about half of masked faces)")


def run_command(args) -> int:
    import sys

    from maskcycle.data.images import none_readable
    from maskcycle.io import check_output

    check_output(args.out, [("--input", args.input)], "--out")  # the one output rule: never beside the inputs
    rows = write_masks(args.input, args.out, args.method, args.detector)
    files = {r["file"] for r in rows}
    bad = {r["file"] for r in rows if r["note"].startswith(r["file"])}
    for r in rows:
        if r["file"] in bad:
            print(r["note"], file=sys.stderr)
    if files and bad == files:
        print(f"maskcycle masks: error: nothing done: {none_readable([r['note'] for r in rows])}", file=sys.stderr)
    n_masks = sum(1 for r in rows if r["mask_png"])
    print(f"{n_masks} masked face(s) in {len(files)} file(s); {len(bad)} unreadable; wrote {args.out}/masks.csv")
    return 1 if bad else 0
