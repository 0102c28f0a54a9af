"""Figures of the survey analysis (notebook 04): scores per participant, error rates with their
intervals, per-person sensitivity and bias, per-image difficulty.

Each function takes a table of `analysis.analyse`'s result, returns a matplotlib Figure, and saves
it when `save` is given (as evaluation/figures.py and training/figures.py do). `simulated` puts
"SIMULATED: " before the title, so a figure of simulated answers never passes for people's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from maskcycle.io import save_figure

CATEGORY_COLORS = {"real_A": "tab:green", "real_B": "tab:olive", "fake_AB": "tab:red", "fake_BA": "tab:purple"}


def _title(text: str, simulated: bool) -> str:
    return ("SIMULATED: " if simulated else "") + text


def scores_per_participant(people: pd.DataFrame, simulated: bool, save=None):
    """How many scored images each person got right, against what guessing gives (Binomial(n, 1/2))."""
    n_items = int(people.n.max())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(people.score, bins=np.arange(-0.5, n_items + 1.5), color="tab:blue", alpha=0.8, label="participants")
    k = np.arange(n_items + 1)
    ax.plot(k, len(people) * stats.binom.pmf(k, n_items, 0.5), "o-", color="grey", ms=3, label="guessing")
    ax.set_xlabel(f"correct answers (of {n_items})")
    ax.set_ylabel("participants")
    ax.legend()
    ax.set_title(_title("scores per participant", simulated))
    return save_figure(fig, save)


def error_rates(rates: pd.DataFrame, simulated: bool, save=None):
    """Each rate (percent) with its participant-bootstrap 95 % interval and the Wilson interval's ends."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    y = np.arange(len(rates))[::-1]
    ax.errorbar(100 * rates.rate, y, xerr=[100 * (rates.rate - rates.boot_lo), 100 * (rates.boot_hi - rates.rate)],
                fmt="o", capsize=3, label="participant bootstrap 95 %")
    ax.plot(100 * rates.wilson_lo, y + 0.15, "|", color="grey")
    ax.plot(100 * rates.wilson_hi, y + 0.15, "|", color="grey", label="Wilson 95 % ends")
    ax.axvline(50, color="k", lw=0.8, ls=":")
    ax.set_yticks(y, rates.measure)
    ax.set_xlabel("% of answers")
    ax.legend(fontsize=8)
    ax.set_title(_title("error rates with 95 % intervals", simulated))
    return save_figure(fig, save)


def sensitivity_and_bias(people: pd.DataFrame, simulated: bool, save=None):
    """Histograms of per-person d' and criterion (log-linear corrected)."""
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].hist(people.dprime_ll, bins=15)
    ax[0].set_xlabel("per-person d' (log-linear)")
    ax[1].hist(people.criterion_ll, bins=15, color="tab:orange")
    ax[1].set_xlabel("per-person criterion")
    fig.suptitle(_title("sensitivity and bias per participant", simulated))
    fig.tight_layout()
    return save_figure(fig, save)


def image_difficulty(images: pd.DataFrame, simulated: bool, save=None):
    """Share of wrong answers per image (hardest first, as `images` is ordered) with Wilson 95 %
    intervals, coloured by the image's category."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(images))
    for cat, g in images.groupby("category"):
        err = [100 * (g.error_rate - g.wilson_lo), 100 * (g.wilson_hi - g.error_rate)]
        ax.errorbar(x[g.index], 100 * g.error_rate, yerr=err, fmt="o", capsize=2, color=CATEGORY_COLORS.get(cat),
                    label=cat)
    ax.axhline(50, color="k", lw=0.8, ls=":")
    ax.set_xticks([])
    ax.set_xlabel("images, hardest first")
    ax.set_ylabel("% wrong")
    ax.legend(fontsize=8)
    ax.set_title(_title("per-image difficulty with Wilson 95 %", simulated))
    return save_figure(fig, save)
