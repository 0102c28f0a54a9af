"""FastCUT (Park et al., ECCV 2020): CUT (models/cut.py) with the reference's FastCUT presets: lambda_NCE
10, no identity NCE term, flip-equivariance on."""

from __future__ import annotations

from maskcycle.config import FamilySettings
from maskcycle.models.cut import (
    NEEDS_PAIRS,
    build,
    check_settings,
    g_loss_terms,
    generator,
    loss_names,
    networks,
    schedulers,
    seed_rank_streams,
    train_step,
)

FASTCUT_MODE = {"lambda_NCE": 10.0, "nce_idt": False, "flip_equivariance": True}  # reference CUT_mode FastCUT
SETTINGS = FamilySettings(presets=FASTCUT_MODE, check=check_settings)

__all__ = ["NEEDS_PAIRS", "SETTINGS", "build", "g_loss_terms", "generator", "loss_names", "networks",
           "schedulers", "seed_rank_streams", "train_step"]
