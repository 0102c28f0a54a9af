"""pix2pix (Isola et al., CVPR 2017), the paired oracle: a generator (the reference's unet_256)
trained on pairs with a conditional PatchGAN that judges (input, output) concatenated, vanilla
GAN + lambda_L1 * L1 to the true counterpart.

One direction per trial (`cfg.direction`): AB maps unmasked -> masked (src = A), BA the reverse.
Batches come from the curated pair list (maskcycle.data.paired). The step follows the reference
`Pix2PixModel.optimize_parameters`: G(src); D on pool((src, fake)) vs (src, tgt), 0.5 x the sum;
then G on GAN((src, fake), real) + lambda_L1 * |fake - tgt|. The reference's defaults that are
shared TrialConfig fields (unet_256, batch norm, vanilla, pool 0, dropout) are set in its params
YAMLs. Dropout draws from the global RNG; G's forward runs on the model's own RNG state instead
(swapped in and out around it, saved with the model), so runs repeat and resume exactly.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from maskcycle.config import FamilySettings, TrialConfig
from maskcycle.models.losses import gan_loss
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

LOSS_NAMES = ("G_GAN", "G_L1", "D_real", "D_fake")  # the reference's, in its order
G_LOSS_TERMS = ("G_GAN", "G_L1")
NEEDS_PAIRS = True
SETTINGS = FamilySettings()  # its one own field: lambda_L1


@dataclasses.dataclass
class Pix2Pix:
    """Everything a step changes: networks, optimisers, schedulers, the pool of fake pairs."""

    cfg: TrialConfig
    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: object
    sched_D: object
    pool: ImagePool  # of (input, fake) pairs, 6 channels; size 0 in the reference
    rng_cpu: torch.Tensor  # the RNG state G's dropout draws from (CPU generator format)
    rng_cuda: torch.Tensor | None = None  # on a GPU: the CUDA generator's (set on first use)

    @property
    def G_AB(self) -> nn.Module | None:
        return self.G if self.cfg.direction == "AB" else None

    @property
    def G_BA(self) -> nn.Module | None:
        return self.G if self.cfg.direction == "BA" else None

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def schedulers(self) -> list:
        return [self.sched_G, self.sched_D]

    def state_dict(self) -> dict:
        return {f"G_{self.cfg.direction}": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(), **self.rank_state()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state[f"G_{self.cfg.direction}"])
        self.D.load_state_dict(state["D"])
        for name in ("opt_G", "opt_D", "sched_G", "sched_D"):
            getattr(self, name).load_state_dict(state[name])
        self.load_rank_state(state)

    def rank_state(self) -> dict:
        """Per process: the pool and the dropout RNG state(s)."""
        state = {"pool": self.pool.state_dict(), "rng_cpu": self.rng_cpu}
        return state | ({"rng_cuda": self.rng_cuda} if self.rng_cuda is not None else {})

    def load_rank_state(self, state: dict) -> None:
        self.pool.load_state_dict(state["pool"], next(self.G.parameters()).device)
        self.rng_cpu = state["rng_cpu"]
        self.rng_cuda = state.get("rng_cuda")


def build(cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None) -> Pix2Pix:
    """Fresh G and the 6-channel conditional D (seeded by cfg.seed), one Adam each."""
    fused = fused_default(cfg, fused)
    init_rng = torch.Generator().manual_seed(cfg.seed)
    G = prepare_network(build_generator(cfg, init_rng), cfg, device)
    D = prepare_network(build_discriminator(cfg, init_rng), cfg, device)
    opt_G, opt_D = build_optimizer(G.parameters(), cfg, fused), build_optimizer(D.parameters(), cfg, fused)
    return Pix2Pix(cfg, G, D, opt_G, opt_D, build_scheduler(opt_G, cfg), build_scheduler(opt_D, cfg),
                   ImagePool(cfg.pool_size, seed=stream_seed(cfg.seed, "pool_A")),
                   stream(cfg.seed, "dropout").get_state())


def generator(cfg: TrialConfig) -> nn.Module:
    return build_generator(cfg)


def loss_names(cfg: TrialConfig) -> tuple[str, ...]:
    return LOSS_NAMES


def g_loss_terms(cfg: TrialConfig) -> tuple[str, ...]:
    return G_LOSS_TERMS


def schedulers(m: Pix2Pix) -> list:
    return m.schedulers()


def networks(m: Pix2Pix) -> dict[str, nn.Module]:
    return m.networks()


def seed_rank_streams(m: Pix2Pix, rank: int) -> None:
    """Each DDP rank keeps its own pool and dropout stream."""
    m.pool.rng.manual_seed(stream_seed(m.cfg.seed, "pool_A", rank))
    m.rng_cpu = stream(m.cfg.seed, "dropout", rank).get_state()


def _generate(m: Pix2Pix, src: torch.Tensor) -> torch.Tensor:
    """G(src) with dropout drawing from the model's RNG state, the global RNG left as it was."""
    cuda = src.device.type == "cuda"
    with torch.random.fork_rng(devices=[src.device] if cuda else []):
        torch.set_rng_state(m.rng_cpu)
        if cuda and m.rng_cuda is None:
            torch.cuda.manual_seed(stream_seed(m.cfg.seed, "dropout"))
        elif cuda:
            torch.cuda.set_rng_state(m.rng_cuda, src.device)
        fake = m.G(src)
        m.rng_cpu = torch.get_rng_state()
        if cuda:
            m.rng_cuda = torch.cuda.get_rng_state(src.device)
    return fake


def train_step(m: Pix2Pix, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration on a batch of pairs (real_A[i] and real_B[i] show one face), D then G."""
    cfg = m.cfg
    src, tgt = (real_A, real_B) if cfg.direction == "AB" else (real_B, real_A)
    src, tgt = to_layout(src, cfg), to_layout(tgt, cfg)
    amp = autocast(cfg, src.device)
    with amp:
        fake = _generate(m, src)

    set_requires_grad((m.D,), True)
    m.opt_D.zero_grad(set_to_none=True)
    fake_pair = m.pool.query(torch.cat((src, fake), 1))
    with amp:
        loss_D_fake = gan_loss(m.D(fake_pair.detach()), False, cfg.gan_mode)
        loss_D_real = gan_loss(m.D(torch.cat((src, tgt), 1)), True, cfg.gan_mode)
        loss_D = 0.5 * (loss_D_fake + loss_D_real)
    loss_D.backward()
    m.opt_D.step()

    set_requires_grad((m.D,), False)
    m.opt_G.zero_grad(set_to_none=True)
    with amp:
        loss_G_GAN = gan_loss(m.D(torch.cat((src, fake), 1)), True, cfg.gan_mode)
        loss_G_L1 = F.l1_loss(fake, tgt) * cfg.lambda_L1
        loss_G = loss_G_GAN + loss_G_L1
    loss_G.backward()
    m.opt_G.step()
    values = dict(G_GAN=loss_G_GAN, G_L1=loss_G_L1, D_real=loss_D_real, D_fake=loss_D_fake)
    return {k: values[k].detach().float() for k in LOSS_NAMES}
