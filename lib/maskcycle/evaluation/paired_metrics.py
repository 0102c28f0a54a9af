"""Paired metrics: PSNR and SSIM of a translation against the true counterpart, over the whole
image and over the mask region.

A masked face N of MaskedFace-Net is FFHQ face N with a mask drawn on, so for such pairs the truth
is known: G_BA(masked N) should look like FFHQ N, and G_AB(FFHQ N) like masked N. The mask region
is where the real pair differs (`mask_region`); outside it a perfect translation changes nothing.
All images are uint8 HxWx3 of one size.
"""

from __future__ import annotations

import numpy as np

from maskcycle.data.pair_checks import mask_region  # noqa: F401 - one definition, shared with curation

DATA_RANGE = 255.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected two HxWx3 images of one size, got {a.shape} and {b.shape}")


def _check_mask(mask: np.ndarray | None, shape: tuple) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask of shape {mask.shape} does not fit images of shape {shape}")
    return mask


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 255) over all pixels, or over the mask's pixels
    (all three channels). inf for identical images; nan for an empty mask."""
    _check_pair(a, b)
    mask = _check_mask(mask, a.shape)
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    mse = float(np.mean(diff ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(DATA_RANGE ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image: 7x7 uniform window, K1 0.01, K2 0.03, per channel then
    averaged). Whole image: scikit-image's mean SSIM. With a mask: the mean of the SSIM map over
    the mask's pixels; nan for an empty mask."""
    mask = _check_mask(mask, a.shape)
    return _ssim_of(*_ssim_map(a, b), mask)


def _ssim_map(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """scikit-image's mean SSIM and its full per-pixel, per-channel map."""
    from skimage.metrics import structural_similarity

    _check_pair(a, b)
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {a.shape[:2]}")
    return structural_similarity(a, b, channel_axis=2, data_range=DATA_RANGE, full=True)


def _ssim_of(mean: float, full: np.ndarray, mask: np.ndarray | None) -> float:
    if mask is None:
        return float(mean)
    if not mask.any():
        return float("nan")
    return float(full.mean(axis=2)[mask].mean())


def pair_metrics(fake: np.ndarray, truth: np.ndarray, source: np.ndarray, region: np.ndarray) -> dict:
    """PSNR/SSIM of a translation (`fake`) against its true counterpart, whole and in `region`;
    the same for the untranslated `source` as a do-nothing baseline; and the region's share."""
    return {**translation_metrics(fake, truth, region), **baseline_metrics(source, truth, region)}


def translation_metrics(fake: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict:
    """The part of pair_metrics that depends on the translation (one SSIM map serves both SSIMs)."""
    region = _check_mask(region, fake.shape)
    mean, full = _ssim_map(fake, truth)
    return {"psnr": psnr(fake, truth), "ssim": _ssim_of(mean, full, None),
            "psnr_mask": psnr(fake, truth, region), "ssim_mask": _ssim_of(mean, full, region)}


def baseline_metrics(source: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict:
    """The part of pair_metrics fixed by the test pair: the do-nothing baseline and the region's share."""
    return {"psnr_input": psnr(source, truth), "ssim_input": ssim(source, truth),
            "mask_fraction": float(np.mean(region))}
