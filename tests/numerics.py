"""Tolerances derived from an independent reference, not from one machine's measurements.

Two fp32 computations of the same thing (other kernels, other summation orders, other
instruction sets) differ by rounding. How much rounding a computation carries is measured on the
spot: the plain fp32 path against the same computation in float64. A fast variant passes when it
is no farther from float64 than RATIO times the plain path's own distance (plus a few fp32 ulps
for values the plain path happens to hit exactly). The bugs these tests guard against (wrong
gradients from the channels_last trap, images paired wrongly in a batched call, a loss averaged
over the wrong set) are errors of order 1, far above any such bound.
"""

from __future__ import annotations

import torch

RATIO = 20.0  # another summation order may round a few times worse; a bug is orders of magnitude worse
ULPS = 64 * torch.finfo(torch.float32).eps  # floor, relative to the reference's size
# channels_last at batch 1 swaps instance norm for the batch-norm kernel (the trap's fix), whose
# backward cancels badly at initialisation: 6e-4 to 7e-3 relative to float64, legitimately, while
# the trap itself gives relative errors above 1 (platform-notes.md). A fixed bound 10x under the
# bug and 10x over that rounding catches the bug on any CPU without tracking one CPU's figures.
TRAP_BOUND = 0.1


def to_float64(m):
    """A model of the CycleGAN family converted in place to float64 (its optimisers keep working:
    they hold the same parameter objects)."""
    for net in m.networks().values():
        net.double()
    return m


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))


def bound(plain: torch.Tensor, reference: torch.Tensor) -> float:
    """How far from `reference` (float64) an fp32 variant of the `plain` fp32 computation may be,
    relative to the reference's size."""
    return RATIO * rel(plain, reference) + ULPS


def assert_fp32_close(got, plain, reference, what: str = "") -> None:
    """`got` (a fast fp32 variant) is within `bound` of the float64 `reference`."""
    got, plain, reference = (torch.as_tensor(x).double().flatten() for x in (got, plain, reference))
    err, limit = rel(got, reference), bound(plain, reference)
    assert err <= limit, f"{what}: relative error {err:.3g} vs float64, limit {limit:.3g} " \
                         f"({RATIO:g}x the plain fp32 path's {rel(plain, reference):.3g} + {ULPS:.2g})"
