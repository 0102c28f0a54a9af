"""Mask textures drawn by our own code for the template baseline: surgical blue with pleats, white,
black cloth and a patterned cloth, as RGBA float images in the mask's own (u, v) square.

u runs across the face (0 = the face's left cheek as seen in the image, 1 = the right), v from the
top edge (0) to the bottom edge (1). Alpha is the mask's outline (rounded corners, a slight curve
at the top and bottom); `template.py` warps the texture onto the lower face from 68 landmarks.
Every texture is a pure function of (kind, rng).
"""

from __future__ import annotations

import numpy as np

TEXTURES = ("surgical_blue", "white", "black_cloth", "patterned_cloth")
SIDE = (96, 160)  # texture height x width: a mask is wider than tall; enough for a 256-px face


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = (np.mgrid[:h, :w] + 0.5) / np.array([h, w])[:, None, None]
    return u, v


def outline_alpha(h: int, w: int) -> np.ndarray:
    """The mask's shape in (u, v): a rounded rectangle, soft over about one texel."""
    u, v = _grid(h, w)
    r = 0.18  # corner radius as a share of the height
    du = np.maximum(0, np.abs(u - 0.5) * w - (0.5 * w - r * h))
    dv = np.maximum(0, np.abs(v - 0.5) * h - (0.5 * h - r * h))
    inside = r * h - np.hypot(du, dv)
    return np.clip(inside + 0.5, 0, 1).astype(np.float32)


def _weave(u, v, rng, strength: float) -> np.ndarray:
    """A fine cross-hatched fabric grain with a little per-texture noise."""
    h, w = u.shape
    grain = np.sin(u * w * 2.2 * np.pi) * np.sin(v * h * 2.2 * np.pi)
    return 1 + strength * (0.6 * grain + 0.4 * rng.standard_normal((h, w)))


def _surgical(u, v, rng) -> np.ndarray:
    colour = np.array([0.45, 0.68, 0.85]) * rng.uniform(0.93, 1.05)
    # three pleats: each fold is lit at its crest and shadowed below it
    phase = (v - 0.2) / 0.2
    pleat = np.where((phase > 0) & (phase < 3), np.sin(2 * np.pi * (phase % 1)), 0.0)
    shade = 1 + 0.08 * np.where(pleat > 0, pleat, 1.8 * pleat)
    wire = np.exp(-((v - 0.06) / 0.025) ** 2) * (np.abs(u - 0.5) < 0.18) * 0.1  # the nose wire
    hem = 1 - 0.08 * (np.minimum(np.minimum(u, 1 - u) * 8, np.minimum(v, 1 - v) * 5) < 1)  # stitched border
    return colour * (shade * (1 + wire) * hem * _weave(u, v, rng, 0.01))[..., None]


def _white(u, v, rng) -> np.ndarray:
    colour = np.array([0.93, 0.93, 0.91]) * rng.uniform(0.95, 1.0)
    seam = 1 - 0.1 * np.exp(-((u - 0.5) / 0.01) ** 2)  # the centre seam of a shaped white mask
    return colour * (seam * _weave(u, v, rng, 0.015))[..., None]


def _black(u, v, rng) -> np.ndarray:
    colour = np.array([0.09, 0.09, 0.1]) * rng.uniform(0.8, 1.3)
    return colour * _weave(u, v, rng, 0.12)[..., None]


def _patterned(u, v, rng) -> np.ndarray:
    base, second = rng.uniform(0.15, 0.85, 3), rng.uniform(0.1, 0.95, 3)
    freq = rng.uniform(5, 9)
    kind = rng.integers(3)
    x, y = u * freq * 1.7, v * freq
    if kind == 0:  # stripes
        on = np.sin(2 * np.pi * (x + 0.4 * y)) > 0.3
    elif kind == 1:  # dots
        on = np.hypot((x % 1) - 0.5, (y % 1) - 0.5) < 0.25
    else:  # checks
        on = (np.floor(x) + np.floor(y)) % 2 == 1
    colour = np.where(on[..., None], second, base)
    return colour * _weave(u, v, rng, 0.04)[..., None]


_DRAW = {"surgical_blue": _surgical, "white": _white, "black_cloth": _black, "patterned_cloth": _patterned}


def draw(kind: str, rng: np.random.Generator, size: tuple[int, int] = SIDE) -> np.ndarray:
    """An h x w x 4 float32 RGBA texture in [0, 1] of one of TEXTURES."""
    if kind not in _DRAW:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {kind!r}")
    u, v = _grid(*size)
    rgb = np.clip(_DRAW[kind](u, v, rng), 0, 1)
    return np.dstack([rgb, outline_alpha(*size)]).astype(np.float32)
