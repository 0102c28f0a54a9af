"""maskcycle.training.slurm: options, and trials run as submitit jobs (its local executor stands in for SLURM)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cloudpickle
import pytest
import yaml

from conftest import make_image_folders
from maskcycle.params import parse_overrides
from maskcycle.settings import ConfigError
from maskcycle.training import slurm, sweep

LOCAL = {"cluster": "local", "gpus_per_trial": 0, "cpus_per_trial": 1, "timeout_min": 10}
TINY = dict(netG="resnet_6blocks", ngf=8, ndf=8, load_size=36, crop_size=32, n_epochs=1, n_epochs_decay=1,
            batch_size=2, n_samples=2, num_threads=0)

# The stand-in trial below travels to the job processes by value (this module is not importable there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def stand_in_trial(params_file, trial_dir, overrides=()):
    """Like sweep.run_trial: writes run.json and returns a record; a 'broken' trial raises."""
    import json as _json
    import os as _os
    from pathlib import Path as _Path

    if "broken" in str(params_file):
        raise RuntimeError(f"{params_file}: broken on purpose")
    d = _Path(trial_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(_json.dumps({"status": "finished", "pid": _os.getpid()}))
    return {"trial": d.name, "status": "finished", "overrides": list(overrides), "pid": _os.getpid()}


# --- options ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("04:00:00", 240), ("1-12", 2160),
                                           ("2-00:30", 2910), ("0-00:00:30", 1)])
def test_slurm_times(text, minutes):
    assert slurm.parse_time(text) == minutes


def test_options_merge_yaml_then_flags_and_reject_bad_keys(tmp_path):
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text("partition: gpu\ntime: '2-00:00:00'\ngpus_per_trial: 4\nsetup: [module load cuda]\n")
    opts = slurm.resolve_options({"config": str(cfg), "partition": "long", "array_parallelism": 2})
    assert (opts["partition"], opts["timeout_min"], opts["gpus_per_trial"], opts["array_parallelism"]) == \
        ("long", 2880, 4, 2)
    assert opts["setup"] == ["module load cuda"]
    with pytest.raises(ConfigError, match="cluster.yaml.*'gpus'"):
        cfg.write_text("gpus: 4\n")
        slurm.resolve_options({"config": str(cfg)})
    with pytest.raises(ConfigError, match="quoted string"):  # YAML 1.1 reads 24:00:00 as 86400
        slurm.resolve_options(parse_overrides(["time=24:00:00"]))
    with pytest.raises(ConfigError, match="array_parallelism"):
        slurm.resolve_options({"array_parallelism": 0})


def test_named_flags_become_options_and_explicit_ones_win():
    p = argparse.ArgumentParser()
    p.add_argument("--slurm", nargs="*", default=[])
    slurm.add_arguments(p)
    args = p.parse_args(["--time", "04:00:00", "--partition", "gpu", "--gpus-per-trial", "2",
                         "--slurm", "partition=debug"])
    opts = slurm.resolve_options(parse_overrides(slurm.flag_options(args) + args.slurm))
    assert (opts["timeout_min"], opts["partition"], opts["gpus_per_trial"]) == (240, "debug", 2)


def test_cli_sweep_accepts_the_slurm_flags():
    from maskcycle.cli import build_parser

    args = build_parser().parse_args(["sweep", "a.yaml", "--out", "o", "--executor", "slurm",
                                      "--slurm-config", "c.yaml", "--array-parallelism", "3"])
    assert slurm.flag_options(args) == ['config="c.yaml"', "array_parallelism=3"]


def test_trial_needing_more_gpus_than_a_job_has_is_refused(tmp_path):
    params = tmp_path / "ddp.yaml"
    params.write_text(yaml.safe_dump({"nproc": 4, "batch_size": 16}))
    with pytest.raises(ConfigError, match="nproc 4 needs gpus_per_trial >= 4"):
        slurm.run_trials_slurm([(params, tmp_path / "t", ())], sweep.run_trial,
                               {"cluster": "local", "gpus_per_trial": 2})


def test_no_slurm_here_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(slurm.SlurmError, match="sbatch"):
        slurm.make_executor(slurm.resolve_options({}), tmp_path / "logs")


# --- submitit's local executor ----------------------------------------------------------------
def test_jobs_run_as_submitit_jobs_and_a_failing_one_is_recorded(tmp_path):
    jobs = [(tmp_path / "p" / "good.yaml", tmp_path / "sweep" / "good", ("lr=0.001",)),
            (tmp_path / "p" / "broken.yaml", tmp_path / "sweep" / "broken", ())]
    results = slurm.run_trials_slurm(jobs, stand_in_trial, LOCAL)
    good, broken = results
    assert good["status"] == "finished" and good["overrides"] == ["lr=0.001"]
    assert good["pid"] != __import__("os").getpid()  # it ran in a job process
    assert broken["status"] == "failed" and "broken on purpose" in broken["error"]
    for r, name in ((good, "good"), (broken, "broken")):
        run = json.loads((tmp_path / "sweep" / name / "run.json").read_text())
        assert run["slurm_job_id"] == r["slurm_job_id"]
        assert Path(r["slurm_log"]).parent.parent == tmp_path / "sweep" / "slurm"
    assert json.loads((tmp_path / "sweep" / "broken" / "run.json").read_text())["status"] == "failed"


def test_trial_job_requeues_itself_when_checkpointed():
    job = slurm.TrialJob(stand_in_trial)
    again = job.checkpoint("a.yaml", "t", ())
    assert again.function is job and again.args == ("a.yaml", "t", ())


@pytest.mark.slow
def test_real_sweep_through_submitit_then_rerun_skips(tmp_path):
    data = make_image_folders(tmp_path / "data", n=2, size=36)
    params = tmp_path / "params" / "tiny.yaml"
    params.parent.mkdir()
    params.write_text(yaml.safe_dump({"dataroot": str(data), **TINY}))
    out = tmp_path / "sweep"
    results = sweep.run_sweep([params], out, executor="slurm", slurm_options=LOCAL, echo=lambda *a: None)
    assert [r["status"] for r in results] == ["finished"], results
    run = json.loads((out / "tiny" / "run.json").read_text())
    assert run["status"] == "finished" and run["slurm_job_id"] == results[0]["slurm_job_id"]
    assert sweep.is_finished(out / "tiny") and (out / "summary.csv").exists()
    again = sweep.run_sweep([params], out, executor="slurm", slurm_options=LOCAL, echo=lambda *a: None)
    assert again == [{"trial": "tiny", "status": "finished", "skipped": True}]


def test_a_trial_whose_job_still_runs_is_not_submitted_again(tmp_path, monkeypatch):
    # The sweep command was interrupted but its SLURM job lives on: a rerun must leave it alone.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho RUNNING\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # squeue, and no sbatch: nothing may be submitted
    trial = tmp_path / "sweep" / "a"
    trial.mkdir(parents=True)
    (trial / "run.json").write_text(json.dumps({"status": "running", "slurm_job_id": "4242_0"}))
    results = slurm.run_trials_slurm([(tmp_path / "a.yaml", trial, ())], sweep.run_trial, {"gpus_per_trial": 0})
    assert results == [{"trial": "a", "status": "running", "slurm_job_id": "4242_0", "papermill": None}]
