"""Which module trains a trial: `cfg.model` -> cyclegan, cut (CUT and FastCUT) or pix2pix.

Every family module has the same interface: `build(cfg, device, fused=None)` -> a model object
with `G_AB` / `G_BA` (None for a direction it does not learn), `opt_G`, `state_dict()`,
`load_state_dict()`, `rank_state()`, `load_rank_state()`; `train_step(m, real_A, real_B)` -> the
detached losses named `LOSS_NAMES`; `G_LOSS_TERMS`, the losses that sum to the generator loss.
"""

from __future__ import annotations

from types import ModuleType

import torch

from maskcycle.config import TrialConfig
from maskcycle.models import cut, cyclegan, pix2pix

_MODULES = {"cyclegan": cyclegan, "cut": cut, "fastcut": cut, "pix2pix": pix2pix}
_CYCLEGAN_G_TERMS = ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_AB", "idt_BA")


def family(cfg: TrialConfig) -> ModuleType:
    return _MODULES[cfg.model]


def build_model(cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None):
    """A fresh model of the trial's family."""
    if cfg.model == "cyclegan":
        return cyclegan.build_cyclegan(cfg, device, fused)
    return family(cfg).build(cfg, device, fused)


def train_step(m, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration of m's family (m may be a DDP-wrapped copy: it keeps `cfg`)."""
    return family(m.cfg).train_step(m, real_A, real_B)


def loss_names(cfg: TrialConfig) -> tuple[str, ...]:
    return family(cfg).LOSS_NAMES


def g_loss_terms(cfg: TrialConfig) -> tuple[str, ...]:
    return getattr(family(cfg), "G_LOSS_TERMS", _CYCLEGAN_G_TERMS)


def schedulers(m) -> list:
    """m's learning-rate schedulers, in the order they are stepped."""
    return m.schedulers() if hasattr(m, "schedulers") else [m.sched_G, m.sched_D]
