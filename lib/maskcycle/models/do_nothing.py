"""The do-nothing baseline (both directions, no training): the output is the input. Its scores are
what any translation must beat: e.g. the paired PSNR of the masked input against its true face."""

from __future__ import annotations

import numpy as np


def translate(images: np.ndarray) -> np.ndarray:
    """A copy of the NxHxWx3 images."""
    return np.array(images, copy=True)
