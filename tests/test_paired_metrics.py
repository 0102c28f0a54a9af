"""PSNR/SSIM against hand-checked values, and the mask region of a pair."""

import math

import numpy as np
import pytest

from maskcycle.evaluation import paired_metrics


def test_psnr_hand_checked():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    assert paired_metrics.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100))  # 28.13 dB
    assert paired_metrics.psnr(a, a) == math.inf
    # Only the masked pixels count: the rest may differ by anything.
    c = b.copy()
    c[:4] = 200
    mask = np.zeros((8, 8), bool)
    mask[4:] = True
    assert paired_metrics.psnr(a, c, mask) == pytest.approx(paired_metrics.psnr(a, b))
    assert math.isnan(paired_metrics.psnr(a, b, np.zeros((8, 8), bool)))
    with pytest.raises(ValueError, match="mask of shape"):
        paired_metrics.psnr(a, b, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="one size"):
        paired_metrics.psnr(a, b[:4])


def test_ssim_hand_checked():
    # Constant images: variances are 0, so SSIM = (2 x y + C1) / (x^2 + y^2 + C1), C1 = (0.01 * 255)^2.
    x, y = 100.0, 150.0
    c1 = (0.01 * 255) ** 2
    a = np.full((16, 16, 3), x, np.uint8)
    b = np.full((16, 16, 3), y, np.uint8)
    assert paired_metrics.ssim(a, b) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), rel=1e-6)
    assert paired_metrics.ssim(a, a) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert paired_metrics.ssim(noisy, noisy) == pytest.approx(1.0)
    assert paired_metrics.ssim(noisy, a) < 0.2
    # Masked SSIM: a region where the images agree scores 1 even if elsewhere they differ.
    c = noisy.copy()
    c[:8] = 0
    mask = np.zeros((16, 16), bool)
    mask[12:] = True  # far enough from the changed rows for the 7x7 window
    assert paired_metrics.ssim(noisy, c, mask) == pytest.approx(1.0)
    assert paired_metrics.ssim(noisy, c) < 1.0
    with pytest.raises(ValueError, match="7x7"):
        paired_metrics.ssim(a[:5, :5], b[:5, :5])


def test_mask_region_of_a_pair():
    rng = np.random.default_rng(1)
    face = rng.integers(60, 200, (32, 32, 3)).astype(np.uint8)
    masked = face.copy()
    masked[18:28, 6:26] = (230, 230, 240)  # the drawn mask
    masked[20:22, 10:14] = face[20:22, 10:14]  # a patch of the mask that happens to match the face
    noise = rng.integers(-6, 7, face.shape)  # JPEG-like noise everywhere
    region = paired_metrics.mask_region(np.clip(masked + noise, 0, 255).astype(np.uint8), face)
    truth = np.zeros((32, 32), bool)
    truth[18:28, 6:26] = True
    assert (region == truth).mean() > 0.97
    assert region[20:22, 10:14].all()  # holes filled
    assert not region[:14].any()  # noise alone is not a mask


def test_pair_metrics_baseline_and_translation():
    rng = np.random.default_rng(2)
    face = rng.integers(60, 200, (16, 16, 3)).astype(np.uint8)
    masked = face.copy()
    masked[8:14, 3:13] = 240
    region = paired_metrics.mask_region(masked, face)
    perfect = paired_metrics.pair_metrics(face, face, masked, region)
    assert perfect["psnr"] == math.inf and perfect["ssim"] == pytest.approx(1.0)
    assert perfect["psnr_input"] < 30 and 0.15 < perfect["mask_fraction"] < 0.5
    # The untouched input is right outside the mask: its PSNR over the mask is what is wrong.
    nothing = paired_metrics.pair_metrics(masked, face, masked, region)
    assert nothing["psnr_mask"] < nothing["psnr"]


def test_mask_region_reaching_the_border():
    face = np.full((24, 24, 3), 120, np.uint8)
    masked = face.copy()
    masked[14:, 4:20] = 20  # a mask down to the bottom edge
    region = paired_metrics.mask_region(masked, face)
    assert region[-1, 4:20].all() and region[15:, 4:20].all()
    assert 10 * 16 - 2 <= region.sum() <= 10 * 16  # a 3x3 median may round the two top corners off
    assert not region[:14].any() and not region[:, :4].any() and not region[:, 20:].any()
