"""The inpainting baseline (B->A, no training): fill the mask region with OpenCV's classical
inpainting, Telea's fast marching method or the Navier-Stokes method (`inpaint_method`).

Pure image arithmetic: the caller segments the mask (data/segment.py) and passes the region, so
every pixel outside it is returned exactly as it was.
"""

from __future__ import annotations

import numpy as np

from maskcycle.config import FamilySettings

METHODS = ("telea", "ns")

# no training step; models/families.py registers it as the `model: inpaint` family
SETTINGS = FamilySettings(two_way=False, trains=False, translates=("BA",))


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
