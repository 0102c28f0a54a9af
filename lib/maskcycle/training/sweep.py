"""A sweep: one papermill run of notebooks/02_training.ipynb per params YAML, and its summary.

    maskcycle sweep params/demo/*.yaml --out results/demo/sweep
    maskcycle sweep params/study/*.yaml --out results/study/sweep --set dataroot=data/curated
    maskcycle sweep params/study/*.yaml --out results/study/sweep --executor slurm

Every YAML is validated first (TrialConfig.from_yaml with the overrides); one bad file stops the
sweep before anything runs. Each trial renders into `OUT/<yaml stem>/02_training.ipynb` beside the
trainer's files. A trial whose notebook fails is recorded in its run.json (papermill's failing
cell, error name and message) and the others go on. Rerunning skips finished trials and resumes
interrupted ones (the trainer resumes from the trial's checkpoint). `OUT/summary.csv` has one row
per trial: every setting that varies across the sweep, status, epochs, time, img/s, and any
numbers from `<trial>/eval/metrics.json` (FID columns once evaluation has run).

`run_trial` is a top-level, picklable function, so a SLURM job (maskcycle.training.slurm) runs exactly
what the local executor runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from maskcycle.config import NOT_HYPERPARAMETERS, ConfigError, TrialConfig, parse_overrides
from maskcycle.io import atomic_write_text, update_run_json, utc_now
from maskcycle.training import slurm

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_training.ipynb"
RENDERED = "02_training.ipynb"
EXIT_NOT_STARTED = 125  # exit status when nothing ran; otherwise the number of failed trials


class SweepError(RuntimeError):
    """The sweep cannot start (e.g. no params files, duplicate trial names, no SLURM support)."""


# --- one trial ------------------------------------------------------------------------------
def trial_parameters(params_file: str | Path, overrides: Sequence[str] | dict = ()) -> dict:
    """The notebook parameters of a trial: the YAML's settings, the overrides, and `name`
    defaulting to the file's stem. Raises ConfigError naming the file and key when invalid."""
    params_file = Path(params_file)
    extra = parse_overrides(dict(overrides) if isinstance(overrides, dict) else list(overrides))
    cfg = TrialConfig.from_yaml(params_file, extra)
    given = set(yaml.safe_load(params_file.read_text()) or {}) | set(extra)
    values = {k: v for k, v in cfg.to_dict().items() if k in given}  # validated and coerced
    values.setdefault("name", params_file.stem)
    return values


def is_finished(trial_dir: str | Path) -> bool:
    """True when the trial's notebook ran to the end and the trainer finished every epoch."""
    trial_dir = Path(trial_dir)
    try:
        run = json.loads((trial_dir / "run.json").read_text())
        metrics = json.loads((trial_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return run.get("status") == "finished" and bool(metrics.get("finished")) and (trial_dir / RENDERED).exists()


def run_trial(params_file: str | Path, trial_dir: str | Path, overrides: Sequence[str] = (),
              kernel: str = "maskcycle", env: dict | None = None) -> dict:
    """Render notebooks/02_training.ipynb for one trial into `trial_dir` with papermill.

    Runs papermill in a child process (so `env`, e.g. CUDA_VISIBLE_DEVICES, reaches the kernel),
    never raises for a failing trial, and returns the record it merged into trial_dir/run.json:
    trial, status (finished / stopped / failed), notebook, papermill (failing cell, error name
    and message, or None), trial_wall_s."""
    params_file, trial_dir = Path(params_file).resolve(), Path(trial_dir).resolve()
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {"trial": trial_dir.name, "params_file": str(params_file), "overrides": list(overrides)}
    t0 = time.perf_counter()
    try:
        params = trial_parameters(params_file, overrides)
    except (ConfigError, OSError) as exc:
        record.update(status="failed", papermill={"cell": None, "error_name": type(exc).__name__,
                                                  "error_message": str(exc)})
        return _finish(trial_dir, record, t0)
    params["out_dir"] = str(trial_dir)
    out_nb = trial_dir / RENDERED
    child_env = {**os.environ, **(env or {})}
    # ipykernel only picks its inline backend when MPLBACKEND is unset; run_all.sh sets Agg.
    child_env.pop("MPLBACKEND", None)
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out_nb), "-k", kernel,
           "-y", yaml.safe_dump(params, sort_keys=False), "--no-progress-bar", "--log-output"]
    with (trial_dir / "papermill.log").open("w") as log:
        proc = subprocess.run(cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT, check=False)
    failure = notebook_error(out_nb) if proc.returncode else None
    if proc.returncode and failure is None:
        failure = {"cell": None, "error_name": "PapermillFailed",
                   "error_message": f"papermill exited with {proc.returncode}; see {trial_dir / 'papermill.log'}"}
    run = _read_json(trial_dir / "run.json")
    if failure:
        status = "failed"
    else:
        status = run.get("status") if run.get("status") in ("finished", "stopped") else "finished"
    record.update(status=status, notebook=str(out_nb), papermill=failure)
    return _finish(trial_dir, record, t0)


def notebook_error(nb_path: str | Path) -> dict | None:
    """The first error output of an executed notebook: cell index (in the rendered notebook),
    execution count, first source line, error name and message; None if it has none."""
    import nbformat

    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except (OSError, ValueError):
        return None
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                source = cell.get("source", "")
                return {"cell": i, "execution_count": cell.get("execution_count"),
                        "source_first_line": source.splitlines()[0] if source else "",
                        "error_name": out.get("ename"), "error_message": out.get("evalue")}
    return None


def _finish(trial_dir: Path, record: dict, t0: float) -> dict:
    record["trial_wall_s"] = round(time.perf_counter() - t0, 2)
    run = update_run_json(trial_dir, **record, sweep_end=utc_now())
    return {k: run.get(k) for k in (*record, "error")}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# --- a sweep --------------------------------------------------------------------------------
def plan_sweep(params_files: Sequence[str | Path], out: str | Path, overrides: Sequence[str] = ()):
    """Validate every params file and return jobs [(params_file, trial_dir, overrides)].
    Raises ConfigError listing every bad file and key; nothing has run at that point."""
    if not params_files:
        raise SweepError("no params files given")
    problems, jobs, seen = [], [], {}
    for p in map(Path, params_files):
        try:
            name = trial_parameters(p, overrides)["name"]
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if name in seen:
            problems.append(f"{p}: trial name {name!r} also used by {seen[name]}")
            continue
        seen[name] = p
        jobs.append((str(p), str(Path(out) / name), tuple(overrides)))
    if problems:
        raise ConfigError("invalid params, nothing was run:\n  " + "\n  ".join(problems))
    return jobs


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries ([] without CUDA)."""
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install must not stop a CPU sweep
        n = 0
    if n == 0:
        return []
    listed = [s for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    return listed[:n] if listed else [str(i) for i in range(n)]


def run_local(jobs, parallel: int | None = None, kernel: str = "maskcycle") -> list[dict]:
    """One trial per visible GPU at a time (each child sees only its GPU); on CPU sequential
    unless `parallel` > 1, sharing the cores between the trials."""
    gpus = visible_gpus()
    slots = gpus or [None] * max(1, parallel or 1)
    if gpus and parallel:
        slots = gpus[:parallel]
    threads = max(1, (os.cpu_count() or 1) // len(slots))

    def env_for(slot: int) -> dict:
        if gpus:
            return {"CUDA_VISIBLE_DEVICES": slots[slot]}
        return {"OMP_NUM_THREADS": str(threads)} if len(slots) > 1 else {}

    if len(slots) == 1:
        return [run_trial(*job, kernel=kernel, env=env_for(0)) for job in jobs]
    # Threads only wait on papermill child processes; each job takes the next free slot.
    free = list(range(len(slots)))
    import threading

    lock = threading.Lock()

    def one(job):
        with lock:
            slot = free.pop()
        try:
            return run_trial(*job, kernel=kernel, env=env_for(slot))
        finally:
            with lock:
                free.append(slot)

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        return list(pool.map(one, jobs))


def run_sweep(params_files: Sequence[str | Path], out: str | Path, overrides: Sequence[str] = (),
              executor: str = "local", parallel: int | None = None, slurm_options: dict | None = None,
              kernel: str = "maskcycle", echo=print) -> list[dict]:
    """Validate, skip finished trials, run the rest, write and print summary.csv. Returns one
    record per trial (skipped ones with status 'finished' and skipped=True)."""
    jobs = plan_sweep(params_files, out, overrides)
    Path(out).mkdir(parents=True, exist_ok=True)
    done = [j for j in jobs if is_finished(j[1])]
    todo = [j for j in jobs if not is_finished(j[1])]
    for j in done:
        echo(f"[sweep] {Path(j[1]).name}: finished earlier, skipped")
    for j in todo:
        resuming = (Path(j[1]) / "checkpoints" / "latest.pt").exists()
        echo(f"[sweep] {Path(j[1]).name}: {'resuming' if resuming else 'queued'}")
    if executor == "local":
        results = run_local(todo, parallel, kernel) if todo else []
    elif executor == "slurm":
        results = list(slurm.run_trials_slurm(todo, run_trial, slurm_options or {})) if todo else []
    else:
        raise SweepError(f"executor {executor!r}: expected 'local' or 'slurm'")
    for r in results:
        msg = r.get("status")
        if r.get("papermill"):
            pm = r["papermill"]
            msg += f" (cell {pm.get('cell')}: {pm.get('error_name')}: {pm.get('error_message')})"
        echo(f"[sweep] {r.get('trial')}: {msg}")
    skipped = [{"trial": Path(j[1]).name, "status": "finished", "skipped": True} for j in done]
    table = write_summary(out)
    echo(table.to_string(index=False) if len(table) else "(no trials)")
    echo(f"[sweep] summary: {Path(out) / 'summary.csv'}")
    return skipped + results


# --- summary --------------------------------------------------------------------------------
def _trial_row(trial_dir: Path) -> tuple[dict, dict]:
    run = _read_json(trial_dir / "run.json")
    metrics = _read_json(trial_dir / "metrics.json")
    settings = {}
    try:
        settings = yaml.safe_load((trial_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        pass
    wall = metrics.get("train_wall_s")
    images = metrics.get("images_seen")
    row = {
        "trial": trial_dir.name,
        "status": run.get("status", "unknown"),
        "epochs": metrics.get("epochs_done"),
        "epochs_total": metrics.get("epochs_total", settings.get("n_epochs", 0) + settings.get("n_epochs_decay", 0)
                                    if settings else None),
        "train_wall_s": wall,
        "notebook_wall_s": run.get("trial_wall_s"),
        "img_per_s": round(images / wall, 2) if images and wall else None,
    }
    pm = run.get("papermill") or {}
    row["error"] = (f"{pm.get('error_name')}: {pm.get('error_message')}" if pm
                    else run.get("error") if row["status"] == "failed" else None)
    evaluation = _read_json(trial_dir / "eval" / "metrics.json")
    for k, v in _flatten(evaluation).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            row[k] = v
    return row, settings


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def write_summary(sweep_dir: str | Path):
    """Write sweep_dir/summary.csv (atomically) and return it as a DataFrame: one row per trial
    folder (a folder with run.json or config.yaml), the settings that vary across trials, status,
    epochs, wall times, img/s, error, then every number in the trial's eval/metrics.json."""
    import pandas as pd

    sweep_dir = Path(sweep_dir)
    trials = sorted(p for p in sweep_dir.iterdir() if p.is_dir()
                    and ((p / "run.json").exists() or (p / "config.yaml").exists())) if sweep_dir.is_dir() else []
    rows, settings = zip(*[_trial_row(p) for p in trials]) if trials else ((), ())
    keys = [k for k in (settings[0] if settings else {}) if k not in NOT_HYPERPARAMETERS]
    varied = [k for k in keys if len({repr(s.get(k)) for s in settings}) > 1]
    base = ["trial", *varied, "status", "epochs", "epochs_total", "train_wall_s", "notebook_wall_s",
            "img_per_s", "error"]
    records = [{**{k: s.get(k) for k in varied}, **r} for r, s in zip(rows, settings)]
    table = pd.DataFrame(records, columns=None if records else base)
    extra = [c for c in table.columns if c not in base]
    table = table.reindex(columns=base + extra)
    if len(table) and table["error"].isna().all():
        table = table.drop(columns="error")
    atomic_write_text(sweep_dir / "summary.csv", table.to_csv(index=False))
    return table


# --- CLI --------------------------------------------------------------------------------
def add_arguments(p) -> None:
    """The `maskcycle sweep` options (used by maskcycle.cli)."""
    p.add_argument("params", nargs="+", help="trial YAMLs (TrialConfig fields); trial name = file stem")
    p.add_argument("--out", required=True, help="sweep folder: one sub-folder per trial + summary.csv")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override settings in every trial")
    p.add_argument("--executor", choices=["local", "slurm"], default="local")
    p.add_argument("--parallel", type=int, default=None,
                   help="trials at once (default: one per visible GPU, else 1)")
    p.add_argument("--slurm", nargs="*", default=[], metavar="KEY=VALUE",
                   help="options for maskcycle.training.slurm.run_trials_slurm (e.g. partition=gpu)")
    p.add_argument("--kernel", default="maskcycle", help="Jupyter kernel papermill uses")


def main(args) -> int:
    """Run the sweep; exit status = number of failed trials (0 = all finished), or 125 when nothing
    could start (invalid params, no SLURM support)."""
    try:
        results = run_sweep(args.params, args.out, args.set, args.executor, args.parallel,
                            parse_overrides(args.slurm), args.kernel)
    except (ConfigError, SweepError) as exc:
        print(f"maskcycle sweep: error: {exc}", file=sys.stderr)
        return EXIT_NOT_STARTED
    failed = [r["trial"] for r in results if r.get("status") == "failed"]
    if failed:
        print(f"[sweep] {len(failed)} of {len(results)} trial(s) failed: {', '.join(failed)}", file=sys.stderr)
    return min(len(failed), EXIT_NOT_STARTED - 1)
