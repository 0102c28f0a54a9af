"""GAN losses (lsgan, vanilla, wgangp), the WGAN-GP gradient penalty, the cycle loss and CUT's PatchNCE."""

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


def patch_nce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, nce_T: float) -> torch.Tensor:
    """CUT's PatchNCE loss, one value per query patch (reference PatchNCELoss, negatives from the
    same image only). feat_q, feat_k: (batch_size * P) x C unit vectors, patch p of image b at row
    b * P + p, query i's positive the key of the same row. Logits = [q.k+, q.k- for the other P-1
    patches of its image] / nce_T (the self-pair is filled with -10, as the reference does), then
    cross-entropy with the positive as the class. Keys are detached."""
    n, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(n, 1, dim), feat_k.view(n, dim, 1)).view(n, 1)
    q, k = feat_q.view(batch_size, -1, dim), feat_k.view(batch_size, -1, dim)
    patches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    diagonal = torch.eye(patches, device=q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(diagonal, -10.0).view(-1, patches)
    logits = torch.cat((l_pos, l_neg), dim=1) / nce_T
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=q.device), reduction="none")
