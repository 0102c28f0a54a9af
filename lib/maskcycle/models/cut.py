"""CUT and FastCUT (Park et al., ECCV 2020; taesungp/contrastive-unpaired-translation): one
generator, one PatchGAN D, and a PatchNCE loss between input and output patches instead of a cycle.

One direction per trial (`cfg.direction`): AB learns G_AB (src = A, tgt = B), BA learns G_BA.
The step follows the reference `CUTModel.optimize_parameters`: G(src) (and G(tgt) for the identity
NCE term, in the same batch), optionally all flipped (FastCUT's flip-equivariance; the query
features are flipped back); D steps on real tgt vs G(src) (no image pool); then G and the MLP head
step on lambda_GAN * GAN + NCE, NCE = mean over nce_layers of lambda_NCE * PatchNCE(G's features
of the output, of the input), averaged with the identity term when nce_idt.

Where we differ, on purpose: the head is created inside the first step from that batch's feature
shapes (the reference runs an extra throw-away forward/backward for that); its optimiser joins
G's learning-rate schedule where G's stands; patch positions and flips come from the model's own
seeded generators (saved, so resume is exact) instead of the global RNG; the key features are
computed without a graph (the reference builds one and detaches it: same values, less memory).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from maskcycle.config import FamilySettings, TrialConfig
from maskcycle.models.losses import gan_loss, patch_nce_loss
from maskcycle.models.networks import PatchSampleMLP, build_discriminator, build_generator, init_weights
from maskcycle.models.optim import build_optimizer, build_scheduler
from maskcycle.models.runtime import (
    autocast,
    fused_default,
    prepare_network,
    set_requires_grad,
    stream,
    stream_seed,
    to_layout,
)

LOSS_NAMES = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")  # the reference's, in its order
G_LOSS_TERMS = ("G",)  # G = G_GAN + NCE (or the mean of NCE and NCE_Y with nce_idt)
NEEDS_PAIRS = False
# The fields only CUT and FastCUT read (TrialConfig declares them, this family gives them meaning):
# lambda_GAN, lambda_NCE, nce_idt, flip_equivariance, nce_layers, num_patches, nce_T, netF_nc,
# no_antialias, no_antialias_up. Three default to None, "the CUT_mode's value" (reference cut_model.py).
CUT_MODE = {"lambda_NCE": 1.0, "nce_idt": True, "flip_equivariance": False}  # FastCUT's: models/fastcut.py


def check_settings(cfg: TrialConfig, bad) -> None:
    """What CUT and FastCUT need beyond the shared checks."""
    if not cfg.netG.startswith("resnet_"):
        bad("netG", f"must be a ResNet generator for {cfg.model} (PatchNCE reads its encoder layers)")
    if cfg.nproc * cfg.nnodes > 1:
        bad("nproc", f"must be 1 for {cfg.model}: its lazily built NCE head is not wrapped for DDP")


SETTINGS = FamilySettings(presets=CUT_MODE, check=check_settings)


@dataclasses.dataclass
class CUT:
    """Everything a step changes. F (the MLP head), opt_F and sched_F exist after the first step."""

    cfg: TrialConfig
    G: nn.Module
    D: nn.Module
    F: PatchSampleMLP
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    opt_F: torch.optim.Optimizer | None
    sched_G: object
    sched_D: object
    sched_F: object | None
    nce_rng: torch.Generator  # patch positions
    flip_rng: torch.Generator  # FastCUT's flips
    fused: bool

    @property
    def G_AB(self) -> nn.Module | None:
        return self.G if self.cfg.direction == "AB" else None

    @property
    def G_BA(self) -> nn.Module | None:
        return self.G if self.cfg.direction == "BA" else None

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "F": self.F}

    def schedulers(self) -> list:
        return [s for s in (self.sched_G, self.sched_D, self.sched_F) if s is not None]

    def state_dict(self) -> dict:
        """All state to continue exactly; the generator under G_AB or G_BA, as checkpoints read it."""
        head = bool(self.F.created)
        return {f"G_{self.cfg.direction}": self.G.state_dict(), "D": self.D.state_dict(),
                "F_in_channels": list(self.F.in_channels), "F": self.F.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "opt_F": self.opt_F.state_dict() if head else {},
                "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
                "sched_F": self.sched_F.state_dict() if head else {}, **self.rank_state()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state[f"G_{self.cfg.direction}"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"])
        self.sched_D.load_state_dict(state["sched_D"])
        if state["F_in_channels"]:
            _create_head(self, list(state["F_in_channels"]))
            self.F.load_state_dict(state["F"])
            self.opt_F.load_state_dict(state["opt_F"])
            self.sched_F.load_state_dict(state["sched_F"])
        self.load_rank_state(state)

    def rank_state(self) -> dict:
        return {"nce_rng": self.nce_rng.get_state(), "flip_rng": self.flip_rng.get_state()}

    def load_rank_state(self, state: dict) -> None:
        self.nce_rng.set_state(state["nce_rng"])
        self.flip_rng.set_state(state["flip_rng"])


def build(cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None) -> CUT:
    """Fresh G and D (seeded by cfg.seed; anti-aliased unless no_antialias), an empty head."""
    fused = fused_default(cfg, fused)
    init_rng = torch.Generator().manual_seed(cfg.seed)
    G = prepare_network(build_generator(cfg, init_rng), cfg, device)
    D = prepare_network(build_discriminator(cfg, init_rng), cfg, device)
    opt_G, opt_D = build_optimizer(G.parameters(), cfg, fused), build_optimizer(D.parameters(), cfg, fused)
    return CUT(cfg, G, D, PatchSampleMLP(cfg.netF_nc).to(device), opt_G, opt_D, None,
               build_scheduler(opt_G, cfg), build_scheduler(opt_D, cfg), None,
               stream(cfg.seed, "nce_patches"), stream(cfg.seed, "flips"), fused)


def generator(cfg: TrialConfig) -> nn.Module:
    return build_generator(cfg)


def loss_names(cfg: TrialConfig) -> tuple[str, ...]:
    return LOSS_NAMES


def g_loss_terms(cfg: TrialConfig) -> tuple[str, ...]:
    return G_LOSS_TERMS


def schedulers(m: CUT) -> list:
    return m.schedulers()


def networks(m: CUT) -> dict[str, nn.Module]:
    return m.networks()


def seed_rank_streams(m: CUT, rank: int) -> None:
    m.nce_rng.manual_seed(stream_seed(m.cfg.seed, "nce_patches", rank))
    m.flip_rng.manual_seed(stream_seed(m.cfg.seed, "flips", rank))


def _create_head(m: CUT, in_channels: list[int]) -> None:
    """Build the MLP head for these channel counts (weights seeded by cfg.seed), its optimiser,
    and its scheduler at the point of G's schedule (so all three keep one learning rate)."""
    cfg = m.cfg
    device = next(m.G.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, "nce_head"))
        m.F.create(in_channels)
        init_weights(m.F, cfg.init_type, cfg.init_gain)
    m.F.to(device)
    m.opt_F = build_optimizer(m.F.parameters(), cfg, m.fused)
    m.sched_F = build_scheduler(m.opt_F, cfg)
    m.sched_F.load_state_dict(m.sched_G.state_dict())
    for group in m.opt_F.param_groups:
        group["lr"] = m.opt_G.param_groups[0]["lr"]


def nce_loss(m: CUT, src: torch.Tensor, out: torch.Tensor, flipped: bool) -> torch.Tensor:
    """Mean over nce_layers of lambda_NCE * PatchNCE(features of G's output `out`, features of
    its input `src`); creates the head on first use."""
    cfg, layers = m.cfg, m.cfg.nce_layer_ids
    feat_q = m.G.features(out, layers)
    if flipped:
        feat_q = [torch.flip(f, [3]) for f in feat_q]
    with torch.no_grad():  # keys are detached in the loss anyway
        feat_k = m.G.features(src, layers)
    if not m.F.created:
        _create_head(m, [f.shape[1] for f in feat_k])
    pool_k, ids = m.F(feat_k, cfg.num_patches, None, m.nce_rng)
    pool_q, _ = m.F(feat_q, cfg.num_patches, ids)
    total = sum(patch_nce_loss(q, k.detach(), src.shape[0], cfg.nce_T).mean() * cfg.lambda_NCE
                for q, k in zip(pool_q, pool_k))
    return total / len(layers)


def train_step(m: CUT, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration, D first then G and the head (the reference order). Detached losses, no host sync."""
    cfg = m.cfg
    src, tgt = (real_A, real_B) if cfg.direction == "AB" else (real_B, real_A)
    src, tgt = to_layout(src, cfg), to_layout(tgt, cfg)
    amp, n = autocast(cfg, src.device), src.shape[0]
    real = torch.cat((src, tgt)) if cfg.nce_idt else src
    flipped = bool(cfg.flip_equivariance and torch.rand((), generator=m.flip_rng) < 0.5)
    if flipped:
        real = torch.flip(real, [3])
    with amp:
        fake = m.G(real)
    fake_tgt, idt_tgt = fake[:n], fake[n:]

    set_requires_grad((m.D,), True)
    m.opt_D.zero_grad(set_to_none=True)
    with amp:
        loss_D_fake = gan_loss(m.D(fake_tgt.detach()), False, cfg.gan_mode)
        loss_D_real = gan_loss(m.D(tgt), True, cfg.gan_mode)
        loss_D = 0.5 * (loss_D_fake + loss_D_real)
    loss_D.backward()
    m.opt_D.step()

    set_requires_grad((m.D,), False)
    m.opt_G.zero_grad(set_to_none=True)
    if m.opt_F is not None:
        m.opt_F.zero_grad(set_to_none=True)
    zero = src.new_zeros(())
    with amp:
        loss_G_GAN = gan_loss(m.D(fake_tgt), True, cfg.gan_mode) * cfg.lambda_GAN if cfg.lambda_GAN > 0 else zero
        nce = nce_loss(m, src, fake_tgt, flipped) if cfg.lambda_NCE > 0 else zero
        nce_y = nce_loss(m, tgt, idt_tgt, flipped) if cfg.nce_idt and cfg.lambda_NCE > 0 else zero
        loss_G = loss_G_GAN + ((nce + nce_y) * 0.5 if cfg.nce_idt and cfg.lambda_NCE > 0 else nce)
    loss_G.backward()
    m.opt_G.step()
    if m.opt_F is not None:
        m.opt_F.step()
    values = dict(G_GAN=loss_G_GAN, D_real=loss_D_real, D_fake=loss_D_fake, G=loss_G, NCE=nce, NCE_Y=nce_y)
    return {k: values[k].detach().float() for k in LOSS_NAMES}
