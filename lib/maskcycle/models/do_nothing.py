"""The do-nothing baseline (both directions, no training): the output is the input. Its scores are
what any translation must beat: e.g. the paired PSNR of the masked input against its true face."""

from __future__ import annotations

import numpy as np

from maskcycle.config import FamilySettings

# no training step; models/families.py registers it as the `model: do_nothing` family (`Baseline`)
SETTINGS = FamilySettings(two_way=True, trains=False, translates=("AB", "BA"))
NEEDS_LANDMARKS = False
ACTS_IN_REGION = False  # it changes nothing: a mask IoU would say nothing


def problem(lm: np.ndarray, shape: tuple[int, ...]) -> None:
    return None  # every face can be left as it is


def translate_face(cfg, direction: str, crop: np.ndarray, lm, segmenter, check_masked: bool):
    """A copy of the crop; nothing changed."""
    return np.array(crop, copy=True), np.zeros(crop.shape[:2], np.float32), None
