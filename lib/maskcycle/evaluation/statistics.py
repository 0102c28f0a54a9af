"""Statistics over seeds and test images: intervals, differences to a baseline, corrected p-values.

- Over seeds (a trial run at n >= 2 seeds): the mean with a Student-t interval
  (`t_interval`), and the difference of two trials with Welch's t-test and its Welch-Satterthwaite
  interval (`welch_difference`).
- Within one run (a single seed): the metric's spread from resampling the test images with
  replacement (`bootstrap_two_sample` for FID-like statistics of two sets, `bootstrap_mean` for
  per-image means); a difference of two single-seed runs is then a normal (z) test on the two
  bootstrap standard errors (`z_difference`). That interval says how much the test images move the
  number, not how much a rerun would: it is labelled as such wherever it is used.
- Holm's step-down correction for the number of comparisons (`holm`).
- The sample-count bias of a statistic of two sets (`subsample_curve`): its mean over random
  subsets of n images, for a few n.

Pure numpy/scipy; no file access. Pinned by tests against scipy.stats, statsmodels and hand examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

LEVEL = 0.95  # every interval here is a 95 % interval unless asked otherwise
N_BOOT = 200  # bootstrap replicates of a within-run interval (each replicate of FID is one Frechet distance)


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def t_interval(values: Sequence[float], level: float = LEVEL) -> dict:
    """Mean of the finite values with a Student-t interval: {"n", "mean", "sd", "lo", "hi"}.
    With fewer than 2 values the interval is NaN (one seed says nothing about seed noise)."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "lo": math.nan, "hi": math.nan}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": math.nan, "lo": math.nan, "hi": math.nan}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """mean(a) - mean(b) with Welch's t-test (unequal variances): {"diff", "lo", "hi", "p", "df"}.
    Needs at least 2 finite values on each side, else every number is NaN. Two constant samples
    give p = 0 when their means differ and 1 when they agree (the t statistic is then infinite or 0/0)."""
    x, y = _finite(a), _finite(b)
    nan = {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan, "df": math.nan}
    if len(x) < 2 or len(y) < 2:
        return nan
    diff = float(x.mean() - y.mean())
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "p": 0.0 if diff != 0 else 1.0, "df": math.nan}
    df = se2 ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    se = math.sqrt(se2)
    p = float(2 * sps.t.sf(abs(diff) / se, df))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "p": p, "df": float(df)}


def z_difference(a: float, se_a: float, b: float, se_b: float, level: float = LEVEL) -> dict:
    """a - b for two independent estimates with standard errors: normal interval and two-sided p.
    NaN when a value or standard error is missing."""
    values = (a, se_a, b, se_b)
    if any(v is None or not math.isfinite(v) for v in values):
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan}
    diff, se = a - b, math.hypot(se_a, se_b)
    if se == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "p": 0.0 if diff != 0 else 1.0}
    half = float(sps.norm.ppf(0.5 + level / 2)) * se
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "p": float(2 * sps.norm.sf(abs(diff) / se))}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order. NaN entries stay
    NaN and do not count as comparisons."""
    p = np.asarray([math.nan if v is None else v for v in pvalues], dtype=np.float64)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return math.nan, math.nan
    return float(np.percentile(r, 50 * (1 - level))), float(np.percentile(r, 50 * (1 + level)))


def bootstrap_two_sample(statistic: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray,
                         n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict:
    """A statistic of two sets of rows (e.g. FID of fake and real features) and its percentile
    bootstrap interval from resampling the rows of each set with replacement:
    {"value", "lo", "hi", "se", "n_boot"} (se = the replicates' standard deviation)."""
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))])
                     for _ in range(n_boot)])
    lo, hi = percentile_interval(reps, level)
    return {"value": float(statistic(x, y)), "lo": lo, "hi": hi, "se": float(np.std(reps, ddof=1)),
            "n_boot": n_boot}


def bootstrap_mean(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict:
    """Mean of the finite values with a percentile bootstrap interval: {"value", "lo", "hi", "se", "n_boot"}."""
    x = _finite(values)
    if len(x) == 0:
        return {"value": math.nan, "lo": math.nan, "hi": math.nan, "se": math.nan, "n_boot": n_boot}
    rng = np.random.default_rng(seed)
    reps = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    lo, hi = percentile_interval(reps, level)
    return {"value": float(x.mean()), "lo": lo, "hi": hi, "se": float(reps.std(ddof=1)), "n_boot": n_boot}


def subsample_curve(statistic: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray,
                    sizes: Sequence[int], repeats: int = 5, seed: int = 0) -> list[dict]:
    """The statistic on random subsets of n rows of each set (without replacement), for every n in
    `sizes` that both sets can give: [{"n", "mean", "sd", "repeats"}]. Shows the sample-count bias."""
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    out = []
    for n in sorted(set(int(s) for s in sizes)):
        if n < 2 or n > min(len(x), len(y)):
            continue
        k = 1 if n == len(x) == len(y) else repeats
        vals = [statistic(x[rng.choice(len(x), n, replace=False)], y[rng.choice(len(y), n, replace=False)])
                for _ in range(k)]
        out.append({"n": n, "mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if k > 1 else 0.0,
                    "repeats": k})
    return out


def at_reference_size(statistic: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray,
                      n: int, repeats: int = 5, seed: int = 0) -> float | None:
    """The statistic at a fixed sample count n (mean over `repeats` random subsets of n rows of each
    set; the full sets when both hold exactly n); None when a set holds fewer than n rows."""
    curve = subsample_curve(statistic, x, y, [n], repeats, seed)
    return curve[0]["mean"] if curve else None
