"""The study's answer: per trial, direction and metric, the mean over seeds with its interval, and
the difference to the baseline trial with a corrected p-value -> `<sweep>/comparison.csv`.

- A trial's runs are its rows of summary.csv (one per seed; maskcycle.results). Runs of one trial
  that disagree in any setting other than the seed (and where or how verbosely it ran), or that
  repeat a seed, are refused: the trial gets one row saying why and no numbers.
- Mean over seeds with a Student-t 95 % interval when the trial has >= 2 seeds ("t over seeds");
  with one seed, the within-run 95 % interval from resampling the test images (bootstrap,
  evaluation.statistics), labelled as such: it shows how much the test images move the number,
  not how much a rerun would.
- Difference to the baseline: Welch's t-test over seeds when both have >= 2 seeds; otherwise a
  normal test on standard errors (seed-level sd/sqrt(n) where there are >= 2 seeds, the within-run
  bootstrap se where there is one), labelled. p-values are Holm-corrected within each (metric,
  direction) family, i.e. over the trials compared with the baseline; `beyond_noise` is
  p_holm < 0.05.
"""

from __future__ import annotations

import math
from pathlib import Path

from maskcycle import results
from maskcycle.config import RUN_CONTROL_FIELDS
from maskcycle.evaluation import metrics
from maskcycle.evaluation import statistics as stats
from maskcycle.io import atomic_write_text

COMPARISON = "comparison.csv"
ALPHA = 0.05
# settings that may differ between the seeds of one trial: the seed itself, and where/how it ran
SEED_FREE = RUN_CONTROL_FIELDS | {"seed", "device", "dataroot", "n_samples"}
COLUMNS = ["trial", "direction", "metric", "better", "n_seeds", "seeds", "mean", "lo", "hi", "interval",
           "baseline", "diff", "diff_lo", "diff_hi", "test", "p", "p_holm", "beyond_noise", "refused"]


class ComparisonError(ValueError):
    """No comparison can be made (e.g. the baseline trial is missing)."""


def _num(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def refusal(runs: list[dict]) -> str | None:
    """Why the runs of one trial cannot be pooled (settings other than the seed differ, or a seed
    repeats), naming the runs and keys; None when they can."""
    seeds = [r["settings"].get("seed") for r in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        folders = [r["run"] for r in runs if r["settings"].get("seed") in repeated]
        return f"seed(s) {repeated} run more than once ({', '.join(folders)})"
    first = runs[0]
    for other in runs[1:]:
        keys = sorted(k for k in set(first["settings"]) | set(other["settings"])
                      if k not in SEED_FREE and first["settings"].get(k) != other["settings"].get(k))
        if keys:
            detail = ", ".join(f"{k}: {first['settings'].get(k)!r} vs {other['settings'].get(k)!r}" for k in keys)
            return f"runs {first['run']} and {other['run']} differ in settings other than the seed ({detail})"
    return None


def collect(sweep_dir: str | Path) -> dict[str, list[dict]]:
    """{trial: [run]} of the evaluated runs: each run's folder, settings and eval/metrics.json."""
    out: dict[str, list[dict]] = {}
    for run_dir in results.find_trials(sweep_dir):
        scores = results.read_json(run_dir / results.EVAL_METRICS)
        if not scores:
            continue
        settings = results.trial_settings(run_dir)
        out.setdefault(results.trial_name(run_dir, settings), []).append(
            {"run": run_dir.name, "settings": settings, "scores": scores})
    return out


def _summary(runs: list[dict], col: str) -> dict | None:
    """Mean and interval of one column over a trial's runs; None when no run has it."""
    values = [_num(r["scores"].get(col)) for r in runs]
    if not any(math.isfinite(v) for v in values):
        return None
    if sum(math.isfinite(v) for v in values) >= 2:
        t = stats.t_interval(values)
        return {"n": t["n"], "mean": t["mean"], "lo": t["lo"], "hi": t["hi"], "se": t["sd"] / math.sqrt(t["n"]),
                "values": values, "interval": "t over seeds"}
    one = next(r["scores"] for r, v in zip(runs, values) if math.isfinite(v))
    lo, hi, se = (_num(one.get(f"{col}_{k}")) for k in ("lo", "hi", "se"))
    label = "within-run bootstrap over test images (1 seed)" if math.isfinite(se) else "none (1 seed, no interval)"
    return {"n": 1, "mean": _num(one.get(col)), "lo": lo, "hi": hi, "se": se, "values": values, "interval": label}


def _difference(a: dict, b: dict) -> dict:
    if a["n"] >= 2 and b["n"] >= 2:
        return {**stats.welch_difference(a["values"], b["values"]), "test": "Welch t over seeds"}
    out = stats.z_difference(a["mean"], a["se"], b["mean"], b["se"])
    return {**out, "test": "z on standard errors (within-run bootstrap for a 1-seed side)"}


def compare(sweep_dir: str | Path, baseline: str = "baseline") -> list[dict]:
    """The rows of comparison.csv (see the module docstring). Raises ComparisonError when there
    are evaluated trials but none named `baseline`."""
    trials = collect(sweep_dir)
    if not trials:
        return []
    if baseline not in trials:
        raise ComparisonError(f"{sweep_dir}: no evaluated trial named {baseline!r} to compare with "
                              f"(trials: {', '.join(sorted(trials))})")
    refused = {t: why for t, runs in trials.items() if (why := refusal(runs))}
    rows = []
    for trial in sorted(trials, key=lambda t: (t != baseline, t)):
        if trial in refused:
            rows.append({"trial": trial, "refused": refused[trial]})
            continue
        runs = trials[trial]
        directions = (runs[0]["scores"].get("directions") or "AB,BA").split(",")
        for m in metrics.compared():  # each column may have <column>_lo/_hi/_se from one run
            metric, lower = m.name, m.lower_is_better
            for d in directions:
                col = m.column(d)
                mine = _summary(runs, col)
                if mine is None:
                    continue
                row = {"trial": trial, "direction": d, "metric": metric, "better": "lower" if lower else "higher",
                       "n_seeds": mine["n"], "seeds": " ".join(str(r["settings"].get("seed")) for r in runs),
                       "mean": mine["mean"], "lo": mine["lo"], "hi": mine["hi"], "interval": mine["interval"],
                       "baseline": baseline}
                base = None if baseline in refused or trial == baseline else _summary(trials[baseline], col)
                if base is not None:
                    diff = _difference(mine, base)
                    row.update(diff=diff["diff"], diff_lo=diff["lo"], diff_hi=diff["hi"], test=diff["test"],
                               p=diff["p"])
                rows.append(row)
    for m in metrics.compared():  # Holm within each (metric, direction) family
        for d in ("AB", "BA"):
            family = [r for r in rows if r.get("metric") == m.name and r.get("direction") == d and "p" in r]
            for r, adjusted in zip(family, stats.holm([r["p"] for r in family])):
                r["p_holm"] = adjusted
                r["beyond_noise"] = bool(math.isfinite(adjusted) and adjusted < ALPHA)
    return rows


def write_comparison(sweep_dir: str | Path, baseline: str = "baseline"):
    """Write `<sweep>/comparison.csv` (atomically) and return it as a table (pandas)."""
    import pandas as pd

    table = pd.DataFrame(compare(sweep_dir, baseline), columns=COLUMNS)
    atomic_write_text(Path(sweep_dir) / COMPARISON, table.to_csv(index=False))
    return table


def answer_table(comparison, metrics: tuple[str, ...] | None = None):
    """The short answer: trial, direction, metric, seeds, mean [95 % interval], difference to the
    baseline [interval], Holm p and whether it is beyond noise; `metrics` default: FID when measured,
    else the paired PSNR over the mask region, plus the face-feature distance."""
    import pandas as pd

    c = comparison[comparison["metric"].notna()] if len(comparison) else comparison
    if metrics is None:
        have = set(c["metric"]) if len(c) else set()
        metrics = tuple(m for m in ("FID", "psnr_mask", "fd_face") if m in have)
        if "FID" in metrics:
            metrics = ("FID", "fd_face")
    c = c[c["metric"].isin(metrics)]

    def ci(mean, lo, hi, digits=2):
        if not math.isfinite(_num(mean)):
            return ""
        inner = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if math.isfinite(_num(lo)) else ""
        return f"{mean:.{digits}f}{inner}"

    rows = [{"trial": r.trial, "dir": r.direction, "metric": f"{r.metric} ({r.better} better)",
             "seeds": int(r.n_seeds), "mean [95% CI]": ci(r.mean, r.lo, r.hi),
             "diff to baseline [95% CI]": ci(r.diff, r.diff_lo, r.diff_hi) if r.trial != r.baseline else "baseline",
             "p (Holm)": f"{r.p_holm:.3g}" if math.isfinite(_num(r.p_holm)) else "",
             "beyond noise": ("yes" if r.beyond_noise in (True, "True") else "no") if r.trial != r.baseline else ""}
            for r in c.itertuples()]
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(["dir", "metric", "trial"], kind="stable").reset_index(drop=True)
    return table


def interval_kinds(comparison) -> list[str]:
    """The kinds of intervals the table uses (to say which)."""
    return sorted(set(comparison["interval"].dropna())) if len(comparison) else []
