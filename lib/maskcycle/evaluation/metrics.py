"""The list of per-direction metrics (METRICS): what evaluation scores, what `summary.csv` carries,
what `comparison.csv` tests against the baseline and what notebook 03's tables show. Adding one is
its function plus one `Metric(...)` line in METRICS (or `METRICS.append` from a plugin module, see
models.families.PLUGINS_ENV).

A metric with `compute` is scored by evaluation for every direction a trial translates, at every
scored checkpoint: compute(fakes, reals, pairs) -> {name: number}, each name reaching
`<trial>/eval/metrics.json` and summary.csv as `column(name, direction)`. The built-in entries have
no `compute`: FID/KID share one feature extractor across trials, the face metrics run at the
reported checkpoint only (~0.1 s an image) and the paired means come with their per-pair rows, so
evaluate.py computes them in its own steps; their entries say how to read them.

    fakes  uint8 N x H x W x 3: G_AB(test A) for AB, G_BA(test B) for BA
    reals  uint8 M x H x W x 3: the real test images of the target domain (B for AB, A for BA)
    pairs  list of (fake, truth, region): a fake with its true counterpart and the mask region
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

Pair = tuple[np.ndarray, np.ndarray, np.ndarray]  # (fake, truth, mask region)
Compute = Callable[[np.ndarray, np.ndarray, list[Pair]], dict[str, float | None]]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One per-direction metric and how to read it."""

    name: str  # the comparison's metric name
    lower_is_better: bool
    label: str = ""  # its column in notebook 03's family table ("" = the name)
    template: str = ""  # its summary.csv column with {d} for the direction ("" = column(name, d))
    compare: bool = False  # tested against the baseline trial in comparison.csv
    table: bool = True  # shown in the family table (`family_table`)
    ranks: bool = True  # a better value means a better translation (mask IoU says where, not how well)
    compute: Compute | None = None  # None: computed by evaluate.py's own steps (see above)

    def column(self, direction: str) -> str:
        return self.template.format(d=direction) if self.template else column(self.name, direction)

    @property
    def shown_as(self) -> str:
        return self.label or self.name


METRICS: list[Metric] = [
    Metric("FID", True, template="FID_{d}", compare=True),
    Metric("FID_ref", True, template="FID_{d}_ref", compare=True, table=False),  # FID at the fixed sample count
    Metric("KID", True, template="KID_{d}", compare=True),
    Metric("fd_face", True, "FD_face", "fd_face_{d}", compare=True),
    Metric("kd_face", True, "KD_face", "kd_face_{d}"),
    Metric("id_rate", False, "identity", "id_rate_{d}", compare=True),
    Metric("psnr", False, "PSNR", "psnr_{d}"),
    Metric("ssim", False, "SSIM", "ssim_{d}"),
    Metric("psnr_mask", False, "PSNR mask", "psnr_{d}_mask", compare=True),
    Metric("ssim_mask", False, "SSIM mask", "ssim_{d}_mask", compare=True),
    Metric("mask_iou", False, "mask IoU", "mask_iou_{d}", ranks=False),
]


def compared() -> list[Metric]:
    """The metrics comparison.csv tests against the baseline."""
    return [m for m in METRICS if m.compare]


def tabled() -> list[Metric]:
    """The metrics notebook 03's family table shows."""
    return [m for m in METRICS if m.table]


def column(name: str, direction: str) -> str:
    """Column of a metric's number for a direction: psnr -> psnr_BA, ssim_mask -> ssim_BA_mask,
    KID_std -> KID_BA_std; mask_fraction, mask_iou and n_pairs keep their words together (mask_fraction_BA)."""
    if name in ("mask_fraction", "mask_iou", "n_pairs"):
        return f"{name}_{direction}"
    metric, _, part = name.partition("_")
    return f"{metric}_{direction}" + (f"_{part}" if part else "")


def score(fakes: dict[str, np.ndarray | None], reals: dict[str, np.ndarray],
          pairs: dict[str, list[Pair]]) -> dict[str, float | None]:
    """Every metric of METRICS with a `compute`, for every direction with fakes (keyed "AB"/"BA")."""
    out: dict[str, float | None] = {}
    for metric in METRICS:
        if metric.compute is None:
            continue
        for direction, f in fakes.items():
            if f is not None:
                out.update({column(k, direction): v for k, v in metric.compute(f, reals[direction],
                                                                               pairs[direction]).items()})
    return out
