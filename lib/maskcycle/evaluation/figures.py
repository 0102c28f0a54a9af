"""Tables and figures of a sweep's evaluation for notebook 03: the results table with the best per
direction marked, our numbers beside the study's published ones, bar charts per direction, FID
over training, paired metrics and example pairs.

Each figure function returns a matplotlib Figure and saves it as PNG when `save` is given. Where
FID is unavailable (no Inception weights) the charts fall back to a paired metric and say so in
their titles, so the notebook always shows what was measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from maskcycle import results
from maskcycle.evaluation.evaluate import PUBLISHED
from maskcycle.io import save_figure

DIRECTIONS = {"AB": "A->B (put a mask on)", "BA": "B->A (take it off)"}
# Paired stand-in for FID where FID is unavailable (higher is better there).
FALLBACK = {"AB": "psnr_AB_mask", "BA": "psnr_BA_mask"}


def _has(table: pd.DataFrame, col: str) -> bool:
    return col in table and pd.to_numeric(table[col], errors="coerce").notna().any()


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The results table for reading: varied settings, epochs, time, FID/KID per direction with the
    best marked '*', and the main paired metrics, rounded."""
    if table.empty:
        return table
    out = table.copy()
    for d in DIRECTIONS:
        col = f"FID_{d}"
        if _has(out, col):
            out[col] = [("* " if best else "") + f"{v:.2f}" if pd.notna(v) else "n/a"
                        for v, best in zip(out[col], out[f"best_{col}"])]
        elif col in out:
            out[col] = "n/a"
        kid = f"KID_{d}"
        if kid in out:
            out[kid] = [f"{v:.4f}" if pd.notna(v) else "n/a" for v in pd.to_numeric(out[kid], errors="coerce")]
    if "eval_error" in out and out["eval_error"].isna().all():
        out = out.drop(columns="eval_error")
    drop = [c for c in out.columns if c.startswith("best_") or c in (
        "fid_unavailable_reason", "paired_unavailable_reason", "feature_extractor", "evaluated_at",
        "fid_available", "paired_available", "checkpoint", "crop_size", "selection_metric", "last_checkpoint",
        "fid_resize", "fid_ref_n", "n_val_A", "n_val_B", "run", "model", "directions", "notebook_wall_s")
        or c.endswith(("_std", "_input", "fraction_AB", "fraction_BA", "_lo", "_hi", "_se", "_n_fake", "_n_real",
                       "_size", "_format_fake", "_format_real", "_test_best", "_test_best_epoch"))
        or c.startswith(("id_chance_", "id_pairs_", "id_reference_", "face_"))]
    out = out.drop(columns=drop)
    return out.round(3)


FACE_COLUMNS = ("fd_face", "kd_face", "id_rate", "id_dist", "id_chance_rate", "id_chance_dist", "id_pairs",
                "id_reference")


def _value(row: pd.Series, col: str):
    v = row.get(col) if col in row.index else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _with_interval(row: pd.Series, col: str, fmt: str) -> str:
    v, lo, hi = _value(row, col), _value(row, f"{col}_lo"), _value(row, f"{col}_hi")
    if v is None:
        return "n/a"
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and hi is not None else f"{v:{fmt}}"


def face_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per trial and direction: FD_face, KD_face, identity rate at dlib's 0.6 (Wilson 95 %), median
    descriptor distance (bootstrap 95 %), the rate on mismatched pairs (chance), what the fakes were
    compared with, and how many fakes fell back to the fixed aligned face box. Missing metrics show
    as n/a, never an error."""
    rows = []
    for _, r in table.iterrows():
        for d, label in DIRECTIONS.items():
            def show(col, r=r):
                v = _value(r, col)
                return "n/a" if v is None else (round(v, 4) if isinstance(v, float) else v)

            rows.append({"trial": r.get("trial"), "direction": label, "FD_face": show(f"fd_face_{d}"),
                         "KD_face": show(f"kd_face_{d}"),
                         "identity rate (< 0.6)": _with_interval(r, f"id_rate_{d}", ".2f"),
                         "median distance": _with_interval(r, f"id_dist_{d}", ".3f"),
                         "chance rate": show(f"id_chance_rate_{d}"), "against": show(f"id_reference_{d}"),
                         "pairs": show(f"id_pairs_{d}"), "fallback box (fakes)": show(f"face_fallback_{d}")})
    return pd.DataFrame(rows)


def published_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Per direction: the study's published best and range beside this sweep's best and range."""
    rows = []
    for d in DIRECTIONS:
        col, pub = f"FID_{d}", PUBLISHED[f"FID_{d}"]
        ours = pd.to_numeric(table[col], errors="coerce").dropna() if col in table else pd.Series(dtype=float)
        row, _, _ = results.best_trial(table, d, by=results.BEST_BY[:1])
        best = None if row is None else table.loc[row, "trial"]
        rows.append({
            "direction": f"FID_{d}", "published best (study)": pub["best"],
            "published range (study)": f"{pub['low']}-{pub['high']}", "published best trial": pub["best_trial"],
            "ours best": round(float(ours.min()), 2) if len(ours) else "n/a",
            "ours range": f"{ours.min():.2f}-{ours.max():.2f}" if len(ours) else "n/a",
            "ours best trial": best or "n/a",
        })
    return pd.DataFrame(rows)


def direction_bars(table: pd.DataFrame, save=None):
    """One bar chart per direction: FID per trial (best highlighted) with the study's published best
    and range drawn beside as labelled reference lines; a paired metric when FID is unavailable."""
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(table) + 4), 4), squeeze=False)
    if table.empty:
        axes[0][0].set_title("no trials in the sweep")
        return fig
    for ax, d in zip(axes[0], DIRECTIONS):
        col = f"FID_{d}"
        fid_here = _has(table, col)
        best, _, _ = results.best_trial(table, d, by=results.BEST_BY[:2])
        metric = col if fid_here else FALLBACK[d]
        values = pd.to_numeric(table.get(metric, pd.Series(np.nan, index=table.index)), errors="coerce")
        colors = ["tab:orange" if i == best else "tab:blue" for i in table.index]
        ax.bar(table.get("run", table["trial"]).astype(str), values.fillna(0), color=colors)
        if fid_here:
            pub = PUBLISHED[col]
            ax.axhspan(pub["low"], pub["high"], color="grey", alpha=0.15, label="published range (study)")
            ax.axhline(pub["best"], color="black", ls="--", lw=1, label=f"published best (study) {pub['best']}")
            ax.legend(fontsize=8)
            ax.set_title(f"{col}: {DIRECTIONS[d]}\nlower is better", fontsize=9)
        else:
            ax.set_title(f"{metric} (FID unavailable): {DIRECTIONS[d]}\nhigher is better", fontsize=9)
        ax.set_ylabel(metric)
        ax.tick_params(axis="x", rotation=45)
        for lbl in ax.get_xticklabels():
            lbl.set_ha("right")
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)


def training_curves(curves: pd.DataFrame, save=None):
    """FID per direction against epoch, one line per trial (a paired metric when FID is unavailable)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    for ax, d in zip(axes[0], DIRECTIONS):
        col = f"FID_{d}"
        metric = col if _has(curves, col) else FALLBACK[d]
        if curves.empty or metric not in curves:
            ax.set_title(f"{metric}: nothing evaluated")
            continue
        for trial, part in curves.dropna(subset=["epoch"]).groupby("trial"):
            part = part.sort_values("epoch")
            ax.plot(part["epoch"], part[metric], marker="o", label=trial)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        note = "" if metric == col else " (FID unavailable)"
        ax.set_title(f"{metric} over training{note}: {DIRECTIONS[d]}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)


def paired_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of each paired metric per trial and direction, with the do-nothing baseline."""
    if pairs.empty:
        return pairs
    cols = ["psnr", "psnr_mask", "psnr_input", "ssim", "ssim_mask", "ssim_input"]
    finite = pairs.replace([np.inf, -np.inf], np.nan)
    out = finite.groupby(["trial", "direction"])[cols].agg(["mean", "std"]).round(3)
    out.columns = [f"{a} {b}" for a, b in out.columns]
    out.insert(0, "pairs", finite.groupby(["trial", "direction"]).size())
    return out.reset_index()


def paired_plot(pairs: pd.DataFrame, save=None):
    """PSNR over the whole image and over the mask region per trial, both directions; the dashed
    marks are the untranslated input against the same truth (doing nothing)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    if pairs.empty:
        axes[0][0].set_title("no paired metrics (no pairs_test.csv)")
        return fig
    finite = pairs.replace([np.inf, -np.inf], np.nan)
    for ax, d in zip(axes[0], DIRECTIONS):
        part = finite[finite["direction"] == d]
        trials = sorted(part["trial"].unique())
        x = np.arange(len(trials))
        for offset, col, label in ((-0.2, "psnr", "whole image"), (0.2, "psnr_mask", "mask region")):
            means = [part.loc[part.trial == t, col].mean() for t in trials]
            stds = [part.loc[part.trial == t, col].std() for t in trials]
            ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=3, label=label)
        base = [part.loc[part.trial == t, "psnr_input"].mean() for t in trials]
        ax.scatter(x, base, marker="_", s=600, color="black", label="input vs truth (do nothing)")
        ax.set_xticks(x, trials, rotation=45, ha="right")
        ax.set_ylabel("PSNR (dB) against the true counterpart")
        ax.set_title(f"paired PSNR: {DIRECTIONS[d]}", fontsize=9)
        ax.legend(fontsize=7, loc="lower center")
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)


def example_pairs(trial_dir: str | Path, n: int = 4, direction: str = "BA", save=None):
    """A few test pairs of one trial: input, translation, true counterpart, and the mask region."""
    from maskcycle.data.images import ImageReadError, list_images, read_rgb
    from maskcycle.evaluation import paired_metrics
    from maskcycle.evaluation.held_out import read_pairs

    trial_dir = Path(trial_dir)
    record = json.loads((trial_dir / "eval" / "metrics.json").read_text())
    root, size = Path(record["test_root"]), record["crop_size"]
    src_domain = "B" if direction == "BA" else "A"
    pairs, _ = read_pairs(root, [p.name for p in list_images(root / "testA")],
                          [p.name for p in list_images(root / "testB")])
    rows = []
    for row in (r for r in pairs if r["domain"] == src_domain):
        try:  # a counterpart that cannot be decoded was skipped by the evaluation too
            source = read_rgb(root / f"test{src_domain}" / row["file"], size)
            fake = read_rgb(trial_dir / "eval" / f"fakes_{direction}" / f"{Path(row['file']).stem}.png")
            rows.append((source, fake, read_rgb(row["counterpart"], size)))
        except ImageReadError:
            continue
        if len(rows) == n:
            break
    fig, axes = plt.subplots(max(len(rows), 1), 4, figsize=(8, 2.1 * max(len(rows), 1)), squeeze=False)
    for ax_row, (source, fake, truth) in zip(axes, rows):
        masked, unmasked = (source, truth) if direction == "BA" else (truth, source)
        region = paired_metrics.mask_region(masked, unmasked)
        p = paired_metrics.psnr(fake, truth)
        for ax, img, title in zip(ax_row, (source, fake, truth, region),
                                  ("input", f"G_{direction} ({p:.1f} dB)" if math.isfinite(p) else "fake",
                                   "true counterpart", "mask region")):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    if not rows:
        axes[0][0].set_title("no pairs")
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)
