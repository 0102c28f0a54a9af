"""The model families and what each must provide: `Family` (the contract) and the registry.

A family is a module (cyclegan.py, cut.py, pix2pix.py) with the members `Family` names; adding
one is that file plus one `register(...)` line below (or in a test: see tests/test_add_one.py).
A non-learned family (template.py, inpaint.py, do_nothing.py) has the members `Baseline` names
and one `register_baseline(...)` line.
Trainer, DDP, evaluation, results and notebooks ask `family(cfg)`; none of them tests a model
name or an attribute. The runtime every family uses (precision, layout, freezing, random
streams) is models/runtime.py.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from maskcycle.config import FamilySettings, TrialConfig, register_family_settings


@runtime_checkable
class Model(Protocol):
    """What a family's `build` returns: the training state one step changes."""

    cfg: TrialConfig
    G_AB: nn.Module | None  # None for a direction the family does not learn
    G_BA: nn.Module | None
    opt_G: torch.optim.Optimizer  # its first group's lr is the one logged

    def state_dict(self) -> dict: ...  # everything to continue exactly (latest.pt)
    def load_state_dict(self, state: dict) -> None: ...
    def rank_state(self) -> dict: ...  # what each DDP process keeps for itself (pools, RNG)
    def load_rank_state(self, state: dict) -> None: ...


@runtime_checkable
class Family(Protocol):
    """The contract of a model family (a module, or any object with these members; checked on `register`)."""

    SETTINGS: FamilySettings  # directions, presets and value checks: its part of TrialConfig
    NEEDS_PAIRS: bool  # trains on curated pairs (data.paired_batches) instead of unpaired batches

    def loss_names(self, cfg: TrialConfig) -> tuple[str, ...]:
        """The losses train_step returns: the columns of losses.csv, in order."""

    def g_loss_terms(self, cfg: TrialConfig) -> tuple[str, ...]:
        """The losses that sum to the generator loss (the plateau schedule's loss_G)."""

    def build(self, cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None) -> Model:
        """A fresh model (seeded by cfg.seed; its random streams from runtime.stream)."""

    def generator(self, cfg: TrialConfig) -> nn.Module:
        """An untrained generator of the trial's architecture: what a saved G_AB / G_BA loads into."""

    def train_step(self, m: Model, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration; the detached losses named loss_names(cfg) (on the device, no host sync)."""

    def schedulers(self, m: Model) -> list:
        """m's learning-rate schedulers, in the order they are stepped."""

    def networks(self, m: Model) -> dict[str, nn.Module]:
        """The attributes of m that DDP wraps (each stepped through its DDP copy)."""

    def seed_rank_streams(self, m: Model, rank: int) -> None:
        """Reseed m's per-process random streams for DDP rank `rank` (> 0)."""


FAMILIES: dict[str, Family] = {}


def register(name: str, fam: Family | ModuleType) -> None:
    """Add a family under `name` (the value of `model`); checks it has every member of `Family`."""
    missing = [k for k in _members(Family) if not hasattr(fam, k)]
    if missing or not isinstance(fam, Family):
        raise TypeError(f"model family {name!r} lacks {', '.join(missing)} (see maskcycle.models.families.Family)")
    FAMILIES[name] = fam
    register_family_settings(name, fam.SETTINGS)


def _members(contract: type) -> list[str]:
    """The names a contract declares (its annotations and methods)."""
    methods = (k for k, v in vars(contract).items() if callable(v) and not k.startswith("_"))
    return sorted({*contract.__annotations__, *methods})


def family(cfg: TrialConfig | str) -> Family:
    """The family of a trial (or of a `model` name)."""
    return FAMILIES[cfg if isinstance(cfg, str) else cfg.model]


def build_model(cfg: TrialConfig, device: torch.device | str = "cpu", fused: bool | None = None) -> Model:
    return family(cfg).build(cfg, device, fused)


def train_step(m: Model, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
    """One iteration of m's family (m may be a DDP-wrapped copy: it keeps `cfg`)."""
    return family(m.cfg).train_step(m, real_A, real_B)


def _register_builtins() -> None:
    from maskcycle.models import cut, cyclegan, fastcut, pix2pix

    register("cyclegan", cyclegan)
    register("cut", cut)
    register("fastcut", fastcut)
    register("pix2pix", pix2pix)


@runtime_checkable
class Baseline(Protocol):
    """The contract of a non-learned family (template, inpaint, do_nothing): no training step, its
    trial is its settings; evaluation and `maskcycle translate --model` run it face by face."""

    SETTINGS: FamilySettings  # its `translates` directions (SETTINGS.trains is False)
    NEEDS_LANDMARKS: bool  # translate_face needs the crop's 68 landmarks (else it gets None)
    ACTS_IN_REGION: bool  # it changes only a region and returns its map (scored by mask IoU)

    def problem(self, lm: np.ndarray, shape: tuple[int, ...]) -> str | None:
        """Why a face with landmarks `lm`, found on a photo of `shape`, cannot be translated; None if it can."""

    def translate_face(self, cfg: TrialConfig, direction: str, crop: np.ndarray, lm: np.ndarray | None,
                       segmenter: Any, check_masked: bool) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """(output, float map of the changed pixels or None, why it was left as it was or None) for
        one aligned crop. `segmenter` is data/segment.py (models/ sits beside data/, so it is given)."""


BASELINES: dict[str, Baseline] = {}


def register_baseline(name: str, fam: Baseline | ModuleType) -> None:
    """Add a non-learned family under `name`; checks it has every member of `Baseline`."""
    missing = [k for k in _members(Baseline) if not hasattr(fam, k)]
    if missing or not isinstance(fam, Baseline):
        raise TypeError(f"baseline {name!r} lacks {', '.join(missing)} (see maskcycle.models.families.Baseline)")
    if fam.SETTINGS.trains:
        raise TypeError(f"baseline {name!r}: its SETTINGS must say trains=False")
    BASELINES[name] = fam
    register_family_settings(name, fam.SETTINGS)


def baseline(cfg: TrialConfig | str) -> Baseline:
    """The non-learned family of a trial (or of a `model` name)."""
    return BASELINES[cfg if isinstance(cfg, str) else cfg.model]


def _register_baselines() -> None:
    from maskcycle.models import do_nothing, inpaint, template

    register_baseline("template", template)
    register_baseline("inpaint", inpaint)
    register_baseline("do_nothing", do_nothing)


def _import_plugins() -> None:
    """Modules named in $MASKCYCLE_PLUGINS (comma-separated) register more families or metrics;
    set it once and every process of a run (sweep notebooks, torchrun workers) has them."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(name)


PLUGINS_ENV = "MASKCYCLE_PLUGINS"
_register_builtins()
_register_baselines()
_import_plugins()
