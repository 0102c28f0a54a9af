"""The list of per-direction metrics: a metric is one function (fakes, reals, pairs) -> {name: number},
and adding one is that function plus one line in METRICS (or `METRICS.append` from a plugin module,
see models.families.PLUGINS_ENV).

Evaluation scores every entry for every direction a trial learns, at every scored checkpoint, and
names its columns `column(name, direction)` (psnr_mask -> psnr_AB_mask); they reach
`<trial>/eval/metrics.json`, `summary.csv` (maskcycle.results) and notebook 03's table, none of which
lists metric names. FID/KID (one feature extractor shared by every trial) and the face metrics (final
checkpoint only, ~0.1 s an image) keep their own steps in evaluate.py; the paired means are computed
with the per-pair rows they summarise (evaluate.paired_rows).

    fakes  uint8 N x H x W x 3: G_AB(test A) for AB, G_BA(test B) for BA
    reals  uint8 M x H x W x 3: the real test images of the target domain (B for AB, A for BA)
    pairs  list of (fake, truth, region): a fake with its true counterpart and the mask region
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]  # (fake, truth, mask region)
Metric = Callable[[np.ndarray, np.ndarray, list[Pair]], dict[str, float | None]]

METRICS: list[Metric] = []


def column(name: str, direction: str) -> str:
    """Column of a metric's number for a direction: psnr -> psnr_BA, ssim_mask -> ssim_BA_mask,
    KID_std -> KID_BA_std; mask_fraction and n_pairs keep their words together (mask_fraction_BA)."""
    if name in ("mask_fraction", "n_pairs"):
        return f"{name}_{direction}"
    metric, _, part = name.partition("_")
    return f"{metric}_{direction}" + (f"_{part}" if part else "")


def score(fakes: dict[str, np.ndarray | None], reals: dict[str, np.ndarray],
          pairs: dict[str, list[Pair]]) -> dict[str, float | None]:
    """Every metric of METRICS for every direction with fakes (keyed "AB"/"BA")."""
    out: dict[str, float | None] = {}
    for metric in METRICS:
        for direction, f in fakes.items():
            if f is not None:
                out.update({column(k, direction): v for k, v in metric(f, reals[direction], pairs[direction]).items()})
    return out
