"""The embedded demo data set: procedurally drawn face portraits, with and without masks.

Laid out exactly like the real sets, so the same readers and filters run on it:
- `<out>/ffhq/images1024x1024/00000/00000.png ...` (FFHQ: 5-digit ids, folders of 1000),
- `<out>/maskedfacenet/CMFD/00000/00000_Mask.jpg` (correctly worn) and
  `<out>/maskedfacenet/IMFD/00000/00000_Mask_{Mouth_Chin,Nose_Mouth,Chin}.jpg` (incorrectly worn),
  where masked image N is face N with a mask, as in MaskedFace-Net.
- `<out>/demo_truth.csv`: which files carry a deliberate defect (blur, second face, corrupt,
  too small, grayscale), so the notebook can show what each filter caught.

Faces are drawn with PIL and numpy at 2x the output size, lit as an ellipsoid from one light,
and reduced with a Lanczos filter; every image is a pure function of (seed, id).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from maskcycle.config import at_least
from maskcycle.data.parallel import parallel_map
from maskcycle.data.readers import PLACEMENT_BY_SUFFIX
from maskcycle.io import atomic_write_bytes, atomic_write_text

# MaskedFace-Net file suffixes (as the real set capitalises them) -> placement class; the readers'
# table is the one source, so drawing and reading cannot drift apart.
PLACEMENTS = {suffix.title(): placement for suffix, placement in PLACEMENT_BY_SUFFIX.items()}
DEFECTS = ("blur", "second_face", "corrupt", "small", "grayscale")

SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 145, 105],
                 [165, 114, 80], [128, 84, 56], [94, 60, 40]], np.float32) / 255
HAIR = np.array([[25, 20, 18], [55, 38, 28], [95, 62, 38], [150, 110, 70], [205, 170, 110],
                 [140, 60, 30], [150, 150, 150], [220, 215, 205]], np.float32) / 255
HAIR_P = np.array([0.25, 0.22, 0.17, 0.1, 0.09, 0.06, 0.07, 0.04])
IRIS = np.array([[60, 35, 20], [100, 65, 35], [70, 110, 150], [80, 120, 80], [110, 100, 70]], np.float32) / 255
MASK_COLOURS = {  # surgical masks come in a few dyes
    "surgical": np.array([[130, 185, 215], [235, 240, 242], [40, 42, 48], [232, 170, 190], [150, 200, 180]],
                         np.float32) / 255,
}


@dataclass(frozen=True)
class Face:
    """Geometry and colours of one portrait, in units of the image side."""

    cx: float
    cy: float
    a: float  # face half-width
    b: float  # face half-height
    taper: float  # jaw narrowing towards the chin
    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    iris: np.ndarray
    eye_gap: float
    eye_w: float
    brow_arch: float
    brow_thick: float
    nose_len: float
    nose_w: float
    mouth_w: float
    smile: float
    lips: np.ndarray
    beard: bool
    light: tuple[float, float, float]
    bg: tuple[np.ndarray, np.ndarray]
    bg_angle: float
    clothes: np.ndarray
    pose: float  # horizontal shift of the features (a little yaw)


def random_face(rng: np.random.Generator) -> Face:
    """Draw one face's parameters."""
    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.94, 1.04, 3)
    s = rng.uniform(0.92, 1.08)
    hair = HAIR[rng.choice(len(HAIR), p=HAIR_P)] * rng.uniform(0.85, 1.1)
    lips = np.clip(skin * np.array([0.92, 0.62, 0.62]) + rng.uniform(-0.04, 0.06), 0, 1)
    lx, ly = rng.uniform(-0.7, 0.7), rng.uniform(-0.6, -0.1)
    bg1 = rng.uniform(0.15, 0.95, 3)
    bg2 = np.clip(bg1 * rng.uniform(0.4, 1.2, 3), 0, 1)
    return Face(
        cx=0.5 + rng.normal(0, 0.012), cy=0.48 + rng.normal(0, 0.012),
        a=0.225 * s * rng.uniform(0.92, 1.06), b=0.3 * s * rng.uniform(0.95, 1.05),
        taper=rng.uniform(0.12, 0.38), skin=np.clip(skin, 0, 1), hair=np.clip(hair, 0, 1),
        hair_style=str(rng.choice(["short", "long", "bob", "bald", "bun", "curly", "side"],
                                  p=[0.24, 0.22, 0.16, 0.05, 0.09, 0.12, 0.12])),
        iris=IRIS[rng.integers(len(IRIS))], eye_gap=rng.uniform(0.4, 0.46), eye_w=rng.uniform(0.17, 0.22),
        brow_arch=rng.uniform(0.01, 0.03), brow_thick=rng.uniform(0.016, 0.028),
        nose_len=rng.uniform(0.3, 0.4), nose_w=rng.uniform(0.16, 0.24),
        mouth_w=rng.uniform(0.34, 0.46), smile=rng.uniform(-0.01, 0.035), lips=lips,
        beard=bool(rng.random() < 0.12), light=_unit(lx, ly, 1.0), bg=(bg1, bg2),
        bg_angle=rng.uniform(0, np.pi), clothes=rng.uniform(0.05, 0.9, 3), pose=rng.normal(0, 0.03),
    )


def _unit(x, y, z):
    n = (x * x + y * y + z * z) ** 0.5
    return (x / n, y / n, z / n)


# --- drawing helpers (float canvases HxWx3 in [0, 1]) --------------------------------------------

def _shape(D: int, draw_fn, blur: float = 0.0) -> np.ndarray:
    """An alpha map in [0, 1] drawn by `draw_fn(ImageDraw, D)`, optionally softened."""
    im = Image.new("L", (D, D), 0)
    g = ImageDraw.Draw(im)
    g.fill, g.ink = True, 255  # closed shapes are filled with white unless told otherwise
    draw_fn(g, D)
    box = im.getbbox()
    if box is None:
        return np.zeros((D, D), np.float32)
    if blur > 0:  # blur only the drawn region (plus a margin): most shapes are small
        m = int(blur * 3) + 2
        box = (max(0, box[0] - m), max(0, box[1] - m), min(D, box[2] + m), min(D, box[3] + m))
        im.paste(im.crop(box).filter(ImageFilter.GaussianBlur(blur)), box[:2])
    return np.asarray(im, np.float32) / 255


def _ellipse(D: int, x: float, y: float, rx: float, ry: float, blur: float = 0.0) -> np.ndarray:
    """Alpha of a filled ellipse centred at (x, y) with radii (rx, ry), in image units."""
    return _shape(D, lambda g, D: g.ellipse([(x - rx) * D, (y - ry) * D, (x + rx) * D, (y + ry) * D]), blur)


def _arc(g, D, box, width):
    g.arc(box, 190, 350, fill=255, width=width)


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Blend `colour` (RGB or an HxWx3 array) over `canvas` with `alpha`, in place."""
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if len(rows) == 0:
        return
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = alpha[sl][..., None]
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 3:
        colour = colour[sl]
    region = canvas[sl]
    region *= 1 - a
    region += a * colour


def _grid(D: int):
    yy, xx = np.mgrid[0:D, 0:D].astype(np.float32) / D
    return xx, yy


def _shade(xx, yy, cx, cy, rx, ry, light, ambient=0.55, diffuse=0.55):
    """Lambert shading of an ellipsoid bump centred at (cx, cy) with radii (rx, ry)."""
    nx, ny = (xx - cx) / rx, (yy - cy) / ry
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.02, 1))
    lam = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    return (ambient + diffuse * lam)[..., None]


def _face_outline(f: Face, grow: float = 1.0, n: int = 72) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    down = np.clip(np.sin(t), 0, 1)
    x = f.cx + f.a * grow * np.cos(t) * (1 - f.taper * down ** 2)
    y = f.cy + f.b * grow * np.sin(t) * (1 + 0.04 * down)
    return list(zip(x, y))


def _scaled(points, D):
    return [(x * D, y * D) for x, y in points]


# --- the portrait ---------------------------------------------------------------------------------

def render_face(f: Face, D: int, rng: np.random.Generator, extra_face: np.ndarray | None = None) -> np.ndarray:
    """The unmasked portrait as a float DxDx3 canvas."""
    xx, yy = _grid(D)
    # background: a two-colour gradient with a soft vignette
    d = np.cos(f.bg_angle) * (xx - 0.5) + np.sin(f.bg_angle) * (yy - 0.5)
    t = np.clip(d + 0.5, 0, 1)[..., None]
    canvas = f.bg[0] * (1 - t) + f.bg[1] * t
    canvas *= (1 - 0.35 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2))[..., None]
    canvas = canvas.astype(np.float32)
    if extra_face is not None:  # a second, smaller person in the background
        k = extra_face.shape[0]
        x0, y0 = int(D * 0.08), int(D * 0.02)  # the person's left edge leaves the frame
        fx, fy = _grid(k)
        feather = np.clip((0.5 - np.sqrt((fx - 0.5) ** 2 + (fy - 0.5) ** 2)) * 8, 0, 1)[..., None]
        region = canvas[y0:y0 + k, :k - x0]
        region[:] = region * (1 - feather[:, x0:]) + extra_face[:, x0:] * feather[:, x0:]
    cx, cy, a, b = f.cx, f.cy, f.a, f.b
    L = f.light
    # shoulders and neck
    sh = _shape(D, lambda g, D: g.ellipse([(cx - 0.46) * D, 0.86 * D, (cx + 0.46) * D, 1.5 * D]), 1)
    _paint(canvas, sh, f.clothes * _shade(xx, yy, cx, 1.15, 0.5, 0.35, L))
    neck = _shape(D, lambda g, D: g.rounded_rectangle(
        [(cx - a * 0.55) * D, (cy + b * 0.4) * D, (cx + a * 0.55) * D, 0.95 * D], radius=a * 0.3 * D), 1)
    _paint(canvas, neck, f.skin * 0.78 * _shade(xx, yy, cx, cy + b, a * 0.7, b * 0.8, L, 0.6, 0.4))
    # hair behind the head
    hs = f.hair_style
    if hs in ("long", "bob", "curly", "bun", "side"):
        low = {"long": 0.9, "bob": cy + b * 0.55, "curly": cy + b * 0.75, "bun": cy + b * 0.1,
               "side": cy + b * 0.35}[hs]
        wide = {"long": 1.3, "bob": 1.32, "curly": 1.55, "bun": 1.12, "side": 1.2}[hs]

        def back(g, D):
            g.ellipse([(cx - a * wide) * D, (cy - b * 1.2) * D, (cx + a * wide) * D, (cy + b * 0.3) * D])
            g.rounded_rectangle([(cx - a * wide) * D, (cy - b * 0.3) * D, (cx + a * wide) * D, low * D],
                                radius=a * 0.5 * D)
        _paint(canvas, _shape(D, back, 1.2), f.hair * _hair_texture(xx, yy, f, rng) * 0.8)
    if hs == "bun":
        bun = _shape(D, lambda g, D: g.ellipse([(cx - a * 0.45) * D, (cy - b * 1.45) * D,
                                                (cx + a * 0.45) * D, (cy - b * 0.85) * D]), 1)
        _paint(canvas, bun, f.hair * _shade(xx, yy, cx, cy - b * 1.15, a * 0.5, b * 0.35, L))
    # ears
    for side in (-1, 1):
        ex = cx + side * a * 0.97
        ear = _shape(D, lambda g, D, ex=ex: g.ellipse([(ex - a * 0.13) * D, (cy - b * 0.12) * D,
                                                       (ex + a * 0.13) * D, (cy + b * 0.22) * D]), 1)
        _paint(canvas, ear, f.skin * 0.9 * _shade(xx, yy, ex, cy + b * 0.05, a * 0.15, b * 0.2, L))
    # the face, lit as an ellipsoid
    face = _shape(D, lambda g, D: g.polygon(_scaled(_face_outline(f), D)), 0.8)
    lit = f.skin * _shade(xx, yy, cx, cy, a * 1.05, b * 1.05, L, 0.5, 0.6)
    _paint(canvas, face, lit)
    if f.beard:
        beard = _shape(D, lambda g, D: g.polygon(_scaled(
            [p for p in _face_outline(f, 1.0) if p[1] > cy + b * 0.2], D)), 2.5)
        _paint(canvas, beard * 0.75, f.hair * 0.9 * _hair_texture(xx, yy, f, rng))
    _features(canvas, f, D, xx, yy, rng)
    _front_hair(canvas, f, D, xx, yy, rng)
    return canvas


def _hair_texture(xx, yy, f: Face, rng) -> np.ndarray:
    # strands: noise stretched vertically (curls: round blobs), upsampled smoothly
    D = xx.shape[0]
    shape = (D // 6, D // 6) if f.hair_style == "curly" else (6, D // 2)
    noise = Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).resize((D, D), Image.BICUBIC)
    depth = 0.3 if f.hair_style == "curly" else 0.22
    strands = 1 - depth + depth * np.asarray(noise, np.float32) / 255
    return (strands * _shade(xx, yy, f.cx, f.cy - f.b * 0.3, f.a * 1.4, f.b * 1.3, f.light, 0.6, 0.5)[..., 0])[
        ..., None]


def _front_hair(canvas, f: Face, D, xx, yy, rng) -> None:
    cx, cy, a, b = f.cx, f.cy, f.a, f.b
    if f.hair_style == "bald":
        return
    part = {"side": 0.35, "bob": 0.0}.get(f.hair_style, rng.uniform(-0.2, 0.2))
    line = cy - b * {"short": 0.55, "bun": 0.6, "long": 0.5, "side": 0.45, "curly": 0.5, "bob": 0.35}[
        f.hair_style]
    cap = _shape(D, lambda g, D: g.ellipse([(cx - a * 1.1) * D, (cy - b * 1.18) * D,
                                            (cx + a * 1.1) * D, (cy + b * 0.6) * D]))
    # hairline: lower at the temples, a dip at the parting, a fringe wave
    u = (xx - cx) / a
    hairline = line + b * (0.25 * np.abs(u) ** 2.2 - 0.1 * np.exp(-((u - part) ** 2) / 0.02)
                           + 0.03 * np.sin(9 * u + rng.uniform(0, 6)))
    above = np.clip((hairline - yy) * D / 2.0, 0, 1)
    side = np.clip((np.abs(u) - 0.92) * 8, 0, 1) * (yy < cy + b * 0.1) if f.hair_style in ("long", "bob", "side",
                                                                                         "curly") else 0
    alpha = np.clip(cap * np.maximum(above, side), 0, 1)
    _paint(canvas, alpha, f.hair * _hair_texture(xx, yy, f, rng))


def _features(canvas, f: Face, D, xx, yy, rng) -> None:
    """Eyes and brows, nose, mouth, painted in that order (later strokes cover earlier ones)."""
    _eyes(canvas, f, D)
    _nose(canvas, f, D, xx, yy)
    _mouth(canvas, f, D, xx, yy)


def _eyes(canvas, f: Face, D) -> None:
    cx, cy, a, b = f.cx + f.pose * f.a, f.cy, f.a, f.b
    eye_y = cy - b * 0.08
    ew, eh = a * f.eye_w, a * f.eye_w * 0.45
    # eye sockets and cheek shadow
    sockets = _shape(D, lambda g, D: [g.ellipse([(cx + s * a * f.eye_gap - ew * 1.4) * D, (eye_y - eh * 2.8) * D,
                                                (cx + s * a * f.eye_gap + ew * 1.4) * D, (eye_y + eh * 1.8) * D])
                                      for s in (-1, 1)], D * 0.03)
    _paint(canvas, sockets * 0.5, f.skin * 0.5)
    for s in (-1, 1):
        ex = cx + s * a * f.eye_gap
        box = [(ex - ew) * D, (eye_y - eh) * D, (ex + ew) * D, (eye_y + eh) * D]
        white = _ellipse(D, ex, eye_y, ew, eh, 0.6)
        _paint(canvas, white, np.array([0.93, 0.9, 0.87]) * (0.75 + 0.25 * f.skin.mean()))
        r = eh * 0.95
        _paint(canvas, _ellipse(D, ex, eye_y, r, r, 0.5) * white, f.iris)
        _paint(canvas, _ellipse(D, ex, eye_y, r * 0.45, r * 0.45, 0.4) * white, np.array([0.04, 0.03, 0.03]))
        _paint(canvas, _ellipse(D, ex + r * 0.3, eye_y - r * 0.35, r * 0.22, r * 0.22) * 0.9, np.array([1.0, 1.0, 1.0]))
        lid = _shape(D, functools.partial(_arc, box=box, width=max(1, int(D * 0.008))), 0.5)
        _paint(canvas, lid, f.hair * 0.3 + 0.02)
        # brow: a thick arc, thinning outwards
        by = eye_y - eh * 2.2
        pts = []
        for k in np.linspace(-1, 1, 9):
            x = ex + k * ew * 1.3
            y = by - f.brow_arch * (1 - k * k) - 0.006 * s * k
            pts.append((x, y))
        thick = [(x, y + f.brow_thick * (1 - 0.5 * ((k * s + 1) / 2))) for (x, y), k in
                 zip(pts, np.linspace(-1, 1, 9))]
        brow = _shape(D, lambda g, D, pts=pts, thick=thick: g.polygon(_scaled(pts + thick[::-1], D)), 0.8)
        _paint(canvas, brow * 0.9, f.hair * 0.75)


def _nose(canvas, f: Face, D, xx, yy) -> None:
    cx, cy, a, b = f.cx + f.pose * f.a, f.cy, f.a, f.b
    L = f.light
    eye_y = cy - b * 0.08
    eh = a * f.eye_w * 0.45
    # nose: a shaded ridge, the tip and nostrils
    ny = cy + b * f.nose_len
    nw = a * f.nose_w
    side = 1 if L[0] < 0 else -1  # shadow on the side away from the light
    ridge = _shape(D, lambda g, D: g.line([((cx + side * nw * 0.45) * D, (eye_y + eh) * D),
                                           ((cx + side * nw * 0.8) * D, (ny - nw * 0.2) * D)],
                                          fill=255, width=max(1, int(D * 0.012))), D * 0.008)
    _paint(canvas, ridge * 0.35, f.skin * 0.5)
    tip = _shape(D, lambda g, D: g.ellipse([(cx - nw) * D, (ny - nw * 0.55) * D, (cx + nw) * D,
                                            (ny + nw * 0.45) * D]), D * 0.01)
    _paint(canvas, tip * 0.5, f.skin * _shade(xx, yy, cx, ny - nw * 0.2, nw * 1.2, nw, L, 0.55, 0.6))
    for s in (-1, 1):
        nx = cx + s * nw * 0.5
        nost = _shape(D, lambda g, D, nx=nx: g.ellipse([(nx - nw * 0.28) * D, (ny + nw * 0.05) * D,
                                                        (nx + nw * 0.28) * D, (ny + nw * 0.3) * D]), 0.8)
        _paint(canvas, nost * 0.7, f.skin * 0.35)
    under = _shape(D, lambda g, D: g.ellipse([(cx - nw * 0.9) * D, (ny + nw * 0.25) * D, (cx + nw * 0.9) * D,
                                              (ny + nw * 0.7) * D]), D * 0.01)
    _paint(canvas, under * 0.3, f.skin * 0.6)


def _mouth(canvas, f: Face, D, xx, yy) -> None:
    cx, cy, a, b = f.cx + f.pose * f.a, f.cy, f.a, f.b
    L = f.light
    # mouth: upper and lower lip, the line between, a little smile
    my = cy + b * 0.58
    mw = a * f.mouth_w

    def lip_pts(top: bool):
        pts = []
        for k in np.linspace(-1, 1, 13):
            curve = f.smile * k * k
            if top:
                bow = 0.012 * (1 - abs(k)) * (1 + 0.8 * np.cos(k * 8))
                pts.append((cx + k * mw, my - curve - bow * (1 - k * k) * 1.6))
            else:
                pts.append((cx + k * mw, my - curve + 0.02 * (1 - k * k)))
        return pts

    line = [(cx + k * mw, my - f.smile * k * k) for k in np.linspace(-1, 1, 13)]
    upper = _shape(D, lambda g, D: g.polygon(_scaled(lip_pts(True) + line[::-1], D)), 0.8)
    lower = _shape(D, lambda g, D: g.polygon(_scaled(line + lip_pts(False)[::-1], D)), 0.8)
    _paint(canvas, upper, f.lips * 0.82)
    _paint(canvas, lower, f.lips * _shade(xx, yy, cx, my + 0.01, mw, 0.025, L, 0.7, 0.4))
    mline = _shape(D, lambda g, D: g.line(_scaled(line, D), fill=255, width=max(1, int(D * 0.006))), 0.5)
    _paint(canvas, mline * 0.8, f.lips * 0.35)
    chin = _shape(D, lambda g, D: g.ellipse([(cx - mw * 0.6) * D, (my + 0.045) * D, (cx + mw * 0.6) * D,
                                             (my + 0.07) * D]), D * 0.012)
    _paint(canvas, chin * 0.25, f.skin * 0.6)


# --- masks ----------------------------------------------------------------------------------------

def random_mask_style(rng: np.random.Generator) -> dict:
    kind = str(rng.choice(["surgical", "cloth", "n95"], p=[0.5, 0.33, 0.17]))
    if kind == "surgical":
        colour = MASK_COLOURS["surgical"][rng.integers(len(MASK_COLOURS["surgical"]))]
    elif kind == "cloth":
        colour = rng.uniform(0.05, 0.85, 3)
    else:
        colour = np.array([0.95, 0.95, 0.93]) * rng.uniform(0.9, 1.0)
    return {"kind": kind, "colour": colour, "pattern": str(rng.choice(["plain", "stripes", "dots", "checks"])),
            "colour2": rng.uniform(0.1, 0.95, 3), "freq": rng.uniform(25, 45), "valve": bool(rng.random() < 0.3)}


def _mask_alpha(f: Face, placement: str, n95: bool, D: int, xx, yy):
    """The mask's coverage (alpha), its top and bottom, and its top edge: where the placement puts it."""
    cx, cy, a, b = f.cx, f.cy, f.a, f.b
    eye_y = cy - b * 0.08
    nose_y = cy + b * f.nose_len
    mouth_y = cy + b * 0.58
    top = {"correct": eye_y + b * 0.17, "chin_uncovered": eye_y + b * 0.17,
           "nose_uncovered": nose_y + b * 0.12, "nose_mouth_uncovered": mouth_y + b * 0.12}[placement]
    bottom = cy + b * 1.12 if placement != "chin_uncovered" else mouth_y + b * 0.22
    u = (xx - cx) / a
    # top edge: rises over the nose when it covers the nose; sides a little outside the face
    top_edge = top + b * (0.1 * np.clip(np.abs(u), 0, 1.2) ** 2 - (0.08 if top < nose_y else 0.0)
                          * np.exp(-u * u / 0.08))
    outline = _shape(D, lambda g, D: g.polygon(_scaled(_face_outline(f, 1.07 if not n95 else 1.04), D)))
    chin_ext = _shape(D, lambda g, D: g.ellipse([(cx - a * 0.6) * D, (cy + b * 0.7) * D,
                                                 (cx + a * 0.6) * D, (cy + b * 1.15) * D]))
    if placement == "chin_uncovered":
        bottom_edge = bottom + b * 0.1 * np.abs(u) ** 2
    else:
        bottom_edge = np.full_like(xx, bottom)
    body = np.maximum(outline, chin_ext)
    if n95:
        body = np.minimum(body, np.clip((0.95 - np.abs(u)) * 30, 0, 1))
    alpha = body * np.clip((yy - top_edge) * D / 1.5, 0, 1) * np.clip((bottom_edge - yy) * D / 1.5, 0, 1)
    alpha = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7)),
                       np.float32) / 255
    return alpha, top, bottom, top_edge


def _mask_colour(style: dict, shape, xx, yy) -> np.ndarray:
    """The material's colour per pixel: plain, or a cloth pattern in a second colour."""
    colour = np.broadcast_to(style["colour"], shape).copy()
    if style["kind"] == "cloth" and style["pattern"] != "plain":
        fq = style["freq"]
        if style["pattern"] == "stripes":
            m = (np.sin(fq * (xx + yy * 0.3)) > 0.3)
        elif style["pattern"] == "dots":
            m = (np.sin(fq * xx) * np.sin(fq * yy) > 0.6)
        else:
            m = (np.sin(fq * xx) > 0) ^ (np.sin(fq * yy) > 0)
        colour[m] = style["colour2"]
    return colour


def draw_mask(canvas: np.ndarray, f: Face, style: dict, placement: str, D: int) -> np.ndarray:
    """Put a mask on a rendered face; `placement` is one of PLACEMENTS' values."""
    canvas = canvas.copy()
    xx, yy = _grid(D)
    cx, cy, a, b, L = f.cx, f.cy, f.a, f.b, f.light
    n95 = style["kind"] == "n95"
    alpha, top, bottom, top_edge = _mask_alpha(f, placement, n95, D, xx, yy)
    u = (xx - cx) / a
    # a soft contact shadow on the skin around the mask edge
    shadow = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(D * 0.015)),
                        np.float32) / 255
    canvas *= (1 - 0.35 * np.clip(shadow - alpha, 0, 1))[..., None]
    # straps / ear loops drawn first so the mask covers their ends
    strap_col = style["colour"] * 0.9 if style["kind"] != "n95" else np.array([0.85, 0.85, 0.8])
    mid = (top + bottom) / 2
    loops = _shape(D, lambda g, D: [g.line([((cx + s * a * 0.9) * D, (y0) * D), ((cx + s * a * 1.02) * D,
                                                                                   (cy - b * 0.02) * D)],
                                           fill=255, width=max(1, int(D * 0.007)))
                                    for s in (-1, 1) for y0 in (top + 0.01, min(bottom, mid + b * 0.25))], 0.5)
    _paint(canvas, loops, strap_col * 0.85)
    # material: colour, pattern and shading as a horizontal cylinder (cup for N95)
    colour = _mask_colour(style, canvas.shape, xx, yy)
    ry = (bottom - top) * 0.75
    shade = _shade(xx, yy, cx, (top + bottom) / 2 + 0.02, a * 1.15, ry if n95 else ry * 3, L, 0.5, 0.62)
    if style["kind"] == "surgical":  # three pleats: a light crest, then a shadow under each fold
        span = bottom - top
        phase = (yy - top - span * 0.18) / (span * 0.22)
        pleat = np.where((phase > 0) & (phase < 3), np.sin(2 * np.pi * (phase % 1)), 0)
        shade = shade * (1 + 0.05 * np.where(pleat > 0, pleat, 1.6 * pleat))[..., None]
        wire = np.clip(1 - np.abs(yy - top_edge - 0.012) * D / 2.5, 0, 1) * (np.abs(u) < 0.35)
        shade = shade * (1 + 0.12 * wire)[..., None]
    if n95:
        seam = np.clip(1 - np.abs(xx - cx) * D / 1.2, 0, 1) * 0.12
        shade = shade * (1 - seam)[..., None]
    fabric = 0.97 + 0.03 * np.sin(400 * xx) * np.sin(400 * yy)
    _paint(canvas, alpha, np.clip(colour * shade * fabric[..., None], 0, 1))
    # a darker rim so the mask reads as a separate layer
    rim = np.clip(alpha * (1 - alpha) * 4, 0, 1) * 0.3
    canvas *= (1 - rim)[..., None]
    if n95 and style["valve"]:
        vx, vy, vr = cx + a * 0.45, (top + bottom) / 2 + 0.02, a * 0.18
        valve = _shape(D, lambda g, D: g.ellipse([(vx - vr) * D, (vy - vr) * D, (vx + vr) * D, (vy + vr) * D]),
                       0.8) * alpha
        _paint(canvas, valve, np.array([0.35, 0.4, 0.45]) * _shade(xx, yy, vx, vy, vr, vr, L, 0.5, 0.6))
    return canvas


# --- images and files -----------------------------------------------------------------------------

def _to_image(canvas: np.ndarray, size: int) -> Image.Image:
    im = Image.fromarray((np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8))
    return im if im.size[0] == size else im.resize((size, size), Image.LANCZOS)


def _draw_size(size: int) -> int:
    # small outputs are drawn larger and reduced (anti-aliasing); 128 px and up are drawn as is
    return size if size >= 128 else 128


def defect_plan(n_ids: int, seed: int) -> dict[str, dict[int, str]]:
    """Which ids carry which deliberate defect, per set ('ffhq', 'masked').

    Blur and second faces are properties of the face, so face N's masked image inherits them;
    file defects (corrupt, small, grayscale) are per file, on different ids in the two sets.
    """
    rng = np.random.default_rng([seed, 7919])
    ids = rng.permutation(n_ids)
    k = max(1, round(n_ids * 0.03))
    face = {int(i): "blur" for i in ids[:k]} | {int(i): "second_face" for i in ids[k:2 * k]}
    rest = [int(i) for i in ids[2 * k:]]
    ffhq, masked = dict(face), dict(face)
    for j, d in enumerate(("corrupt", "small", "grayscale")):
        if len(rest) > 2 * j + 1:
            ffhq[rest[2 * j]] = d
            masked[rest[2 * j + 1]] = d
    return {"ffhq": ffhq, "masked": masked}


def _save(im: Image.Image, path: Path, fmt: str, defect: str | None, size: int) -> None:
    if defect == "small":
        im = im.resize((max(8, size * 3 // 8),) * 2, Image.LANCZOS)
    elif defect == "grayscale":
        im = im.convert("L")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    data = buf.getvalue()
    if defect == "corrupt":
        data = data[: len(data) * 2 // 5]  # truncated mid-stream, as an interrupted download
    atomic_write_bytes(path, data)


def ffhq_path(root: Path, i: int) -> Path:
    return root / "images1024x1024" / f"{i // 1000 * 1000:05d}" / f"{i:05d}.png"


def masked_path(root: Path, i: int, suffix: str) -> Path:
    top = "CMFD" if suffix == "Mask" else "IMFD"
    return root / top / f"{i // 1000 * 1000:05d}" / f"{i:05d}_{suffix}.jpg"


def render_id(i: int, size: int, seed: int, face_defect: str | None = None) -> dict[str, Image.Image]:
    """All images of face id i: 'face', and the masked versions keyed by file suffix.

    `face_defect` ('blur' or 'second_face') is drawn into every image of the face."""
    rng = np.random.default_rng([seed, i])
    f = random_face(rng)
    D = _draw_size(size)
    plan_rng = np.random.default_rng([seed, i, 1])
    has_cmfd = plan_rng.random() < 0.97
    imfd = str(plan_rng.choice(["Mask_Mouth_Chin", "Mask_Nose_Mouth", "Mask_Chin"])) if plan_rng.random() < 0.5 \
        else None
    extra = None
    if face_defect == "second_face":
        k = int(D * 0.48)
        g = random_face(np.random.default_rng([seed, i, 2]))
        extra = render_face(g, k, np.random.default_rng([seed, i, 3]))
    canvas = render_face(f, D, rng, extra)
    out = {"face": canvas}
    style = random_mask_style(np.random.default_rng([seed, i, 4]))
    if has_cmfd:
        out["Mask"] = draw_mask(canvas, f, style, "correct", D)
    if imfd:
        out[imfd] = draw_mask(canvas, f, style, PLACEMENTS[imfd], D)
    images = {}
    for key, c in out.items():
        im = _to_image(c, size)
        if face_defect == "blur":
            im = im.filter(ImageFilter.GaussianBlur(size * 0.02))
        images[key] = im
    return images


def write_id(out: Path, i: int, size: int, seed: int, plan: dict) -> list[dict]:
    """Render and write every file of face id i; returns rows for demo_truth.csv."""
    face_defect = plan["ffhq"].get(i) if plan["ffhq"].get(i) in ("blur", "second_face") else None
    images = render_id(i, size, seed, face_defect)
    rows = []
    p = ffhq_path(out / "ffhq", i)
    d = plan["ffhq"].get(i)
    _save(images.pop("face"), p, "PNG", d, size)
    rows.append({"id": f"{i:05d}", "set": "ffhq", "file": str(p.relative_to(out)), "defect": d or ""})
    for suffix, im in images.items():
        p = masked_path(out / "maskedfacenet", i, suffix)
        d = plan["masked"].get(i) if suffix == "Mask" or plan["masked"].get(i) in ("blur", "second_face") else None
        _save(im, p, "JPEG", d, size)
        rows.append({"id": f"{i:05d}", "set": "maskedfacenet", "file": str(p.relative_to(out)), "defect": d or ""})
    return rows


CLAIM = "demo_claimed.json"  # ids whose files this command has set out to write into the folder
MASK_SUFFIXES = ("Mask", "Mask_Mouth_Chin", "Mask_Nose_Mouth", "Mask_Chin")  # every masked file an id may have


def _claim(out: Path, n_ids: int) -> None:
    """Refuse a folder holding files at the demo's paths that it did not write (a real FFHQ or
    MaskedFace-Net image), before writing anything; then record the ids claimed."""
    from maskcycle.io import check_output

    check_output(out, [])
    claimed = 0
    for record in (CLAIM, "demo_settings.json"):  # the settings stamp: a set written before claims existed
        try:
            claimed = int(json.loads((out / record).read_text())["n_ids"])
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    theirs = []
    for i in range(claimed, n_ids):
        paths = [ffhq_path(out / "ffhq", i)] + [masked_path(out / "maskedfacenet", i, m) for m in MASK_SUFFIXES]
        theirs += [p for p in paths if p.exists()]
        if len(theirs) >= 3:
            break
    theirs += [out / n for n in ("demo_truth.csv", "contact_sheet.png", "demo_settings.json")
               if not claimed and (out / n).exists()]
    if theirs:
        raise ValueError(f"demo-data: --out {out} already holds files demo-data did not write "
                         f"({', '.join(str(p) for p in theirs[:3])}): refusing to overwrite them; "
                         "choose an empty or new folder")
    atomic_write_text(out / CLAIM, json.dumps({"n_ids": max(n_ids, claimed)}))


def generate(out: str | Path, n_ids: int = 600, size: int = 128, seed: int = 0, workers: int = 0,
             progress: bool = True) -> Path:
    """Write the demo set under `out` (idempotent: a complete set with the same settings is kept).

    workers: processes (0 = all cores, 1 = in this process)."""
    out = Path(out)
    settings = {"n_ids": n_ids, "size": size, "seed": seed, "version": 1}
    stamp = out / "demo_settings.json"
    if stamp.exists() and (out / "demo_truth.csv").exists():
        try:
            if json.loads(stamp.read_text()) == settings:
                return out
        except ValueError:
            pass
    if n_ids < 1 or n_ids > 100_000 or size < 16:
        raise ValueError(f"demo-data: need 1 <= n_ids <= 100000 and size >= 16, got n_ids={n_ids} size={size}")
    _claim(out, n_ids)
    plan = defect_plan(n_ids, seed)
    job = functools.partial(write_id, out, size=size, seed=seed, plan=plan)
    results = parallel_map(job, list(range(n_ids)), workers, "demo faces", progress, unit="id", chunksize=25)
    rows = [row for rows_of_id in results for row in rows_of_id]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["id", "set", "file", "defect"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "demo_truth.csv", buf.getvalue())
    write_sheet(out, rows)
    atomic_write_text(stamp, json.dumps(settings))
    return out


def write_sheet(out: Path, rows: list[dict], n_ids: int = 16) -> Path:
    """`out/contact_sheet.png`: the first faces, each followed by its masked versions, for a look by eye."""
    from maskcycle.data.images import ImageReadError, read_rgb, write_png

    ids = sorted({r["id"] for r in rows})[:n_ids]
    tiles, labels = [], []
    for r in rows:
        if r["id"] in ids:
            try:
                tiles.append(read_rgb(out / r["file"], 96))
            except ImageReadError:
                tiles.append(np.full((96, 96, 3), 128, np.uint8))
            labels.append(r["id"] + (" " + r["defect"] if r["defect"] else ""))
    path = out / "contact_sheet.png"
    write_png(path, contact_sheet(tiles, cols=9, labels=labels))
    return path


def contact_sheet(images: list[np.ndarray], cols: int = 8, labels: list[str] | None = None) -> np.ndarray:
    """Tile equally sized HxWx3 uint8 images into one image (for review)."""
    if not images:
        return np.zeros((8, 8, 3), np.uint8)
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    sheet = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        sheet[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im[:h, :w]
    if labels:
        pil = Image.fromarray(sheet)
        g = ImageDraw.Draw(pil)
        for k, lab in enumerate(labels):
            r, c = divmod(k, cols)
            g.text((c * (w + 2) + 2, r * (h + 2) + 1), lab, fill=(255, 255, 0))
        sheet = np.asarray(pil)
    return sheet


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle demo-data`."""
    p.add_argument("--out", required=True, help="folder for ffhq/ and maskedfacenet/")
    p.add_argument("--n-ids", type=at_least(1), default=600, help="number of face ids")
    p.add_argument("--size", type=at_least(1), default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=at_least(0), default=0, help="processes (0 = all cores)")


def run_command(args) -> int:
    print(generate(args.out, n_ids=args.n_ids, size=args.size, seed=args.seed, workers=args.workers))
    return 0
