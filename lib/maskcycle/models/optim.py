"""Optimisers and learning-rate schedules of a trial.

Linear policy (the reference `lambda_rule`): factor(c) = 1 - max(0, c + 1 - n_epochs) /
(n_epochs_decay + 1) where c is the scheduler's step counter. The study's copy of the reference
stepped the scheduler at the *start* of each epoch, so 1-based epoch e runs at factor(e) and the
last epoch at lr 0 (`lr_step_at: start`, the default). Today's upstream steps at the *end*, so
epoch e runs at factor(e - 1) (`lr_step_at: end`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch.optim import lr_scheduler

from maskcycle.config import TrialConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrialConfig,
                    fused: bool = False) -> torch.optim.Optimizer:
    """One optimiser over the given parameters (the reference chains both G or both D).

    `fused` (the fast path): one fused kernel per step (foreach for RMSprop, which has none);
    the same update rule, rounded differently from the plain per-tensor loop."""
    params = list(params)
    kw = {"fused": True} if fused else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **kw)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **kw)
    if cfg.optimizer == "rmsprop":
        kw = {"foreach": True} if fused else {}
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def linear_factor(counter: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The reference linear rule at scheduler counter `counter` (epoch_count = 1)."""
    return 1.0 - max(0, counter + 1 - n_epochs) / float(n_epochs_decay + 1)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrialConfig):
    """The reference schedulers; see the module docstring for when they are stepped."""
    if cfg.lr_policy == "linear":
        n, d = cfg.n_epochs, cfg.n_epochs_decay
        return lr_scheduler.LambdaLR(optimizer, lambda c: linear_factor(c, n, d))
    if cfg.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_iters, gamma=0.1)
    if cfg.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if cfg.lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.n_epochs, eta_min=0)
    raise ValueError(f"unknown lr_policy {cfg.lr_policy!r}")


def step_scheduler(scheduler, cfg: TrialConfig, epoch_loss_G: float | None) -> None:
    """One scheduler step. Plateau in the reference is fed a metric that is never updated (0);
    `plateau_metric: loss_G` feeds the mean generator loss of the last epoch instead."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        if cfg.plateau_metric == "reference":
            scheduler.step(0.0)
        elif epoch_loss_G is not None:  # nothing to judge before the first epoch
            scheduler.step(epoch_loss_G)
        return
    with warnings.catch_warnings():
        # stepping at epoch start (the study's order) precedes optimizer.step() on purpose
        warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
        scheduler.step()
