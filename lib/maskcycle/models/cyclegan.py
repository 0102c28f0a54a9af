"""The CycleGAN training state and one optimisation step, in the reference order.

Naming (ours): G_AB puts a mask on (A->B), G_BA takes it off; D_A judges real vs fake A, D_B real
vs fake B. The reference calls G_AB "G_A" and lets its "D_A" judge domain B; only the checkpoint
importer (`checkpoints.load_reference_generator`) speaks the reference's names.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator

import torch
import torch.nn.functional as F
from torch import nn

from maskcycle.config import FamilySettings, TrialConfig
from maskcycle.models.execution import require_resolved
from maskcycle.models.losses import cycle_loss, gan_loss, gradient_penalty
from maskcycle.models.networks import build_discriminator, build_generator
from maskcycle.models.optim import build_optimizer, build_scheduler
from maskcycle.models.pool import ImagePool
from maskcycle.models.runtime import (
    autocast,
    fused_default,
    prepare_network,
    set_requires_grad,
    stream,
    stream_seed,
    to_layout,
)

# Columns of losses.csv, in the reference's order, with our names (see module docstring):
# D_A judges A (reference D_B), G_AB's adversarial loss comes from D_B (reference G_A), and
# idt_AB = |G_AB(B) - B| (reference idt_A).
LOSS_NAMES = ("D_A", "G_AB", "cycle_A", "idt_AB", "D_B", "G_BA", "cycle_B", "idt_BA")
G_LOSS_TERMS = ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_AB", "idt_BA")
NETWORK_NAMES = ("G_AB", "G_BA", "D_A", "D_B")
SETTINGS = FamilySettings(two_way=True)  # every CycleGAN field is a shared one
NEEDS_PAIRS = False


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
            **self.rank_state(),
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.networks().items():
            net.load_state_dict(state[name])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"])
        self.sched_D.load_state_dict(state["sched_D"])
        self.load_rank_state(state)

    def rank_state(self) -> dict:
        """The state each DDP process keeps for itself: image pools and gradient-penalty RNG."""
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict(),
                "gp_rng": self.gp_rng.get_state()}

    def load_rank_state(self, state: dict) -> None:
        device = next(self.G_AB.parameters()).device
        self.pool_A.load_state_dict(state["pool_A"], device)
        self.pool_B.load_state_dict(state["pool_B"], device)
        self.gp_rng.set_state(state["gp_rng"])


def build(cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None) -> CycleGAN:
    """Fresh networks (seeded by cfg.seed), one optimiser for both G and one for both D.
    `fused` (default: on unless the path is plain) picks the fused optimiser step."""
    fused = fused_default(cfg, fused)
    init_rng = torch.Generator().manual_seed(cfg.seed)
    G_AB, G_BA = (prepare_network(build_generator(cfg, init_rng), cfg, device) for _ in range(2))
    D_A, D_B = (prepare_network(build_discriminator(cfg, init_rng), cfg, device) for _ in range(2))
    opt_G = build_optimizer(itertools.chain(G_AB.parameters(), G_BA.parameters()), cfg, fused)
    opt_D = build_optimizer(itertools.chain(D_A.parameters(), D_B.parameters()), cfg, fused)
    return CycleGAN(
        cfg, G_AB, G_BA, D_A, D_B, opt_G, opt_D,
        build_scheduler(opt_G, cfg), build_scheduler(opt_D, cfg),
        ImagePool(cfg.pool_size, seed=stream_seed(cfg.seed, "pool_A")),
        ImagePool(cfg.pool_size, seed=stream_seed(cfg.seed, "pool_B")), stream(cfg.seed, "gp"),
    )


def generator(cfg: TrialConfig) -> nn.Module:
    return build_generator(cfg)


def schedulers(m: CycleGAN) -> list:
    return [m.sched_G, m.sched_D]


def networks(m: CycleGAN) -> dict[str, nn.Module]:
    return m.networks()


def seed_rank_streams(m: CycleGAN, rank: int) -> None:
    """Each DDP rank keeps its own pools and gradient-penalty stream."""
    m.pool_A.rng.manual_seed(stream_seed(m.cfg.seed, "pool_A", rank))
    m.pool_B.rng.manual_seed(stream_seed(m.cfg.seed, "pool_B", rank))
    m.gp_rng.manual_seed(stream_seed(m.cfg.seed, "gp", rank))


def uses_batched_passes(cfg: TrialConfig) -> bool:
    """Whether the step concatenates passes (`batched_passes`): only where every norm is
    per-sample. Batch norm's statistics would mix the concatenated images, so it keeps the
    separate passes. (With `use_dropout` the batched call draws its dropout masks in another
    order: same distribution, other numbers.)"""
    require_resolved(cfg)
    return cfg.batched_passes and cfg.norm != "batch"


def _cat(tensors, cfg: TrialConfig) -> torch.Tensor:
    # cat keeps channels_last when every part has it; to_layout makes sure (a no-op then)
    return to_layout(torch.cat(tensors), cfg)


def _discriminator_loss(m: CycleGAN, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """0.5 x (GAN(D(real), real) + GAN(D(fake), fake)). Batched: one D call on [real; fake],
    each loss still a mean over its own part of the prediction (not one mean over both)."""
    cfg = m.cfg
    fake = fake.detach()
    if uses_batched_passes(cfg):
        pred = netD(_cat([real, fake], cfg))
        pred_real, pred_fake = pred[:len(real)], pred[len(real):]
    else:
        pred_real, pred_fake = netD(real), netD(fake)
    loss = 0.5 * (gan_loss(pred_real, True, cfg.gan_mode) + gan_loss(pred_fake, False, cfg.gan_mode))
    if cfg.gan_mode == "wgangp" and cfg.lambda_gp > 0:  # the penalty keeps its own pass
        loss = loss + cfg.lambda_gp * gradient_penalty(netD, real, fake, m.gp_rng)
    return loss


def _separate_passes(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool):
    """The reference's four cycle calls; its two identity calls come later (`_identity_passes`)."""
    fake_B = m.G_AB(real_A)
    rec_A = m.G_BA(fake_B)
    fake_A = m.G_BA(real_B)
    rec_B = m.G_AB(fake_A)
    return fake_B, rec_A, fake_A, rec_B, None, None


def _identity_passes(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor):
    """G_AB(B) and G_BA(A), in the reference's place: after the D are frozen, in an autocast region
    of their own. Under bf16 that region casts the weights afresh, so their gradients reach fp32
    separately from the cycle calls'; moving these calls changes the bf16 numbers (not fp32's)."""
    return m.G_AB(real_B), m.G_BA(real_A)


def _batched_passes(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor, identity: bool):
    """The same six outputs from three calls: G_AB on [A; B], G_BA on [fake_B; B; A], G_AB on
    fake_A (it needs G_BA's output). Per-sample norms make each part equal to its own call."""
    cfg, n = m.cfg, len(real_A)
    out = m.G_AB(_cat([real_A, real_B], cfg) if identity else real_A)
    fake_B, idt_B = out[:n], (out[n:] if identity else None)
    out = m.G_BA(_cat([fake_B, real_B, real_A] if identity else [fake_B, real_B], cfg))
    rec_A, fake_A, idt_A = out[:n], out[n:2 * n], (out[2 * n:] if identity else None)
    rec_B = m.G_AB(fake_A)
    return fake_B, rec_A, fake_A, rec_B, idt_B, idt_A


@dataclasses.dataclass
class Passes:
    """What the generator passes of one step produced (idt_* None without the identity loss)."""

    real_A: torch.Tensor
    real_B: torch.Tensor
    fake_A: torch.Tensor
    fake_B: torch.Tensor
    rec_A: torch.Tensor
    rec_B: torch.Tensor
    idt_A: torch.Tensor | None  # G_BA(A)
    idt_B: torch.Tensor | None  # G_AB(B)


def adversarial_AB(m: CycleGAN, p: Passes) -> torch.Tensor:
    return gan_loss(m.D_B(p.fake_B), True, m.cfg.gan_mode)


def adversarial_BA(m: CycleGAN, p: Passes) -> torch.Tensor:
    return gan_loss(m.D_A(p.fake_A), True, m.cfg.gan_mode)


def cycle_A(m: CycleGAN, p: Passes) -> torch.Tensor:
    return cycle_loss(p.rec_A, p.real_A, m.cfg.cycle_loss) * m.cfg.lambda_A


def cycle_B(m: CycleGAN, p: Passes) -> torch.Tensor:
    return cycle_loss(p.rec_B, p.real_B, m.cfg.cycle_loss) * m.cfg.lambda_B


def identity_AB(m: CycleGAN, p: Passes) -> torch.Tensor:
    """|G_AB(B) - B|, weighted as the reference weights its idt_A."""
    if p.idt_B is None:
        return p.real_A.new_zeros(())
    return F.l1_loss(p.idt_B, p.real_B) * m.cfg.lambda_B * m.cfg.lambda_identity


def identity_BA(m: CycleGAN, p: Passes) -> torch.Tensor:
    if p.idt_A is None:
        return p.real_A.new_zeros(())
    return F.l1_loss(p.idt_A, p.real_A) * m.cfg.lambda_A * m.cfg.lambda_identity


# The generator loss terms, name -> function(model, passes) -> weighted loss, computed in this order
# (the reference's: it fixes the order autograd accumulates gradients in). A new term is one function
# and one line here; it is summed after the others and logged as the last column of losses.csv.
G_TERMS = {"idt_AB": identity_AB, "idt_BA": identity_BA, "G_AB": adversarial_AB, "G_BA": adversarial_BA,
           "cycle_A": cycle_A, "cycle_B": cycle_B}


def loss_names(cfg: TrialConfig) -> tuple[str, ...]:
    """The columns of losses.csv: the reference's eight, then any added term."""
    return LOSS_NAMES + tuple(k for k in G_TERMS if k not in LOSS_NAMES)


def g_loss_terms(cfg: TrialConfig) -> tuple[str, ...]:
    """The terms in the order they are summed (the reference's, then any added term)."""
    return G_LOSS_TERMS + tuple(k for k in G_TERMS if k not in G_LOSS_TERMS)


def generator_loss(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor):
    """The generators' forward and loss, with both D frozen: (loss_G, its parts, (fake_A,
    fake_B)). Split out of `train_step` so tests can compare gradients of the paths."""
    cfg = m.cfg
    amp = autocast(cfg, real_A.device)
    real_A, real_B = to_layout(real_A, cfg), to_layout(real_B, cfg)
    identity = cfg.lambda_identity > 0
    passes = _batched_passes if uses_batched_passes(cfg) else _separate_passes
    with amp:
        fake_B, rec_A, fake_A, rec_B, idt_B, idt_A = passes(m, real_A, real_B, identity)

    set_requires_grad((m.D_A, m.D_B), False)
    with amp:
        if identity and idt_B is None:
            idt_B, idt_A = _identity_passes(m, real_A, real_B)
        p = Passes(real_A, real_B, fake_A, fake_B, rec_A, rec_B, idt_A, idt_B)
        parts = {name: term(m, p) for name, term in G_TERMS.items()}
        loss_G = functools.reduce(operator.add, (parts[k] for k in g_loss_terms(cfg)))
    return loss_G, parts, (fake_A, fake_B)


def train_step(m: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration: G_AB and G_BA step with both D frozen, then D_A and D_B step on real vs
    pooled fakes. Returns the eight detached losses (on the device; no host sync)."""
    cfg = m.cfg
    if cfg.compile and cfg.compile_mode == "reduce-overhead" and real_A.is_cuda:
        # a new step: CUDA-graph outputs of the last one may be overwritten (nothing keeps them)
        torch.compiler.cudagraph_mark_step_begin()
    amp = autocast(cfg, real_A.device)
    real_A, real_B = to_layout(real_A, cfg), to_layout(real_B, cfg)
    m.opt_G.zero_grad(set_to_none=True)
    loss_G, parts, (fake_A, fake_B) = generator_loss(m, real_A, real_B)
    loss_G.backward()
    m.opt_G.step()

    set_requires_grad((m.D_A, m.D_B), True)
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

    values = dict(D_A=loss_D_A, D_B=loss_D_B, **parts)
    return {k: values[k].detach().float() for k in loss_names(cfg)}
