"""The one per-trial table of a sweep: which folders are trials, what state each is in, which
settings vary between them, and `<sweep>/summary.csv`.

Sweep, evaluation, survey and run_all.sh all read and write it through here, so "finished" and
"varied" mean one thing everywhere:
- a trial is a folder directly under the sweep folder holding `config.yaml` or `run.json`;
- its status is run.json's (finished / stopped / failed / running); "finished" also needs
  metrics.json to say every epoch ran; a folder without run.json is "finished" when its
  metrics.json says so, else "unknown";
- a varied setting is a TrialConfig field (hyper-parameters only) whose value differs between trials;
- a row is one run: `run` is its folder, `trial` the config's `name` (the runs of one trial at several
  seeds share it: maskcycle.training.sweep.seed_runs) and `seed` its seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskcycle.config import NOT_HYPERPARAMETERS, TrialConfig, directions, field_names
from maskcycle.io import atomic_write_text
from maskcycle.settings import ConfigError

SUMMARY = "summary.csv"
EVAL_METRICS = Path("eval") / "metrics.json"
# eval/metrics.json keys that describe the run rather than score it
_NOT_SCORES = {"trial", "test_root", "inception_weights", "key", "model", "directions"}
# model and directions come from config.yaml: which family, and which FID columns it can fill
_BASE = ["trial", "seed", "run", "model", "directions", "status", "epochs", "epochs_total", "train_wall_s",
         "notebook_wall_s", "img_per_s", "error", "evaluated", "eval_error"]


def read_json(path: Path) -> dict:
    """A JSON object from `path`; {} when the file is missing or not a JSON object (being written)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def find_trials(sweep_dir: str | Path) -> list[Path]:
    """Trial folders directly under `sweep_dir`, by name ([] when the folder does not exist yet)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir()
                  if p.is_dir() and ((p / "config.yaml").is_file() or (p / "run.json").is_file()))


def trial_status(trial_dir: str | Path) -> str:
    """finished / stopped / failed / running (run.json), or unknown; see the module docstring."""
    trial_dir = Path(trial_dir)
    status = read_json(trial_dir / "run.json").get("status")
    done = bool(read_json(trial_dir / "metrics.json").get("finished"))
    if status == "finished" and not done:
        return "stopped"  # run.json from a shorter run (e.g. --stop-after-epochs) of the same folder
    return status or ("finished" if done else "unknown")


def trial_settings(trial_dir: str | Path) -> dict:
    """The trial's resolved config.yaml as a dict ({} when absent or invalid)."""
    path = Path(trial_dir) / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return TrialConfig.from_yaml(path).to_dict()
    except ConfigError:
        return {}


def varied_settings(settings: list[dict]) -> list[str]:
    """Hyper-parameters whose value differs between trials (the sweep's axes), in schema order."""
    return [k for k in field_names() if k not in NOT_HYPERPARAMETERS
            and len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]


def trial_row(trial_dir: str | Path, eval_error: str | None = None) -> dict:
    """One trial's row: status, epochs, times, errors, and every top-level number of eval/metrics.json.
    A trial whose evaluation just failed (`eval_error`) shows no scores: those on disk are older."""
    trial_dir = Path(trial_dir)
    run, metrics = read_json(trial_dir / "run.json"), read_json(trial_dir / "metrics.json")
    scores = {} if eval_error else read_json(trial_dir / EVAL_METRICS)
    wall, images = metrics.get("train_wall_s"), metrics.get("images_seen")
    status = trial_status(trial_dir)
    pm = run.get("papermill") or {}
    row = {
        "trial": trial_dir.name, "status": status, "epochs": metrics.get("epochs_done"),
        "epochs_total": metrics.get("epochs_total"), "train_wall_s": wall, "notebook_wall_s": run.get("trial_wall_s"),
        "img_per_s": round(images / wall, 2) if images and wall else None,
        "error": (f"{pm.get('error_name')}: {pm.get('error_message')}" if pm
                  else run.get("error") if status == "failed" else None),
        "evaluated": bool(scores), "eval_error": eval_error,
    }
    row.update({k: v for k, v in scores.items() if k not in _NOT_SCORES and not isinstance(v, (list, dict))})
    return row


def trial_name(run_dir: str | Path, settings: dict) -> str:
    """The trial a run belongs to: its config's name when the folder is that name or a seed run of
    it (`<name>_seed<seed>`, maskcycle.training.sweep.seed_runs; for evaluation's variant
    `<trial>+composite` of a seed run, `<trial>_seed<seed>+composite`), else the folder's name."""
    folder, name, seed = Path(run_dir).name, settings.get("name"), settings.get("seed")
    trial, plus, variant = (name or "").partition("+")
    runs = (name, f"{name}_seed{seed}", f"{trial}_seed{seed}+{variant}" if plus else None)
    return name if name and folder in runs else folder


def _family(settings: dict) -> dict:
    """model and the directions a trial learns ("AB,BA" for CycleGAN; None without a config)."""
    if not settings:
        return {"model": None, "directions": None}
    return {"model": settings.get("model", "cyclegan"), "directions": ",".join(directions(settings))}


def summary_table(sweep_dir: str | Path, eval_errors: dict[str, str] | None = None):
    """The table (pandas), one row per run: trial, seed, run (folder), the varied settings, status,
    epochs, times, errors, the evaluation's numbers, and `best_FID_AB` / `best_FID_BA` marking the
    lowest of each direction."""
    import pandas as pd

    eval_errors = eval_errors or {}
    trials = find_trials(sweep_dir)
    settings = [trial_settings(t) for t in trials]
    axes = varied_settings(settings)
    rows = [{**{k: s.get(k) for k in axes}, **trial_row(t, eval_errors.get(t.name)),
             **_family(s), "trial": trial_name(t, s), "seed": s.get("seed"), "run": t.name}
            for t, s in zip(trials, settings)]
    for row, s in zip(rows, settings):  # a trial that has not finished an epoch has no metrics.json yet
        if row["epochs_total"] is None and s:
            row["epochs_total"] = s["n_epochs"] + s["n_epochs_decay"]
    base = ["trial", "seed", "run", *axes, *[c for c in _BASE[3:] if c not in axes]]
    table = pd.DataFrame(rows, columns=None if rows else base)
    table = table.reindex(columns=base + [c for c in table.columns if c not in base])
    for column in ("error", "eval_error"):
        if len(table) and table[column].isna().all():
            table = table.drop(columns=column)
    for direction in ("AB", "BA"):
        best, _, _ = best_trial(table, direction, by=BEST_BY[:1])
        table[f"best_FID_{direction}"] = table.index == best
    return table


# What names a direction's best run: FID (lower is better) where measured, else the paired PSNR over
# the mask region (higher), else the face-feature distance (lower).
BEST_BY = (("FID_{d}", True), ("psnr_{d}_mask", False), ("fd_face_{d}", True))


def best_trial(table, direction: str, by: tuple[tuple[str, bool], ...] = BEST_BY):
    """(row label, column, lower is better) of the run of `table` (summary_table's rows) that scores
    best in `direction` on the first column of `by` measured there (the first such run on a tie);
    (None, None, None) when none is measured."""
    import pandas as pd

    for template, lower in by:
        col = template.format(d=direction)
        values = pd.to_numeric(table[col], errors="coerce") if col in table else None
        if values is not None and values.notna().any():
            return (values.idxmin() if lower else values.idxmax()), col, lower
    return None, None, None


def write_summary(sweep_dir: str | Path, eval_errors: dict[str, str] | None = None):
    """Write `<sweep>/summary.csv` (atomically) and return the table."""
    table = summary_table(sweep_dir, eval_errors)
    atomic_write_text(Path(sweep_dir) / SUMMARY, table.to_csv(index=False))
    return table
