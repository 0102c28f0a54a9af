"""The CycleGAN training state and one optimisation step, in the reference order.

Naming (ours): G_AB puts a mask on (A->B), G_BA takes it off; D_A judges real vs fake A, D_B real
vs fake B. The reference calls G_AB "G_A" and lets its "D_A" judge domain B; only the checkpoint
importer (`checkpoints.load_reference_generator`) speaks the reference's names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from maskcycle.config import TrialConfig
from maskcycle.models.losses import cycle_loss, gan_loss, gradient_penalty
from maskcycle.models.networks import build_discriminator, build_generator
from maskcycle.models.optim import build_optimizer, build_scheduler
from maskcycle.models.pool import ImagePool

# Columns of losses.csv, in the reference's order, with our names (see module docstring):
# D_A judges A (reference D_B), G_AB's adversarial loss comes from D_B (reference G_A), and
# idt_AB = |G_AB(B) - B| (reference idt_A).
LOSS_NAMES = ("D_A", "G_AB", "cycle_A", "idt_AB", "D_B", "G_BA", "cycle_B", "idt_BA")
NETWORK_NAMES = ("G_AB", "G_BA", "D_A", "D_B")


@dataclasses.dataclass
class CycleGAN:
    """Everything a step changes: networks, optimisers, schedulers, pools, penalty RNG."""

    cfg: TrialConfig
    G_AB: nn.Module
    G_BA: nn.Module
    D_A: nn.Module
    D_B: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: object
    sched_D: object
    pool_A: ImagePool  # history of fake A for D_A
    pool_B: ImagePool  # history of fake B for D_B
    gp_rng: torch.Generator

    def networks(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in NETWORK_NAMES}

    def state_dict(self) -> dict:
        """All state needed to continue exactly (tensors, numbers and strings only)."""
        state = {name: net.state_dict() for name, net in self.networks().items()}
        state.update(
            opt_G=self.opt_G.state_dict(), opt_D=self.opt_D.state_dict(),
            sched_G=self.sched_G.state_dict(), sched_D=self.sched_D.state_dict(),
            pool_A=self.pool_A.state_dict(), pool_B=self.pool_B.state_dict(),
            gp_rng=self.gp_rng.get_state(),
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        device = next(self.G_AB.parameters()).device
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"])
        self.sched_D.load_state_dict(state["sched_D"])
        self.pool_A.load_state_dict(state["pool_A"], device)
        self.pool_B.load_state_dict(state["pool_B"], device)
        self.gp_rng.set_state(state["gp_rng"])


def build_cyclegan(cfg: TrialConfig, device: torch.device | str = "cpu") -> CycleGAN:
    """Fresh networks (seeded by cfg.seed), one optimiser for both G and one for both D."""
    init_rng = torch.Generator().manual_seed(cfg.seed)
    G_AB, G_BA = (build_generator(cfg, init_rng).to(device) for _ in range(2))
    D_A, D_B = (build_discriminator(cfg, init_rng).to(device) for _ in range(2))
    opt_G = build_optimizer(itertools.chain(G_AB.parameters(), G_BA.parameters()), cfg)
    opt_D = build_optimizer(itertools.chain(D_A.parameters(), D_B.parameters()), cfg)
    return CycleGAN(
        cfg, G_AB, G_BA, D_A, D_B, opt_G, opt_D,
        build_scheduler(opt_G, cfg), build_scheduler(opt_D, cfg),
        ImagePool(cfg.pool_size, seed=cfg.seed + 1), ImagePool(cfg.pool_size, seed=cfg.seed + 2),
        torch.Generator().manual_seed(cfg.seed + 3),
    )


def autocast(cfg: TrialConfig, device: torch.device):
    """bf16 autocast when asked for; fp32 (no autocast) is the exactness reference."""
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _discriminator_loss(m: CycleGAN, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    cfg = m.cfg
    loss = 0.5 * (gan_loss(netD(real), True, cfg.gan_mode) + gan_loss(netD(fake.detach()), False, cfg.gan_mode))
    if cfg.gan_mode == "wgangp" and cfg.lambda_gp > 0:
        loss = loss + cfg.lambda_gp * gradient_penalty(netD, real, fake.detach(), m.gp_rng)
    return loss


def train_step(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration: G_AB and G_BA step with both D frozen, then D_A and D_B step on real vs
    pooled fakes. Returns the eight detached losses (on the device; no host sync)."""
    cfg = m.cfg
    amp = autocast(cfg, real_A.device)
    with amp:
        fake_B = m.G_AB(real_A)
        rec_A = m.G_BA(fake_B)
        fake_A = m.G_BA(real_B)
        rec_B = m.G_AB(fake_A)

    _set_requires_grad((m.D_A, m.D_B), False)
    m.opt_G.zero_grad(set_to_none=True)
    with amp:
        if cfg.lambda_identity > 0:
            idt_AB = F.l1_loss(m.G_AB(real_B), real_B) * cfg.lambda_B * cfg.lambda_identity
            idt_BA = F.l1_loss(m.G_BA(real_A), real_A) * cfg.lambda_A * cfg.lambda_identity
        else:
            idt_AB = idt_BA = real_A.new_zeros(())
        adv_AB = gan_loss(m.D_B(fake_B), True, cfg.gan_mode)
        adv_BA = gan_loss(m.D_A(fake_A), True, cfg.gan_mode)
        cyc_A = cycle_loss(rec_A, real_A, cfg.cycle_loss) * cfg.lambda_A
        cyc_B = cycle_loss(rec_B, real_B, cfg.cycle_loss) * cfg.lambda_B
        loss_G = adv_AB + adv_BA + cyc_A + cyc_B + idt_AB + idt_BA
    loss_G.backward()
    m.opt_G.step()

    _set_requires_grad((m.D_A, m.D_B), True)
    m.opt_D.zero_grad(set_to_none=True)
    # The reference queries the pool of fake B (for its D_A, our D_B) first.
    pooled_B = m.pool_B.query(fake_B)
    pooled_A = m.pool_A.query(fake_A)
    with amp:
        loss_D_B = _discriminator_loss(m, m.D_B, real_B, pooled_B)
    loss_D_B.backward()
    with amp:
        loss_D_A = _discriminator_loss(m, m.D_A, real_A, pooled_A)
    loss_D_A.backward()
    m.opt_D.step()

    values = dict(D_A=loss_D_A, G_AB=adv_AB, cycle_A=cyc_A, idt_AB=idt_AB,
                  D_B=loss_D_B, G_BA=adv_BA, cycle_B=cyc_B, idt_BA=idt_BA)
    return {k: v.detach().float() for k, v in values.items()}


@torch.no_grad()
def translate_batch(G: nn.Module, images: torch.Tensor, cfg: TrialConfig | None = None) -> torch.Tensor:
    """G(images) in eval mode (batch norm uses running stats), restoring the mode after."""
    was_training = G.training
    G.eval()
    try:
        ctx = autocast(cfg, images.device) if cfg is not None else contextlib.nullcontext()
        with ctx:
            return G(images).float()
    finally:
        G.train(was_training)
