"""Statistics for real-vs-fake answers: proportions with intervals, tests, signal detection, and
methods that respect that one person's answers are not independent (cluster bootstrap, GEE).

Signal detection convention: the "signal" is a generated image. A hit is a fake called fake, a
false alarm a real image called fake. d' = z(H) - z(F); criterion c = -(z(H) + z(F)) / 2
(c > 0: a bias towards answering "real").
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval from beta quantiles."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    a = 1 - level
    lo = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - a / 2, k + 1, n - k)
    return float(lo), float(hi)


def binomial_p(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test of k of n against rate p."""
    return float(stats.binomtest(k, n, p).pvalue)


def proportion(k: int, n: int, level: float = 0.95) -> dict:
    """Rate with Wilson and Clopper-Pearson intervals and the binomial test against 50 %."""
    w, cp = wilson(k, n, level), clopper_pearson(k, n, level)
    return {"k": int(k), "n": int(n), "rate": k / n, "wilson_lo": w[0], "wilson_hi": w[1],
            "cp_lo": cp[0], "cp_hi": cp[1], "p_vs_50": binomial_p(k, n)}


def dprime(hit_rate: float, fa_rate: float) -> tuple[float, float]:
    """(d', criterion c) from hit and false-alarm rates (both strictly inside (0, 1))."""
    for name, r in (("hit rate", hit_rate), ("false-alarm rate", fa_rate)):
        if not 0 < r < 1:
            raise ValueError(f"dprime: {name} must be inside (0, 1), got {r}; use loglinear_rates for counts")
    zh, zf = stats.norm.ppf(hit_rate), stats.norm.ppf(fa_rate)
    return float(zh - zf), float(-(zh + zf) / 2)


def loglinear_rates(hits: int, n_signal: int, fas: int, n_noise: int) -> tuple[float, float]:
    """Hautus (1995) log-linear correction (add 0.5 to counts, 1 to totals): finite d' for one
    person's few answers, where 0 or all hits would give an infinite z."""
    return (hits + 0.5) / (n_signal + 1), (fas + 0.5) / (n_noise + 1)


def dprime_se(hit_rate: float, fa_rate: float, n_signal: int, n_noise: int) -> tuple[float, float]:
    """Delta-method standard errors of d' and c for independent answers (Gourevitch & Galanter)."""
    zh, zf = stats.norm.ppf(hit_rate), stats.norm.ppf(fa_rate)
    vh = hit_rate * (1 - hit_rate) / (n_signal * stats.norm.pdf(zh) ** 2)
    vf = fa_rate * (1 - fa_rate) / (n_noise * stats.norm.pdf(zf) ** 2)
    return math.sqrt(vh + vf), math.sqrt(vh + vf) / 2


def cluster_bootstrap(groups: np.ndarray, stat, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, np.ndarray]:
    """Percentile interval of stat(weights) when whole clusters (participants) are resampled.

    `groups` is an array of per-cluster sufficient statistics (one row per participant); `stat` maps
    a (n_boot x n_clusters) matrix of resampling counts and `groups` to n_boot values."""
    groups = np.asarray(groups, dtype=float)
    m = len(groups)
    if m < 2:
        raise ValueError(f"cluster_bootstrap: need at least 2 clusters, got {m}")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(m, np.full(m, 1 / m), size=n_boot).astype(float)
    values = np.asarray(stat(weights, groups), dtype=float)
    values = values[np.isfinite(values)]
    a = (1 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a)), values


def ratio_stat(num_col: int, den_col: int):
    """stat for cluster_bootstrap: pooled rate sum(w * num) / sum(w * den)."""
    def stat(w, g):
        return (w @ g[:, num_col]) / (w @ g[:, den_col])
    return stat


def sdt_stat(hit_col: int, sig_col: int, fa_col: int, noise_col: int, which: str):
    """stat for cluster_bootstrap: pooled d' ("dprime") or criterion ("c")."""
    def stat(w, g):
        h = (w @ g[:, hit_col]) / (w @ g[:, sig_col])
        f = (w @ g[:, fa_col]) / (w @ g[:, noise_col])
        with np.errstate(divide="ignore", invalid="ignore"):
            zh, zf = stats.norm.ppf(h), stats.norm.ppf(f)
        return zh - zf if which == "dprime" else -(zh + zf) / 2
    return stat


def gee_rates(df, outcome: str, category: str, group: str, level: float = 0.95):
    """Per-category rates from a logistic GEE with exchangeable within-participant correlation
    (robust standard errors); returns a DataFrame category, rate, lo, hi, and the fitted working
    correlation."""
    import pandas as pd
    import statsmodels.api as sm

    d = df[[outcome, category, group]].dropna().copy()
    cats = sorted(d[category].unique())
    X = pd.get_dummies(d[category]).reindex(columns=cats).astype(float)
    y = d[outcome].astype(float)
    model = sm.GEE(y, X, groups=d[group], family=sm.families.Binomial(),
                   cov_struct=sm.cov_struct.Exchangeable())
    fit = model.fit()
    z = stats.norm.ppf(0.5 + level / 2)
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    rows = []
    for c in cats:
        b, se = fit.params[c], fit.bse[c]
        rows.append({"category": c, "rate": float(expit(b)), "lo": float(expit(b - z * se)),
                     "hi": float(expit(b + z * se))})
    return pd.DataFrame(rows), float(model.cov_struct.dep_params)


def published_aggregate(n_participants: int = 100, n_images: int = 22, wrong: int = 881,
                        reported_rate_pct: float = 40.08, reported_mean_score: float = 13.24) -> dict:
    """Re-derive the study's one published number and check it against its own parts."""
    n = n_participants * n_images
    p = proportion(wrong, n)
    mean_score = (n - wrong) / n_participants
    wrong_from_mean = n - reported_mean_score * n_participants
    wrong_from_rate = reported_rate_pct / 100 * n
    return {
        "answers": n, "wrong": wrong, "error_rate": p["rate"], "wilson_lo": p["wilson_lo"],
        "wilson_hi": p["wilson_hi"], "cp_lo": p["cp_lo"], "cp_hi": p["cp_hi"], "p_vs_50": p["p_vs_50"],
        "implied_mean_score": mean_score,
        "reported_rate_pct": reported_rate_pct, "reported_mean_score": reported_mean_score,
        "wrong_implied_by_reported_mean": wrong_from_mean,
        "wrong_implied_by_reported_rate": wrong_from_rate,
        "rate_consistent": round(100 * wrong / n, 2) == reported_rate_pct,
        "mean_consistent": round(mean_score, 2) == reported_mean_score,
        # 40.08 % of 2200 is 881.76 answers: no whole number of wrong answers rounds to it.
        "reported_rate_reachable": any(round(100 * k / n, 2) == reported_rate_pct for k in range(n + 1)),
    }
