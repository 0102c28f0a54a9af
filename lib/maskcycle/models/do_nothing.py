"""The do-nothing baseline (both directions, no training): the output is the input. Its scores are
what any translation must beat: e.g. the paired PSNR of the masked input against its true face."""

from __future__ import annotations

import numpy as np

from maskcycle.config import FamilySettings

# no training step; models/families.py registers it as the `model: do_nothing` family
SETTINGS = FamilySettings(two_way=True, trains=False, translates=("AB", "BA"))


def translate(images: np.ndarray) -> np.ndarray:
    """A copy of the NxHxWx3 images."""
    return np.array(images, copy=True)
