"""The template baseline (A->B, no training): warp a drawn mask texture (`textures.py`) onto the
lower face from dlib's 68 landmarks, the way MaskedFace-Net (Cabani et al.) and MaskTheFace put
masks on faces, with shading from the face beneath, a soft edge, a contact shadow and ear loops.

Placements follow MaskedFace-Net's classes: `correct` (nose bridge to under the chin),
`nose_uncovered` (from under the nose), `nose_mouth_uncovered` (from under the lower lip) and
`chin_uncovered` (nose bridge to under the lower lip). The mask's outline is a mesh: its top edge
runs through landmarks chosen by the placement, its bottom edge along the jaw (pushed a little
outwards) or under the lip; each texel is mapped by a piecewise-affine warp of that mesh.

This module is pure image arithmetic: the caller finds the landmarks (data/faces.py), so models/
needs no detector. `problem(lm, shape)` says why a face cannot take a mask (too small, too turned,
cut off), in which case the caller leaves it as it was.
"""

from __future__ import annotations

import zlib

import numpy as np

from maskcycle.config import FamilySettings
from maskcycle.models import textures

PLACEMENTS = ("correct", "nose_uncovered", "chin_uncovered", "nose_mouth_uncovered")
MIN_JAW_PX = 48  # a face narrower than this (jaw line end to end, photo pixels) is too small for a mask
MAX_YAW_RATIO = 3.0  # nose-tip-to-jaw distance on one side over the other: beyond this, too turned
MESH = (5, 9)  # rows (v) x columns (u) of the warp mesh

# no training step; models/families.py registers it as the `model: template` family (`Baseline`)
SETTINGS = FamilySettings(two_way=False, trains=False, translates=("AB",))
NEEDS_LANDMARKS = True
ACTS_IN_REGION = True


def problem(lm: np.ndarray, shape: tuple[int, ...], min_jaw_px: float = MIN_JAW_PX) -> str | None:
    """Why the face with 68 landmarks `lm` (x, y) cannot take a mask in an image of `shape`, or None."""
    jaw = float(np.hypot(*(lm[16] - lm[0])))
    if jaw < min_jaw_px:
        return f"face too small to place a mask ({jaw:.0f} px jaw width < {min_jaw_px})"
    left, right = np.hypot(*(lm[30] - lm[2])), np.hypot(*(lm[14] - lm[30]))
    ratio = max(left, right) / max(min(left, right), 1e-6)
    if ratio > MAX_YAW_RATIO:
        return f"face too turned to place a mask (nose-to-jaw ratio {ratio:.1f} > {MAX_YAW_RATIO})"
    h, w = shape[:2]
    margin = 0.05 * jaw
    low = lm[2:15]
    if (low[:, 0] < -margin).any() or (low[:, 0] > w + margin).any() or (low[:, 1] > h + margin).any():
        return "face cut off by the image edge where the mask would go"
    return None


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """n points equally spaced along the polyline `points`."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    t = np.concatenate([[0], np.cumsum(seg)]) / max(seg.sum(), 1e-9)
    s = np.linspace(0, 1, n)
    return np.stack([np.interp(s, t, points[:, 0]), np.interp(s, t, points[:, 1])], axis=1)


def _edges(lm: np.ndarray, placement: str) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom) polylines of the mask in image coordinates, left to right."""
    centre = lm[27:36].mean(axis=0)
    down = lm[8] - lm[27]
    down = down / max(np.hypot(*down), 1e-9)
    scale = np.hypot(*(lm[16] - lm[0]))

    def out(p, k):  # pushed away from the face centre by k face widths
        d = p - centre
        return p + k * scale * d / max(np.hypot(*d), 1e-9)

    under_eyes = [lm[40:42].mean(axis=0) + 0.06 * scale * down, lm[46:48].mean(axis=0) + 0.06 * scale * down]
    if placement in ("correct", "chin_uncovered"):
        top = [out(lm[1], 0.04), under_eyes[0], lm[28], under_eyes[1], out(lm[15], 0.04)]
    elif placement == "nose_uncovered":  # between the nostrils and the upper lip
        lip = 0.5 * (lm[51] - lm[33])
        top = [out(lm[2], 0.04), lm[31] + lip, lm[33] + lip, lm[35] + lip, out(lm[14], 0.04)]
    elif placement == "nose_mouth_uncovered":
        top = [out(lm[4], 0.04), lm[58] + 0.04 * scale * down, lm[57] + 0.05 * scale * down,
               lm[56] + 0.04 * scale * down, out(lm[12], 0.04)]
    else:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if placement == "chin_uncovered":
        lip = lm[57] + 0.35 * (lm[8] - lm[57])
        bottom = [out(lm[4], 0.04), out(lm[6], 0.03), lip, out(lm[10], 0.03), out(lm[12], 0.04)]
    else:
        first = {"correct": 2, "nose_uncovered": 3, "nose_mouth_uncovered": 5}[placement]
        bottom = [out(lm[i], 0.03 if 5 <= i <= 11 else 0.04) for i in range(first, 17 - first)]
        bottom[len(bottom) // 2] = bottom[len(bottom) // 2] + 0.03 * scale * down
    return np.array(top, dtype=np.float64), np.array(bottom, dtype=np.float64)


def mesh(lm: np.ndarray, placement: str, rows: int = MESH[0], cols: int = MESH[1]) -> np.ndarray:
    """rows x cols x 2 image positions of the texture's (v, u) grid points."""
    top, bottom = (_resample(e, cols) for e in _edges(lm, placement))
    v = np.linspace(0, 1, rows)[:, None, None]
    return (1 - v) * top[None] + v * bottom[None]


def _warp(texture: np.ndarray, grid: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The texture warped onto the mesh `grid`, rendered into the image window `box` (x0, y0, x1, y1)."""
    from skimage.transform import PiecewiseAffineTransform, warp

    th, tw = texture.shape[:2]
    rows, cols = grid.shape[:2]
    v, u = np.mgrid[:rows, :cols] / np.array([rows - 1, cols - 1])[:, None, None]
    src = grid.reshape(-1, 2) - np.array(box[:2], dtype=np.float64)  # window (x, y) per mesh point
    dst = np.stack([u.ravel() * tw, v.ravel() * th], axis=1)  # texture (x, y)
    tform = PiecewiseAffineTransform.from_estimate(src, dst)
    if not tform:
        raise ValueError("mask mesh is degenerate")
    shape = (box[3] - box[1], box[2] - box[0])
    layer = warp(texture, tform, output_shape=shape, order=1, mode="constant", cval=0.0).astype(np.float32)
    # the triangulation covers the mesh's convex hull: cut away what lies outside the mesh itself
    # (e.g. above a top edge that dips under the nose)
    layer[..., 3] *= _inside(grid - np.array(box[:2], dtype=np.float64), shape)
    return layer


def _inside(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased float map of the mesh's outline polygon (top row, right column, bottom row
    backwards, left column backwards)."""
    import cv2

    outline = np.vstack([grid[0], grid[1:, -1], grid[-1, -2::-1], grid[-2:0:-1, 0]])
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(outline * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma, mode="nearest") if sigma > 0 else a


def choose(image: np.ndarray, seed: int, kinds: tuple[str, ...], placements: tuple[str, ...]) -> tuple[str, str]:
    """(texture, placement) for one image: a pure function of the seed and the image's pixels, so a
    face gets the same mask whatever else is translated with it."""
    rng = np.random.default_rng([seed, zlib.crc32(np.ascontiguousarray(image).tobytes())])
    return str(rng.choice(list(kinds))), str(rng.choice(list(placements)))


def put_mask(image: np.ndarray, lm: np.ndarray, texture: str, placement: str, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """(image with the mask drawn on, float HxW alpha of every pixel it changed) for one face."""
    h, w = image.shape[:2]
    grid = mesh(lm, placement)
    scale = float(np.hypot(*(lm[16] - lm[0])))
    pad = int(np.ceil(0.12 * scale)) + 2
    x0, y0 = np.floor(grid.reshape(-1, 2).min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(grid.reshape(-1, 2).max(axis=0)).astype(int) + pad
    # the mesh may reach past the image; render on the clipped window plus what lies beyond
    box = (int(x0), int(y0), int(x1), int(y1))
    rng = np.random.default_rng([seed, zlib.crc32(texture.encode())])
    tex = textures.draw(texture, rng)
    layer = _warp(tex, grid, box)
    cx0, cy0, cx1, cy1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    if cx1 <= cx0 or cy1 <= cy0:
        return image.copy(), np.zeros((h, w), np.float32)
    layer = layer[cy0 - box[1]:cy1 - box[1], cx0 - box[0]:cx1 - box[0]]
    region = image[cy0:cy1, cx0:cx1].astype(np.float32) / 255
    alpha = _blur(layer[..., 3], max(0.4, scale / 250))  # a soft edge of about a pixel at 256 px
    # shading: the face's own low-frequency light, plus the curve of a mask round the face
    luma = _blur(region @ np.float32([0.299, 0.587, 0.114]), scale / 12)
    inside = alpha > 0.5
    light = luma / max(float(luma[inside].mean()) if inside.any() else float(luma.mean()), 1e-3)
    light = np.clip(light, 0.6, 1.4) ** 0.6
    rgb = np.clip(layer[..., :3] * light[..., None], 0, 1)
    # ear loops: thin strings from the mask's corners towards the ears, drawn under the mask
    loops = _loops(lm, grid, (cy1 - cy0, cx1 - cx0), (cx0, cy0), scale)
    loop_rgb = layer[..., :3][inside].mean(axis=0) * 0.85 if inside.any() else np.full(3, 0.5, np.float32)
    out = region * (1 - loops[..., None]) + loop_rgb * loops[..., None]
    shadow = np.clip(_blur(alpha, scale / 50) - alpha, 0, 1) * 0.15  # a faint contact shadow on the skin
    out = out * (1 - shadow[..., None])
    out = out * (1 - alpha[..., None]) + rgb * alpha[..., None]
    result = image.copy()
    result[cy0:cy1, cx0:cx1] = np.uint8(np.clip(np.rint(out * 255), 0, 255))
    changed = np.zeros((h, w), np.float32)
    changed[cy0:cy1, cx0:cx1] = np.maximum.reduce([alpha, loops, np.clip(shadow * 3, 0, 1)])
    return result, changed


def _loops(lm, grid, shape, origin, scale) -> np.ndarray:
    import cv2

    canvas = np.zeros(shape, np.uint8)
    width = max(1, int(round(scale / 90)))
    ears = [lm[0] + 0.03 * scale * (lm[0] - lm[16]) / scale, lm[16] + 0.03 * scale * (lm[16] - lm[0]) / scale]
    for col, ear in ((0, ears[0]), (-1, ears[1])):
        for row in (1, -2):
            a, b = grid[row, col] - origin, ear - origin
            cv2.line(canvas, tuple(int(round(c * 4)) for c in a), tuple(int(round(c * 4)) for c in b), 255,
                     width, cv2.LINE_AA, shift=2)
    return canvas.astype(np.float32) / 255


def translate(image: np.ndarray, lm: np.ndarray | None, seed: int, kinds: tuple[str, ...],
              placements: tuple[str, ...], min_jaw_px: float = 0) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(output, changed alpha or None, problem or None) for one face crop or photo with landmarks
    `lm` (None: no landmarks were found). A face that cannot take a mask is returned as it was."""
    why = "no landmarks" if lm is None else problem(lm, image.shape, min_jaw_px)
    if why:
        return image.copy(), None, why
    texture, placement = choose(image, seed, kinds, placements)
    out, alpha = put_mask(image, lm, texture, placement, seed)
    return out, alpha, None


def translate_face(cfg, direction: str, crop: np.ndarray, lm: np.ndarray | None, segmenter, check_masked: bool):
    """The `Baseline` hook: `translate` with the trial's seed, textures and placements. On an
    aligned crop any face size will do (`problem` judged the photo's face already)."""
    return translate(crop, lm, cfg.seed, cfg.texture_list, cfg.placement_list)
