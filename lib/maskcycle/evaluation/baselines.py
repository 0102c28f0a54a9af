"""Aligned face crops through the non-learned families (template, inpaint, do_nothing) and through
mask-guided compositing of a learned model's output (`composite: mask`).

Both need the face's geometry, which models/ cannot fetch (it sits beside data/): the 68 landmarks
(given by photo mode, which found them on the photo, or found here on the crop) and the mask
region (data/segment.py). Every function returns, per crop, the output, a float map of the pixels
it changed (None: the whole face may have changed) and a note saying why a face was left as it
was (None when it was translated).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from maskcycle.config import TrialConfig
from maskcycle.data import faces as facelib
from maskcycle.data import segment
from maskcycle.models import do_nothing, inpaint, template

VERSION = 1  # bump when an image operation here changes its output: evaluations are then redone


@dataclasses.dataclass
class Crops:
    images: np.ndarray  # N x S x S x 3 uint8
    changed: list  # per crop: float S x S map of what changed (0 = the input pixel kept), or None
    notes: list  # per crop: why it was left as it was, or None


def crop_landmarks(crops: np.ndarray, given: list | None = None) -> list:
    """68 landmarks per crop: those given (photo mode) or found on the crop (`faces.crop_landmarks`)."""
    if given is not None:
        return list(given)
    return [facelib.crop_landmarks(np.asarray(c)) for c in crops]


def ramp(region: np.ndarray, pixels: float) -> np.ndarray:
    """1 inside `region`, falling linearly to 0 at `pixels` outside it, and exactly 0 beyond: the
    dilated, feathered region, so a blend leaves everything farther away untouched."""
    from scipy import ndimage

    if not region.any():
        return np.zeros(region.shape, np.float32)
    if pixels <= 0:
        return region.astype(np.float32)
    dist = ndimage.distance_transform_edt(~region)
    return np.clip(1.0 - dist / pixels, 0.0, 1.0).astype(np.float32)


def blend(source: np.ndarray, fake: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`fake` where alpha is 1, `source` exactly where it is 0, mixed between."""
    a = alpha[..., None]
    mixed = np.uint8(np.clip(np.rint(source.astype(np.float32) * (1 - a) + fake.astype(np.float32) * a), 0, 255))
    return np.where(a > 0, mixed, source)


def region_for(cfg: TrialConfig, direction: str, crop: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Where a translation may act: the predicted mask (B->A) or the lower face (A->B)."""
    if direction == "BA":
        return segment.segment(crop, lm, cfg.segmenter)
    return segment.lower_face(lm, crop.shape)


def composite(cfg: TrialConfig, direction: str, crops: np.ndarray, fakes: np.ndarray,
              lms: list | None = None) -> Crops:
    """A learned model's fakes kept only inside the dilated, feathered region of `region_for`."""
    lms = crop_landmarks(crops, lms)
    out, changed = [], []
    for crop, fake, lm in zip(crops, fakes, lms):
        alpha = ramp(region_for(cfg, direction, crop, lm), cfg.mask_dilate * crop.shape[0])
        out.append(blend(crop, fake, alpha))
        changed.append(alpha)
    return Crops(np.stack(out), changed, [None] * len(out))


def _inpaint(cfg: TrialConfig, crop: np.ndarray, lm: np.ndarray, check_masked: bool):
    share = segment.masked_share(crop, lm) if check_masked else 1.0
    if share < segment.MASKED_SHARE:
        return crop.copy(), None, (f"no mask found ({share:.0%} of the lower face differs from the skin, "
                                   f"< {segment.MASKED_SHARE:.0%})")
    region = segment.segment(crop, lm, cfg.segmenter)
    side = crop.shape[0]
    grown = inpaint.grow(region, cfg.mask_dilate * side)
    out = inpaint.fill(crop, grown, cfg.inpaint_method, cfg.inpaint_radius * side)
    return out, grown.astype(np.float32), None


def non_learned(cfg: TrialConfig, direction: str, crops: np.ndarray, lms: list | None = None,
                notes: list | None = None, check_masked: bool = True) -> Crops:
    """Crops through a non-learned family; `notes` (photo mode) marks faces already known to be
    unplaceable, which are left as they were. `check_masked`: inpaint only faces that look masked
    (`segment.is_masked`; off where every input is known to be masked, e.g. test set B)."""
    if direction not in cfg.directions:
        raise ValueError(f"model {cfg.model!r} cannot translate {direction}")
    crops = np.asarray(crops)
    if cfg.model == "do_nothing":
        return Crops(do_nothing.translate(crops), [np.zeros(c.shape[:2], np.float32) for c in crops],
                     [None] * len(crops))
    lms = crop_landmarks(crops, lms)
    notes = list(notes) if notes is not None else [None] * len(crops)
    out, changed = [], []
    for i, (crop, lm) in enumerate(zip(crops, lms)):
        if notes[i]:
            out.append(crop.copy())
            changed.append(None)
            continue
        if cfg.model == "template":
            img, alpha, notes[i] = template.translate(crop, lm, cfg.seed, cfg.texture_list, cfg.placement_list)
        else:
            img, alpha, notes[i] = _inpaint(cfg, crop, lm, check_masked)
        out.append(img)
        changed.append(alpha)
    return Crops(np.stack(out), changed, notes)
