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
from maskcycle.models import families

VERSION = 1  # bump when an image operation here changes its output: evaluations are then redone


@dataclasses.dataclass
class Crops:
    images: np.ndarray  # N x S x S x 3 uint8
    changed: list  # per crop: float S x S map of what changed (0 = the input pixel kept), or None
    notes: list  # per crop: why it was left as it was, or None
    regional: bool = False  # it changed only a region, which `changed` maps (scored by mask IoU)


def crop_landmarks(crops: np.ndarray, given: list | None = None) -> list:
    """68 landmarks per crop: those given (photo mode) or found on the crop (`faces.crop_landmarks`)."""
    if given is not None:
        return list(given)
    return [facelib.crop_landmarks(np.asarray(c)) for c in crops]


def needs_landmarks(cfg: TrialConfig) -> bool:
    """Whether the trial's translation places itself by the face's landmarks (compositing, and
    the non-learned families that say so)."""
    return cfg.composite == "mask" if cfg.learned else families.baseline(cfg).NEEDS_LANDMARKS


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
    return Crops(np.stack(out), changed, [None] * len(out), regional=True)


def non_learned(cfg: TrialConfig, direction: str, crops: np.ndarray, lms: list | None = None,
                notes: list | None = None, check_masked: bool = True) -> Crops:
    """Crops through a non-learned family (`families.Baseline`); `notes` (photo mode) marks faces
    already known to be unplaceable, which are left as they were. `check_masked`: inpaint only faces
    that look masked (off where every input is known to be masked, e.g. test set B)."""
    if direction not in cfg.directions:
        raise ValueError(f"model {cfg.model!r} cannot translate {direction}")
    fam = families.baseline(cfg)
    crops = np.asarray(crops)
    lms = crop_landmarks(crops, lms) if fam.NEEDS_LANDMARKS else [None] * len(crops)
    notes = list(notes) if notes is not None else [None] * len(crops)
    out, changed = [], []
    for i, (crop, lm) in enumerate(zip(crops, lms)):
        if notes[i]:
            img, alpha = crop.copy(), None
        else:
            img, alpha, notes[i] = fam.translate_face(cfg, direction, crop, lm, segment, check_masked)
        out.append(img)
        changed.append(alpha)
    return Crops(np.stack(out), changed, notes, regional=fam.ACTS_IN_REGION)


def photo_problem(cfg: TrialConfig, lm: np.ndarray, shape: tuple[int, ...]) -> str | None:
    """Why a face found on a photo cannot be translated by the trial's family (None: it can; a
    learned model takes every face)."""
    return None if cfg.learned else families.baseline(cfg).problem(lm, shape)
