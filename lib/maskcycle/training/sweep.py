"""A sweep: one papermill run of notebooks/02_training.ipynb per params YAML, and its summary.

    maskcycle sweep params/demo/*.yaml --out results/demo/sweep
    maskcycle sweep params/study/*.yaml --out results/study/sweep --set dataroot=data/curated
    maskcycle sweep params/study/*.yaml --out results/study/sweep --executor slurm

Every YAML is validated first (TrialConfig.from_yaml with the overrides); one bad file stops the
sweep before anything runs. A trial runs at `seeds` seeds (`--seeds N` or the file's `seeds`;
default 1): seed S of trial T in `OUT/T` for its first seed, `OUT/T_seed<S>` for the others, each
its own resumable run and its own summary row (column `seed`). Each run renders into
`OUT/<run>/02_training.ipynb` beside the trainer's files. A run whose notebook fails is recorded in
its run.json (papermill's failing cell, error name and message) and the others go on. Rerunning
skips finished runs and resumes interrupted ones (the trainer resumes from the run's checkpoint).
`OUT/summary.csv` has one row per run: every setting that varies across the sweep, status, epochs, time, img/s, and any
numbers from `<trial>/eval/metrics.json` (FID columns once evaluation has run).

`run_trial` is a top-level, picklable function, so a SLURM job (maskcycle.training.slurm) runs exactly
what the local executor runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from maskcycle import results
from maskcycle.config import RUN_CONTROL_FIELDS, TrialConfig
from maskcycle.io import FolderBusyError, check_output, folder_lock, update_run_json, utc_now
from maskcycle.params import parse_overrides, read_settings_yaml
from maskcycle.paths import NOTEBOOKS_DIR
from maskcycle.settings import ConfigError, at_least
from maskcycle.training import slurm

NOTEBOOK = NOTEBOOKS_DIR / "02_training.ipynb"
RENDERED = "02_training.ipynb"
EXIT_NOT_STARTED = 125  # exit status when nothing ran; otherwise the number of failed (or busy) trials
SWEEP_LOCK = ".sweep.lock"  # held in a trial folder while a sweep runs that trial (the trainer holds .lock)


class SweepError(RuntimeError):
    """The sweep cannot start (e.g. no params files, duplicate trial names, no SLURM support)."""


# --- one trial ------------------------------------------------------------------------------
def trial_parameters(params_file: str | Path, overrides: Sequence[str] | dict = ()) -> dict:
    """The settings a trial's params file and overrides give (validated and coerced), with `name`
    defaulting to the file's stem. Raises ConfigError naming the file and key when invalid."""
    params_file = Path(params_file)
    extra = parse_overrides(dict(overrides) if isinstance(overrides, dict) else list(overrides))
    cfg = TrialConfig.from_params(params_file, extra)
    given = set(read_settings_yaml(params_file)) | set(extra) | {"name"}
    return {k: v for k, v in cfg.to_dict().items() if k in given}


def is_finished(trial_dir: str | Path) -> bool:
    """True when the trainer finished every epoch and the trial's notebook ran to the end."""
    return results.trial_status(trial_dir) == "finished" and (Path(trial_dir) / RENDERED).exists()


def run_trial(params_file: str | Path, trial_dir: str | Path, overrides: Sequence[str] = (),
              kernel: str = "maskcycle", env: dict | None = None) -> dict:
    """Render notebooks/02_training.ipynb for one trial into `trial_dir` with papermill.

    Runs papermill in a child process (so `env`, e.g. CUDA_VISIBLE_DEVICES, reaches the kernel),
    never raises for a failing trial, and returns the record it merged into trial_dir/run.json:
    trial, status (finished / stopped / failed), notebook, papermill (failing cell, error name
    and message, or None), trial_wall_s. A trial that another sweep or a training is running is
    left alone (its log, notebook and run.json untouched): status "busy", with the holder named;
    one that finished meanwhile is skipped."""
    params_file, trial_dir = Path(params_file).resolve(), Path(trial_dir).resolve()
    trial_dir.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(trial_dir, "another sweep", SWEEP_LOCK):
            with folder_lock(trial_dir, "a training"):  # only a probe: the trainer takes this lock itself
                pass
            if is_finished(trial_dir):
                return {"trial": trial_dir.name, "status": "finished", "skipped": True}
            return _run_trial(params_file, trial_dir, overrides, kernel, env)
    except FolderBusyError as exc:
        return {"trial": trial_dir.name, "status": "busy", "error": str(exc)}


def _run_trial(params_file: Path, trial_dir: Path, overrides: Sequence[str], kernel: str, env: dict | None) -> dict:
    record = {"trial": trial_dir.name, "params_file": str(params_file), "overrides": list(overrides)}
    t0 = time.perf_counter()
    try:
        trial_parameters(params_file, overrides)
    except (ConfigError, OSError) as exc:
        record.update(status="failed", papermill={"cell": None, "error_name": type(exc).__name__,
                                                  "error_message": str(exc)})
        return _finish(trial_dir, record, t0)
    # notebook 02 builds the same TrialConfig from the same file and overrides (TrialConfig.from_params)
    params = {"params_file": str(params_file), "overrides": [str(o) for o in overrides], "out_dir": str(trial_dir)}
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
    run = results.read_json(trial_dir / "run.json")
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


# --- a sweep --------------------------------------------------------------------------------
def seed_runs(name: str, seed: int, seeds: int) -> list[tuple[str, int]]:
    """(folder name, seed) of each run of a trial: its first seed in `<name>` (as a one-seed
    sweep, so adding seeds later reuses that run), seed + k in `<name>_seed<seed + k>`."""
    return [(name if k == 0 else f"{name}_seed{seed + k}", seed + k) for k in range(seeds)]


def plan_sweep(params_files: Sequence[str | Path], out: str | Path, overrides: Sequence[str] = (),
               seeds: int | None = None):
    """Validate every params file and return jobs [(params_file, run_dir, overrides)], one per
    (trial, seed): `seeds` (else the file's `seeds`, default 1) runs at seed, seed + 1, ...
    Raises ConfigError listing every bad file and key; nothing has run at that point."""
    if not params_files:
        raise SweepError("no params files given")
    if seeds is not None:
        overrides = (*overrides, f"seeds={seeds}")
    problems, jobs, seen = [], [], {}
    for p in map(Path, params_files):
        try:
            values = trial_parameters(p, overrides)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        name = values["name"]
        if name in seen:
            problems.append(f"{p}: trial name {name!r} also used by {seen[name]}")
            continue
        seen[name] = p
        cfg = TrialConfig.from_dict(values)
        runs = seed_runs(name, cfg.seed, cfg.seeds)
        for folder, seed in runs:
            extra = () if len(runs) == 1 else (f"seed={seed}",)
            jobs.append((str(p), str(Path(out) / folder), (*overrides, *extra)))
    clash = sorted({Path(j[1]).name for j in jobs if [Path(k[1]).name for k in jobs].count(Path(j[1]).name) > 1})
    problems += [f"run folder {c!r} would hold two runs (a trial named like another's seed run)" for c in clash]
    problems += [p for p in map(_edited_since, jobs) if p]
    if problems:
        raise ConfigError("invalid params, nothing was run:\n  " + "\n  ".join(problems))
    return jobs


def _edited_since(job) -> str | None:
    """Why a trial folder that already holds a run (finished or resumable) cannot take this job's
    settings, naming the keys that changed; None when they agree or the folder holds no run."""
    params_file, trial_dir, overrides = job
    trial_dir = Path(trial_dir)
    saved = results.trial_settings(trial_dir)
    if not saved or not (is_finished(trial_dir) or (trial_dir / "checkpoints" / "latest.pt").exists()):
        return None
    now = TrialConfig.from_dict(trial_parameters(params_file, overrides)).to_dict()
    changed = [k for k, v in now.items() if k not in RUN_CONTROL_FIELDS and saved.get(k) != v
               and not (k == "dataroot" and Path(str(saved.get(k))).resolve() == Path(v).resolve())]
    if not changed:
        return None
    detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
    state = "finished" if is_finished(trial_dir) else "started"
    return (f"{params_file}: settings changed since trial {trial_dir.name} {state} in {trial_dir} ({detail}); "
            f"to run the new settings move or delete {trial_dir} (or use another --out), else undo the edit")


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
              kernel: str = "maskcycle", echo=print, seeds: int | None = None) -> list[dict]:
    """Validate, skip finished runs, run the rest, write and print summary.csv. Returns one
    record per (trial, seed) run (skipped ones with status 'finished' and skipped=True)."""
    jobs = plan_sweep(params_files, out, overrides, seeds)
    roots = [trial_parameters(p, o).get("dataroot") for p, _, o in jobs]
    check_output(out, [("params", list(params_files)), ("dataroot", [r for r in roots if r])])
    Path(out).mkdir(parents=True, exist_ok=True)
    done = [j for j in jobs if is_finished(j[1])]
    todo = [j for j in jobs if not is_finished(j[1])]
    for j in done:
        echo(f"[sweep] {Path(j[1]).name}: finished earlier, skipped")
    for j in todo:
        resuming = (Path(j[1]) / "checkpoints" / "latest.pt").exists()
        echo(f"[sweep] {Path(j[1]).name}: {'resuming' if resuming else 'queued'}")
    if executor == "local":
        records = run_local(todo, parallel, kernel) if todo else []
    elif executor == "slurm":
        records = list(slurm.run_trials_slurm(todo, run_trial, slurm_options or {})) if todo else []
    else:
        raise SweepError(f"executor {executor!r}: expected 'local' or 'slurm'")
    for r in records:
        msg = r.get("status")
        if msg == "busy":
            msg = f"busy, not run here (its files are left as they are): {r.get('error')}"
        elif r.get("skipped"):
            msg = "finished meanwhile (by another process), skipped"
        if r.get("papermill"):
            pm = r["papermill"]
            msg += f" (cell {pm.get('cell')}: {pm.get('error_name')}: {pm.get('error_message')})"
        echo(f"[sweep] {r.get('trial')}: {msg}")
    skipped = [{"trial": Path(j[1]).name, "status": "finished", "skipped": True} for j in done]
    table = results.write_summary(out)
    echo(table.to_string(index=False) if len(table) else "(no trials)")
    echo(f"[sweep] summary: {Path(out) / 'summary.csv'}")
    return skipped + records


# --- CLI --------------------------------------------------------------------------------
def add_arguments(p) -> None:
    """The `maskcycle sweep` options (used by maskcycle.cli)."""
    p.add_argument("params", nargs="+", help="trial YAMLs (TrialConfig fields); trial name = file stem")
    p.add_argument("--out", required=True, help="sweep folder: one sub-folder per trial + summary.csv")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override settings in every trial")
    p.add_argument("--seeds", type=at_least(1), default=None,
                   help="runs per trial at seed, seed + 1, ... (default: each file's `seeds`, else 1); "
                   "the first in OUT/<trial>, the others in OUT/<trial>_seed<S>")
    p.add_argument("--executor", choices=["local", "slurm"], default="local")
    p.add_argument("--parallel", type=at_least(1), default=None,
                   help="trials at once (default: one per visible GPU, else 1)")
    p.add_argument("--slurm", nargs="*", default=[], metavar="KEY=VALUE",
                   help="options for maskcycle.training.slurm.run_trials_slurm (e.g. partition=gpu)")
    p.add_argument("--kernel", default="maskcycle", help="Jupyter kernel papermill uses")
    slurm.add_arguments(p)


def run_command(args) -> int:
    """Run the sweep; exit status = number of failed or busy trials (0 = all finished), or 125 when
    nothing could start (invalid params, no SLURM support)."""
    args.slurm = slurm.flag_options(args) + list(args.slurm)  # --slurm KEY=VALUE wins over named flags
    try:
        records = run_sweep(args.params, args.out, args.set, args.executor, args.parallel,
                            parse_overrides(args.slurm), args.kernel, seeds=args.seeds)
    except (ConfigError, SweepError) as exc:
        print(f"maskcycle sweep: error: {exc}", file=sys.stderr)
        return EXIT_NOT_STARTED
    failed = [r["trial"] for r in records if r.get("status") == "failed"]
    busy = [r["trial"] for r in records if r.get("status") == "busy"]
    if failed:
        print(f"[sweep] {len(failed)} of {len(records)} trial(s) failed: {', '.join(failed)}", file=sys.stderr)
    if busy:
        print(f"[sweep] {len(busy)} of {len(records)} trial(s) busy in another process, not run here: "
              f"{', '.join(busy)}; rerun the sweep once they end", file=sys.stderr)
    return min(len(failed) + len(busy), EXIT_NOT_STARTED - 1)
