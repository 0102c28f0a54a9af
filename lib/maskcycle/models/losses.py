"""GAN losses (lsgan, vanilla, wgangp), the WGAN-GP gradient penalty and the cycle loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(prediction: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """The reference GANLoss: lsgan = MSE to 1/0, vanilla = BCE with logits, wgangp = -/+ mean."""
    if mode == "wgangp":
        return -prediction.mean() if target_is_real else prediction.mean()
    target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown gan_mode {mode!r}")


def gradient_penalty(netD, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None,
                     constant: float = 1.0) -> torch.Tensor:
    """WGAN-GP penalty on random interpolates (reference `cal_gradient_penalty`, type "mixed"),
    without the lambda factor. `generator` draws the interpolation weights reproducibly."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device="cpu").to(real.device, real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = netD(mixed)
    (grad,) = torch.autograd.grad(out, mixed, torch.ones_like(out), create_graph=True)
    return (((grad.flatten(1) + 1e-16).norm(2, dim=1) - constant) ** 2).mean()


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor, kind: str) -> torch.Tensor:
    """L1 (the reference) or L2 (mean squared) reconstruction loss."""
    if kind == "l1":
        return F.l1_loss(reconstructed, original)
    if kind == "l2":
        return F.mse_loss(reconstructed, original)
    raise ValueError(f"unknown cycle_loss {kind!r}")
