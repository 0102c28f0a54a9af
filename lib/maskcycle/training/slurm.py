"""Sweeps on a SLURM cluster through submitit: one SLURM job (an array task) per trial.

    maskcycle sweep params/study/*.yaml --out results/study/sweep --executor slurm \\
        --partition gpu --time 24:00:00 --gpus-per-trial 4 --array-parallelism 8
    maskcycle sweep ... --executor slurm --slurm-config cluster.yaml      # the same from a YAML

Each job runs `maskcycle.training.sweep.run_trial(params_file, trial_dir, overrides)`, the very call the
local executor makes (papermill renders notebooks/02_training.ipynb into the trial folder), so
failures are recorded the same way (run.json, summary.csv) and a rerun of the sweep skips finished
trials and resumes the others from their checkpoints. When SLURM preempts a job or its time runs
out, submitit requeues it (up to `max_requeue` times) and the trainer resumes from
`checkpoints/latest.pt`. submitit's logs go to `<sweep>/slurm/<job id>_*` (`folder` option).

Options (flags, `--slurm KEY=VALUE`, or a YAML mapping given as `config`): partition, time
('HH:MM:SS', 'D-HH:MM:SS' or minutes as `timeout_min`), gpus_per_trial, cpus_per_trial, mem_gb,
array_parallelism, account, qos, constraint, job_name, folder, max_requeue, setup (shell lines run
before the job, e.g. `module load cuda`), additional (extra sbatch options as a mapping), cluster
(`slurm`; `local` runs the jobs as local processes through submitit, as the tests do).
A trial with `nproc: N` needs gpus_per_trial >= N on GPUs: its notebook starts torchrun inside
the job (one node; multi-node trials are started by hand, README).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import yaml

from maskcycle.config import TrialConfig
from maskcycle.io import update_run_json
from maskcycle.params import parse_overrides
from maskcycle.settings import ConfigError, add_field_arguments, check_field_types, setting


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """How each trial's job is submitted (checked like every settings class: config.check_field_types)."""

    cluster: Literal["slurm", "local", "debug"] = setting("slurm", "submitit executor (local: processes here)")
    partition: str | None = setting(None, "SLURM partition", flag=True)
    time: str | None = setting(None, "time limit per trial job, e.g. 24:00:00 or 2-00:00:00", flag=True)
    timeout_min: int = setting(24 * 60, "time limit in minutes (set from `time` when given)")
    gpus_per_trial: int = setting(1, "GPUs per trial job (>= the trial's nproc)", flag=True)
    cpus_per_trial: int = setting(8, "CPU cores per trial job", flag=True)
    mem_gb: float | None = setting(None, "memory per trial job", flag=True)
    array_parallelism: int = setting(16, "trial jobs running at once", flag=True)
    account: str | None = setting(None, "SLURM account")
    qos: str | None = setting(None, "SLURM QOS")
    constraint: str | None = setting(None, "SLURM constraint")
    job_name: str = setting("maskcycle", "SLURM job name")
    folder: str | None = setting(None, "submitit logs (default <sweep>/slurm)", flag="--slurm-folder")
    max_requeue: int = setting(3, "requeues after preemption or time-out")
    setup: tuple[str, ...] = setting((), "shell lines run before each job (e.g. module load cuda)")
    additional: dict = dataclasses.field(default_factory=dict, metadata={"help": "extra sbatch options"})

    def __post_init__(self) -> None:
        check_field_types(self, ConfigError)
        for key in ("timeout_min", "array_parallelism", "cpus_per_trial"):
            if getattr(self, key) < 1:
                raise ConfigError(f"key {key!r}: value {getattr(self, key)!r} must be >= 1")
        for key in ("gpus_per_trial", "max_requeue"):
            if getattr(self, key) < 0:
                raise ConfigError(f"key {key!r}: value {getattr(self, key)!r} must be >= 0")


FIELDS = {f.name: f for f in dataclasses.fields(SlurmOptions)}


class SlurmError(RuntimeError):
    """The jobs cannot be submitted (no SLURM here, a bad option value)."""


# --- options -------------------------------------------------------------------------------
def parse_time(text: str) -> int:
    """SLURM's time formats -> minutes (rounded up): MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(f"slurm option 'time': {text!r} is not a SLURM time (e.g. '24:00:00' or '1-12:00:00')")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    return max(1, -(-seconds // 60))


def resolve_options(options: dict | None) -> dict:
    """Defaults < the YAML named by `config` < the other given options; every key and type checked.
    Returns SlurmOptions as a dict, `timeout_min` set from `time` when given."""
    options = dict(options or {})
    values: dict = {}
    if options.get("config"):
        path = Path(options.pop("config"))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read SLURM options ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of SLURM options")
        values.update(_checked(loaded, str(path)))
    options.pop("config", None)
    values.update(_checked(options, "slurm options"))
    if values.get("time") is not None:
        values["timeout_min"] = parse_time(values["time"])
    try:
        resolved = dataclasses.asdict(SlurmOptions(**values))
        return resolved | {"setup": list(resolved["setup"])}  # submitit takes a list
    except ConfigError as exc:
        raise ConfigError(f"slurm option {str(exc).removeprefix('key ')}") from None


def _checked(values: dict, source: str) -> dict:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown SLURM option {unknown[0]!r} (known: {', '.join(sorted(FIELDS))}, config)")
    if values.get("time") is not None and not isinstance(values["time"], str):
        # YAML reads 04:00:00 as the number 14400; minutes and SLURM strings must not be confused
        raise ConfigError(f"{source}: SLURM option 'time': give a quoted string like '04:00:00' "
                          f"(or minutes as timeout_min), got {values['time']!r}")
    out = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        SlurmOptions(**out)  # the types of what this source gave, named with the source
    except ConfigError as exc:
        raise ConfigError(f"{source}: SLURM option {str(exc).removeprefix('key ')}") from None
    return out


# --- CLI flags (added to `maskcycle sweep` by maskcycle.cli) ---------------------------------
def add_arguments(p) -> None:
    """The named SLURM flags of `maskcycle sweep` (with --executor slurm): --slurm-config and the
    SlurmOptions fields marked `flag` (the others through --slurm KEY=VALUE or the YAML)."""
    group = p.add_argument_group("SLURM (with --executor slurm; --slurm KEY=VALUE wins over these)")
    group.add_argument("--slurm-config", dest="slurm_config", default=None, metavar="YAML",
                       help="YAML mapping of SLURM options")
    add_field_arguments(group, SlurmOptions, only=[k for k, f in FIELDS.items() if f.metadata.get("flag")],
                        dest_prefix="slurm_", defaults=False)


def flag_options(args) -> list[str]:
    """The named flags given on the command line as KEY=VALUE strings. Values are JSON (valid
    YAML), so a time like 04:00:00 stays a string through parse_overrides."""
    given = {"config": args.slurm_config} | {k: getattr(args, f"slurm_{k}", None) for k in FIELDS}
    return [f"{key}={json.dumps(value)}" for key, value in given.items() if value is not None]


# --- running ---------------------------------------------------------------------------------
class TrialJob:
    """The callable each SLURM job runs. Its `checkpoint` makes submitit requeue it on preemption
    or time-out; the rerun resumes the trial from its checkpoint."""

    def __init__(self, run: Callable):
        self.run = run

    def __call__(self, params_file, trial_dir, overrides=()):
        return self.run(params_file, trial_dir, overrides)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _check_gpus(jobs: Sequence, opts: dict) -> None:
    if opts["gpus_per_trial"] == 0:
        return  # CPU jobs: nproc processes share the job's cores (gloo)
    for params_file, _, overrides in jobs:
        cfg = TrialConfig.from_yaml(params_file, parse_overrides(list(overrides)))
        if cfg.nnodes > 1:
            raise ConfigError(f"{params_file}: nnodes {cfg.nnodes}: a sweep job is one node; start multi-node "
                              "trials with sbatch + torchrun (README, 'Several GPUs (DDP)')")
        if cfg.nproc > opts["gpus_per_trial"]:
            raise ConfigError(f"{params_file}: nproc {cfg.nproc} needs gpus_per_trial >= {cfg.nproc} "
                              f"(got {opts['gpus_per_trial']})")


def make_executor(opts: dict, folder: Path):
    """A submitit executor for the options (SLURM, or `local` processes)."""
    import submitit

    try:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=opts["cluster"],
                                   slurm_max_num_timeout=opts["max_requeue"])
    except (RuntimeError, ValueError) as exc:
        raise SlurmError(f"cannot use the {opts['cluster']!r} submitit executor here ({exc}); "
                         "is `sbatch` on PATH? Use --executor local otherwise") from None
    params = dict(name=opts["job_name"], timeout_min=opts["timeout_min"], nodes=1, tasks_per_node=1,
                  gpus_per_node=opts["gpus_per_trial"], cpus_per_task=opts["cpus_per_trial"],
                  slurm_array_parallelism=opts["array_parallelism"], slurm_setup=list(opts["setup"]),
                  slurm_additional_parameters=dict(opts["additional"]))
    if opts["mem_gb"] is not None:
        params["mem_gb"] = opts["mem_gb"]
    for key in ("partition", "account", "qos", "constraint"):
        if opts[key] is not None:
            params[f"slurm_{key}"] = opts[key]
    ex.update_parameters(**params)
    return ex


def run_trials_slurm(jobs: Sequence, run: Callable, slurm_options: dict | None = None) -> list[dict]:
    """Submit one job per (params_file, trial_dir, overrides) as one SLURM array, wait for all,
    and return each job's record (run_trial's dict, plus `slurm_job_id` and `slurm_log`).

    `run(params_file, trial_dir, overrides)` is what each job calls: the sweep passes its
    `run_trial`, tests a stand-in; it must be picklable (a top-level function). A job
    that dies without a record (cancelled, out of requeues, node failure) becomes a 'failed'
    record, also written to its trial's run.json, and the others go on."""
    jobs = [(str(p), str(d), tuple(o)) for p, d, o in jobs]
    if not jobs:
        return []
    opts = resolve_options(slurm_options)
    _check_gpus(jobs, opts)
    folder = Path(opts["folder"]) if opts["folder"] else Path(os.path.commonpath([Path(d).resolve().parent
                                                                                  for _, d, _ in jobs])) / "slurm"
    # A trial whose earlier job is still queued or running (the sweep command was interrupted,
    # not its jobs) is left to that job: two jobs must never train into one folder.
    busy = {d: state for _, d, _ in jobs if opts["cluster"] == "slurm" and (state := _active_job(d))}
    todo = [j for j in jobs if j[1] not in busy]
    submitted = []
    if todo:
        ex, job_fn = make_executor(opts, folder), TrialJob(run)
        with ex.batch():  # one sbatch --array for the whole sweep, array_parallelism at a time
            submitted = [ex.submit(job_fn, *job) for job in todo]
    for job, (_, trial_dir, _) in zip(submitted, todo):
        update_run_json(Path(trial_dir), slurm_job_id=str(job.job_id), slurm_log=str(job.paths.stdout))
        print(f"[slurm] {Path(trial_dir).name}: job {job.job_id}, log {job.paths.stdout}", flush=True)
    results = {d: _collect(job, d) for job, (_, d, _) in zip(submitted, todo)}
    for d, (job_id, state) in busy.items():
        print(f"[slurm] {Path(d).name}: job {job_id} is still {state}; not submitted again", flush=True)
        results[d] = {"trial": Path(d).name, "status": "running", "slurm_job_id": job_id, "papermill": None}
    return [results[d] for _, d, _ in jobs]


def _active_job(trial_dir: str) -> tuple[str, str] | None:
    """(job id, state) when the trial's recorded SLURM job is still pending or running, per squeue."""
    try:
        job_id = json.loads((Path(trial_dir) / "run.json").read_text()).get("slurm_job_id")
    except (OSError, ValueError):
        return None
    if not job_id:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True,
                             timeout=60, check=False).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    active = [s for s in out if s in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED",
                                      "RESIZING", "SUSPENDED")]
    return (str(job_id), active[0]) if active else None


def _collect(job, trial_dir: str) -> dict:
    slurm = {"slurm_job_id": str(job.job_id), "slurm_log": str(job.paths.stdout)}
    try:
        record = dict(job.result())
    except Exception as exc:  # submitit raises FailedJobError / UncompletedJobError with the job's log tail
        error = f"SLURM job {job.job_id} ended without a result: {type(exc).__name__}: {str(exc)[-2000:]}"
        Path(trial_dir).mkdir(parents=True, exist_ok=True)
        update_run_json(trial_dir, status="failed", error=error, **slurm)
        return {"trial": Path(trial_dir).name, "status": "failed", "papermill": None, "error": error, **slurm}
    update_run_json(trial_dir, **slurm)
    return {**record, **slurm}
