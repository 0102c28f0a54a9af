import math

import pytest
import torch

from maskcycle.models.losses import cycle_loss, gan_loss, gradient_penalty

PRED = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])  # a 1x1x2x2 "patch map"
VALUES = [0.5, -1.0, 2.0, 0.0]


def test_lsgan_is_mse_to_one_and_zero():
    assert gan_loss(PRED, True, "lsgan").item() == pytest.approx(sum((v - 1) ** 2 for v in VALUES) / 4)
    assert gan_loss(PRED, False, "lsgan").item() == pytest.approx(sum(v**2 for v in VALUES) / 4)


def test_vanilla_is_bce_with_logits():
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert gan_loss(PRED, True, "vanilla").item() == pytest.approx(sum(softplus(-v) for v in VALUES) / 4)
    assert gan_loss(PRED, False, "vanilla").item() == pytest.approx(sum(softplus(v) for v in VALUES) / 4)


def test_wgan_is_minus_and_plus_mean():
    assert gan_loss(PRED, True, "wgangp").item() == pytest.approx(-0.375)
    assert gan_loss(PRED, False, "wgangp").item() == pytest.approx(0.375)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x): its gradient is w everywhere, so the penalty is (|w| - 1)^2 exactly.
    w = torch.full((1, 3, 4, 4), 0.5)
    D = lambda x: (x * w).sum(dim=(1, 2, 3))  # noqa: E731
    real, fake = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    expected = (w.norm() - 1) ** 2
    got = gradient_penalty(D, real, fake, torch.Generator().manual_seed(0))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_cycle_losses():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    assert cycle_loss(a, b, "l1").item() == pytest.approx(0.5)
    assert cycle_loss(a, b, "l2").item() == pytest.approx(0.25)
