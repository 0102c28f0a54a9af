"""The figures and small tables that lead notebook 03: a forest plot of the comparison per direction
with the study's published numbers beside ours, how each run's epoch was chosen, FID's protocol
per run, and the sample-count bias of the Frechet distances.

Each figure function returns a matplotlib Figure and saves it as PNG when `save` is given.
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pandas as pd

from maskcycle import results
from maskcycle.evaluation.evaluate import PUBLISHED
from maskcycle.io import save_figure

DIRECTIONS = {"AB": "A->B (put a mask on)", "BA": "B->A (take it off)"}


def primary_metric(comparison: pd.DataFrame) -> str | None:
    """FID when it was measured, else the paired PSNR over the mask region, else the face distance."""
    have = set(comparison["metric"].dropna()) if len(comparison) else set()
    return next((m for m in ("FID", "psnr_mask", "fd_face") if m in have), None)


def forest_plot(comparison: pd.DataFrame, metric: str | None = None, save=None):
    """One panel per direction: each trial's mean over seeds with its 95 % interval (the kind is in
    the legend), the baseline's mean dashed; for FID also the study's published best (and its range
    over its trials, shaded), for other metrics the published FID in the title."""
    metric = metric or primary_metric(comparison)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * max(3, comparison["trial"].nunique()) + 2), squeeze=False)
    if metric is None:
        axes[0][0].set_title("nothing to compare (no evaluated trial)")
        return fig
    for ax, d in zip(axes[0], DIRECTIONS):
        part = comparison[(comparison["metric"] == metric) & (comparison["direction"] == d)]
        pub = PUBLISHED[f"FID_{d}"]
        if part.empty:
            ax.set_title(f"{metric} {d}: not measured", fontsize=9)
            continue
        part = part.iloc[::-1]  # the baseline on top
        y = range(len(part))
        for kind, marker in (("t over seeds", "o"), ("within-run", "s")):
            sel = part["interval"].fillna("").str.startswith(kind)
            if sel.any():
                ys = [i for i, s in zip(y, sel) if s]
                lo, hi, mean = part["lo"][sel], part["hi"][sel], part["mean"][sel]
                ax.errorbar(mean, ys, xerr=[(mean - lo).fillna(0).clip(lower=0), (hi - mean).fillna(0).clip(lower=0)],
                            fmt=marker, capsize=3, label=f"ours, 95 % {kind}")
        base = part[part["trial"] == part["baseline"]]
        if len(base):
            ax.axvline(float(base["mean"].iloc[0]), color="grey", ls="--", lw=1, label="our baseline")
        ax.set_yticks(list(y), [f"{t} ({int(n)} seed{'s' if n != 1 else ''})" for t, n in
                                zip(part["trial"], part["n_seeds"])])
        better = part["better"].iloc[0]
        if metric in ("FID", "FID_ref"):
            ax.axvspan(pub["low"], pub["high"], color="tab:orange", alpha=0.12, label="published range (study)")
            ax.axvline(pub["best"], color="tab:orange", lw=1.5, label=f"published best {pub['best']} (study)")
            title = f"FID_{d}: {DIRECTIONS[d]}, {better} is better"
        else:
            title = (f"{metric}_{d}: {DIRECTIONS[d]}, {better} is better\n(the study published only FID: best "
                     f"FID_{d} {pub['best']}; not comparable with {metric})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(metric)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)


def selection_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: the epoch reported, what it was chosen on (val split and metric), the last epoch,
    and the optimistic test-set-best numbers beside the reported ones."""
    cols = ["trial", "seed", "run", "epoch", "epoch_chosen_on", "selection_metric", "last_checkpoint"]
    extra = [c for c in table.columns if c.endswith("_test_best")]
    out = table.reindex(columns=[c for c in cols if c in table] + extra).copy()
    for c in extra:
        reported = c.removesuffix("_test_best")
        if reported in table:
            values = pd.to_numeric(table[reported], errors="coerce")
            out.insert(out.columns.get_loc(c), f"{reported} (reported)", values)
        out = out.rename(columns={c: f"{reported} (test-best, optimistic)"})
    return out.round(3)


def protocol_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per run and direction: what each FID compared (protocol, image counts, size, file formats)."""
    rows = []
    for _, r in table.iterrows():
        for d in DIRECTIONS:
            if pd.isna(r.get(f"FID_{d}_n_fake", float("nan"))):
                continue
            rows.append({"run": r.get("run", r.get("trial")), "direction": d, "resize": r.get("fid_resize"),
                         "fakes": int(r[f"FID_{d}_n_fake"]), "reals": int(r[f"FID_{d}_n_real"]),
                         "size": r.get(f"FID_{d}_size"), "format fakes": r.get(f"FID_{d}_format_fake"),
                         "format reals": r.get(f"FID_{d}_format_real"), f"FID_{d}": r.get(f"FID_{d}"),
                         "FID at ref. size": r.get(f"FID_{d}_ref"), "ref. size": r.get("fid_ref_n")})
    return pd.DataFrame(rows)


def bias_curves(sweep_dir) -> pd.DataFrame:
    """Long table run, direction, metric (FID, else fd_face), n, mean, sd: the Frechet distance of
    the reported epoch on random subsets of n test images (eval/metrics.json)."""
    rows = []
    for run in results.find_trials(sweep_dir):
        path = run / results.EVAL_METRICS
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        for d in DIRECTIONS:
            for metric, key in (("FID", f"FID_{d}_by_n"), ("fd_face", f"fd_face_{d}_by_n")):
                for c in rec.get(key) or []:
                    rows.append({"run": run.name, "direction": d, "metric": metric, **c})
    return pd.DataFrame(rows, columns=["run", "direction", "metric", "n", "mean", "sd", "repeats"])


def bias_plot(curves: pd.DataFrame, save=None):
    """The distance against the number of test images per run and direction (log x): the estimate
    falls as n grows, so numbers are comparable only at the same n (FID_ref fixes one)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    if curves.empty:
        axes[0][0].set_title("no sample-count curves (evaluate the sweep first)")
        return fig
    metric = "FID" if (curves["metric"] == "FID").any() else "fd_face"
    for ax, d in zip(axes[0], DIRECTIONS):
        part = curves[(curves["metric"] == metric) & (curves["direction"] == d)]
        for run, g in part.groupby("run"):
            ax.errorbar(g["n"], g["mean"], yerr=g["sd"], marker="o", ms=3, capsize=2, label=run)
        ax.set_xscale("log")
        ax.set_xlabel("images per set (n)")
        ax.set_ylabel(f"{metric}_{d}")
        ax.set_title(f"{metric}_{d} by sample count: {DIRECTIONS[d]}", fontsize=9)
        if len(part):
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, save, dpi=120)


def bias_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run, direction and metric: the distance at the smallest and at the full n, and by how
    much the small sample inflates it."""
    rows = []
    for (run, d, metric), g in curves.groupby(["run", "direction", "metric"]):
        g = g.sort_values("n")
        small, full = g.iloc[0], g.iloc[-1]
        rows.append({"run": run, "direction": d, "metric": metric, "n small": int(small["n"]),
                     "at n small": small["mean"], "n full": int(full["n"]), "at n full": full["mean"],
                     "inflation": small["mean"] / full["mean"] if full["mean"] and math.isfinite(full["mean"])
                     else None})
    return pd.DataFrame(rows).round(3)
