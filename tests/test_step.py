"""train_step against a line-by-line transcription of the reference's optimize_parameters."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

from maskcycle.config import TrialConfig
from maskcycle.models.cyclegan import build as build_cyclegan
from maskcycle.models.cyclegan import train_step


def _reference_step(G_A, G_B, D_A, D_B, opt_G, opt_D, real_A, real_B, lam_A=10.0, lam_B=10.0, lam_idt=0.5):
    """Reference names: G_A: A->B, G_B: B->A, D_A judges B, D_B judges A (lsgan, pool size 0)."""
    mse = lambda p, real: F.mse_loss(p, torch.full_like(p, 1.0 if real else 0.0))  # noqa: E731
    fake_B = G_A(real_A); rec_A = G_B(fake_B); fake_A = G_B(real_B); rec_B = G_A(fake_A)  # noqa: E702
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(False)
    opt_G.zero_grad()
    idt_A = G_A(real_B); loss_idt_A = F.l1_loss(idt_A, real_B) * lam_B * lam_idt  # noqa: E702
    idt_B = G_B(real_A); loss_idt_B = F.l1_loss(idt_B, real_A) * lam_A * lam_idt  # noqa: E702
    loss_G = (mse(D_A(fake_B), True) + mse(D_B(fake_A), True) + F.l1_loss(rec_A, real_A) * lam_A
              + F.l1_loss(rec_B, real_B) * lam_B + loss_idt_A + loss_idt_B)
    loss_G.backward()
    opt_G.step()
    for p in itertools.chain(D_A.parameters(), D_B.parameters()):
        p.requires_grad_(True)
    opt_D.zero_grad()
    for D, real, fake in ((D_A, real_B, fake_B), (D_B, real_A, fake_A)):
        loss_D = (mse(D(real), True) + mse(D(fake.detach()), False)) * 0.5
        loss_D.backward()
    opt_D.step()


@pytest.mark.parametrize("batch", [1, 3])
def test_step_equals_the_reference_order(batch):
    cfg = TrialConfig(netG="resnet_6blocks", ngf=8, ndf=8, pool_size=0, crop_size=32, load_size=36)
    m = build_cyclegan(cfg)
    G_A, G_B, D_A, D_B = (copy.deepcopy(n) for n in (m.G_AB, m.G_BA, m.D_B, m.D_A))
    opt_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        real_A, real_B = torch.rand(2, batch, 3, 32, 32, generator=g) * 2 - 1
        train_step(m, real_A, real_B)
        _reference_step(G_A, G_B, D_A, D_B, opt_G, opt_D, real_A, real_B)
    for ours, ref in ((m.G_AB, G_A), (m.G_BA, G_B), (m.D_B, D_A), (m.D_A, D_B)):
        for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_step_returns_the_eight_losses_and_respects_lambdas():
    cfg = TrialConfig(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, lambda_identity=0.0)
    m = build_cyclegan(cfg)
    losses = train_step(m, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert set(losses) == {"D_A", "G_AB", "cycle_A", "idt_AB", "D_B", "G_BA", "cycle_B", "idt_BA"}
    assert losses["idt_AB"].item() == 0.0 and losses["cycle_A"].item() > 0


@pytest.mark.parametrize("gan_mode", ["vanilla", "wgangp"])
def test_other_gan_modes_step(gan_mode):
    cfg = TrialConfig(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, gan_mode=gan_mode, batch_size=2)
    m = build_cyclegan(cfg)
    losses = train_step(m, torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert all(torch.isfinite(v) for v in losses.values())
