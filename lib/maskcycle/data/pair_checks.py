"""True pairs (a masked face and the same photo unmasked): the mask region, and checks that a pair
is what it claims before curation lists it in `pairs_test.csv` and evaluation trusts it.

A pair passes when the region where the two images differ is a plausible mask (its share of the
image; real masks cover roughly 10-35 % of an aligned face), and, where dlib finds the face on the
unmasked image, the upper faces (the mask region greyed out in both) are one person (descriptor
distance < 0.6) and, for a correctly worn mask, the nose and mouth landmarks lie in the region.
The landmarks also give the placement class independently of MaskedFace-Net's file name.
"""

from __future__ import annotations

import numpy as np

CHECK_COLUMNS = ["mask_share", "nose_in_region", "mouth_in_region", "chin_in_region", "upper_face_distance",
                 "derived_placement", "check"]
# iBUG 300-W landmark indices: lower nose (nostrils and tip), outer + inner lips, lower jaw line.
NOSE, MOUTH, CHIN = list(range(30, 36)), list(range(48, 68)), list(range(6, 11))
SHARE_RANGE = (0.05, 0.45)  # real masks cover ~10-35 % of an aligned face; the demo's drawn ones 8-14 %
SHARE_MIN_INCORRECT = 0.02
COVERED = 0.5  # a part counts as covered when at least half its landmarks are in the region


def mask_region(real_masked: np.ndarray, real_unmasked: np.ndarray, threshold: int = 40) -> np.ndarray:
    """Boolean HxW map of where a true pair differs: the drawn mask.

    The per-pixel largest channel difference goes through a 3x3 median (JPEG noise and resampling
    differ pixel by pixel, a mask differs in a solid area; a median keeps the mask's edge where a
    mean would grow it), is thresholded, cleaned by a 3x3 closing and opening, and its holes are filled (a
    mask's own texture can match the face it covers)."""
    from scipy import ndimage

    if real_masked.shape != real_unmasked.shape or real_masked.ndim != 3:
        raise ValueError(f"expected two HxWx3 images of one size, got {real_masked.shape} and {real_unmasked.shape}")
    diff = np.abs(real_masked.astype(np.int16) - real_unmasked.astype(np.int16)).max(axis=2).astype(np.float64)
    diff = ndimage.median_filter(diff, size=3, mode="nearest")
    square = np.ones((3, 3), bool)
    # Padded by edge copies so that a mask reaching the border is not eaten by the closing.
    region = np.pad(diff > threshold, 2, mode="edge")
    region = ndimage.binary_opening(ndimage.binary_closing(region, square), square)[2:-2, 2:-2]
    return ndimage.binary_fill_holes(region)


def _inside(region: np.ndarray, points: np.ndarray) -> float:
    h, w = region.shape
    xy = np.clip(np.rint(points).astype(int), 0, [w - 1, h - 1])
    return float(region[xy[:, 1], xy[:, 0]].mean())


def placement_from(nose: float, mouth: float, chin: float) -> str:
    """MaskedFace-Net's class from which parts the mask covers ('none' when it covers no mouth or chin)."""
    n, m, c = nose >= COVERED, mouth >= COVERED, chin >= COVERED
    if m and c:
        return "correct" if n else "nose_uncovered"
    if n and m:
        return "chin_uncovered"
    return "nose_mouth_uncovered" if c else "none"


def _upper_face_distance(masked: np.ndarray, unmasked: np.ndarray, region: np.ndarray, box) -> float:
    from maskcycle.data import faces

    grey = [np.where(region[..., None], np.uint8(128), im) for im in (masked, unmasked)]
    d = [faces.descriptor(g, box) for g in grey]
    return round(float(np.linalg.norm(d[0] - d[1])), 4)


def check_pair(masked: np.ndarray, unmasked: np.ndarray, named_placement: str = "correct",
               share_range: tuple[float, float] = SHARE_RANGE, use_faces: bool = True) -> dict:
    """The CHECK_COLUMNS of one pair of HxWx3 uint8 images of one size; `check` is 'ok' or the
    failed checks joined by ';'. Face checks are left empty where dlib finds no face, and where the
    region is too large to be a mask (two different photos: nothing to compare)."""
    region = mask_region(masked, unmasked)
    share = float(region.mean())
    row = {"mask_share": round(share, 4), "nose_in_region": "", "mouth_in_region": "", "chin_in_region": "",
           "upper_face_distance": "", "derived_placement": ""}
    failed = []
    # Incorrectly worn masks cover less (a chin-only mask ~4 % on the demo set): their floor is lower.
    low = share_range[0] if named_placement == "correct" else SHARE_MIN_INCORRECT
    if share < low:
        failed.append("mask_region_small")
    elif share > share_range[1]:
        failed.append("mask_region_large")
    if use_faces and "mask_region_large" not in failed:
        failed += _face_checks(masked, unmasked, region, named_placement, row)
    row["check"] = ";".join(failed) or "ok"
    return row


def _face_checks(masked, unmasked, region, named_placement: str, row: dict) -> list[str]:
    from maskcycle.data import faces

    face = faces.main_face(faces.detect(unmasked, "hog"))
    if face is None:
        return []  # nothing to check against: the share check stands alone (recorded as empty columns)
    lm = faces.landmarks(unmasked, face)
    parts = {name: _inside(region, lm[idx]) for name, idx in (("nose", NOSE), ("mouth", MOUTH), ("chin", CHIN))}
    row.update({f"{k}_in_region": round(v, 3) for k, v in parts.items()})
    row["derived_placement"] = placement_from(parts["nose"], parts["mouth"], parts["chin"])
    row["upper_face_distance"] = _upper_face_distance(masked, unmasked, region, face)
    failed = []
    if row["upper_face_distance"] >= faces.SAME_PERSON:
        failed.append("other_person")
    if named_placement == "correct" and min(parts["nose"], parts["mouth"]) < COVERED:
        failed.append("nose_or_mouth_outside_region")
    return failed


def summary(rows: list[dict], named: list[str]) -> dict:
    """Counts for the report: pairs checked, flagged per check, and how often the landmark-derived
    placement agrees with the file name's (over pairs where a face was found)."""
    flags: dict[str, int] = {}
    for r in rows:
        for f in r["check"].split(";"):
            if f != "ok":
                flags[f] = flags.get(f, 0) + 1
    derived = [(r["derived_placement"], n) for r, n in zip(rows, named) if r["derived_placement"]]
    agree = sum(d == n for d, n in derived)
    return {"checked": len(rows), "ok": sum(r["check"] == "ok" for r in rows), "flagged": flags,
            "with_face": len(derived), "placement_agreement": round(agree / len(derived), 4) if derived else None}
