"""The inpainting baseline (B->A, no training): fill the mask region with OpenCV's classical
inpainting, Telea's fast marching method or the Navier-Stokes method (`inpaint_method`).

Pure image arithmetic: the mask is segmented by the segmenter the caller passes (data/segment.py;
models/ sits beside data/), and every pixel outside the grown region is returned exactly as it was.
"""

from __future__ import annotations

import numpy as np

from maskcycle.config import FamilySettings

METHODS = ("telea", "ns")

# no training step; models/families.py registers it as the `model: inpaint` family (`Baseline`)
SETTINGS = FamilySettings(two_way=False, trains=False, translates=("BA",))
NEEDS_LANDMARKS = True
ACTS_IN_REGION = True


def grow(region: np.ndarray, pixels: float) -> np.ndarray:
    """The boolean region grown by `pixels` (Euclidean distance), so a fill also covers the mask's
    soft edge and its contact shadow."""
    from scipy import ndimage

    if pixels <= 0 or not region.any():
        return region.copy()
    return ndimage.distance_transform_edt(~region) <= pixels


def fill(image: np.ndarray, region: np.ndarray, method: str = "telea", radius: float = 3.0) -> np.ndarray:
    """HxWx3 uint8 `image` with the boolean `region` filled from its surroundings."""
    import cv2

    if method not in METHODS:
        raise ValueError(f"inpaint method must be one of {', '.join(METHODS)}, got {method!r}")
    if not region.any():
        return image.copy()
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    out = cv2.inpaint(np.ascontiguousarray(image), region.astype(np.uint8), max(1.0, float(radius)), flag)
    return np.where(region[..., None], out, image)


def problem(lm: np.ndarray, shape: tuple[int, ...]) -> None:
    return None  # any face the detector found is tried; one with no mask is left by translate_face


def translate_face(cfg, direction: str, crop: np.ndarray, lm: np.ndarray, segmenter, check_masked: bool):
    """The `Baseline` hook: segment the mask, grow it by `mask_dilate`, fill it. With `check_masked`
    a face that does not look masked is left as it was (photo mode; test set B is all masked)."""
    share = segmenter.masked_share(crop, lm) if check_masked else 1.0
    if share < segmenter.MASKED_SHARE:
        return crop.copy(), None, (f"no mask found ({share:.0%} of the lower face differs from the skin, "
                                   f"< {segmenter.MASKED_SHARE:.0%})")
    side = crop.shape[0]
    grown = grow(segmenter.segment(crop, lm, cfg.segmenter), cfg.mask_dilate * side)
    out = fill(crop, grown, cfg.inpaint_method, cfg.inpaint_radius * side)
    return out, grown.astype(np.float32), None
