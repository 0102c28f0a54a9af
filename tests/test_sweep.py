"""maskcycle.training.sweep: validation before anything runs, failing trials recorded, reruns skip, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import make_image_folders
from maskcycle import results
from maskcycle.cli import main as cli_main
from maskcycle.training import sweep

TINY = dict(netG="resnet_6blocks", ngf=8, ndf=8, load_size=36, crop_size=32, n_epochs=1, n_epochs_decay=1,
            batch_size=2, n_samples=2, num_threads=0)


def write_params(folder: Path, name: str, **values) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


# --- fast: validation, executors, summary ---------------------------------------------------
@pytest.mark.parametrize("bad, words", [({"ngff": 8}, ["bad.yaml", "ngff"]),
                                        ({"norm": "group"}, ["bad.yaml", "norm", "group"]),
                                        ({"batch_size": "four"}, ["bad.yaml", "batch_size"])])
def test_invalid_yaml_refuses_before_running_anything(tmp_path, capsys, monkeypatch, bad, words):
    good = write_params(tmp_path / "params", "good", dataroot="x", **TINY)
    broken = write_params(tmp_path / "params", "bad", **{"dataroot": "x", **TINY, **bad})
    ran = []
    monkeypatch.setattr(sweep, "run_trial", lambda *a, **k: ran.append(a))
    out = tmp_path / "sweep"
    code = cli_main(["sweep", str(good), str(broken), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == sweep.EXIT_NOT_STARTED
    for word in words:
        assert word in err
    assert "good.yaml" not in err
    assert not ran and not out.exists()


def test_override_is_validated_too(tmp_path, capsys):
    good = write_params(tmp_path / "params", "good", dataroot="x", **TINY)
    code = cli_main(["sweep", str(good), "--out", str(tmp_path / "s"), "--set", "lr=-1"])
    assert code == sweep.EXIT_NOT_STARTED and "'lr'" in capsys.readouterr().err


def test_plan_names_trials_by_stem_and_rejects_duplicates(tmp_path):
    a = write_params(tmp_path / "p1", "same", dataroot="x")
    b = write_params(tmp_path / "p2", "same", dataroot="x")
    jobs = sweep.plan_sweep([a], tmp_path / "out", ["lr=0.001"])
    assert jobs == [(str(a), str(tmp_path / "out" / "same"), ("lr=0.001",))]
    assert sweep.trial_parameters(a, ["lr=1"]) == {"dataroot": "x", "lr": 1.0, "name": "same"}
    with pytest.raises(sweep.ConfigError, match="also used"):
        sweep.plan_sweep([a, b], tmp_path / "out")


def test_seeds_make_one_resumable_run_per_trial_and_seed(tmp_path, capsys):
    a = write_params(tmp_path / "p", "base", dataroot="x", seed=3, seeds=2)
    b = write_params(tmp_path / "p", "vanilla", dataroot="x", gan_mode="vanilla")
    out = tmp_path / "out"
    jobs = sweep.plan_sweep([a, b], out)
    assert [(Path(j[1]).name, j[2]) for j in jobs] == [("base", ("seed=3",)), ("base_seed4", ("seed=4",)),
                                                        ("vanilla", ())]
    # --seeds wins over the file's entry; the first seed keeps the one-seed folder, so adding seeds reuses it
    jobs = sweep.plan_sweep([a, b], out, seeds=3)
    assert [Path(j[1]).name for j in jobs] == ["base", "base_seed4", "base_seed5", "vanilla", "vanilla_seed1",
                                               "vanilla_seed2"]
    assert all("seeds=3" in j[2] for j in jobs)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["sweep", str(a), "--out", str(out), "--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err
    # a seed run's row: trial = the config's name, its own seed and folder
    _fake_trial(out / "base", seed=3, seeds=2)
    _fake_trial(out / "base_seed4", name="base", seed=4, seeds=2)
    table = results.summary_table(out)
    assert table[["trial", "seed", "run"]].values.tolist() == [["base", 3, "base"], ["base", 4, "base_seed4"]]
    assert "seeds" not in table.columns  # seed and seeds are not swept settings


def test_local_executor_gives_each_trial_its_own_gpu(tmp_path, monkeypatch):
    import threading
    import time

    seen, busy, clashes, lock = [], set(), [], threading.Lock()

    def fake_trial(p, d, o, kernel, env):
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            clashes.append(gpu in busy)
            busy.add(gpu)
            seen.append(gpu)
        time.sleep(0.2)
        with lock:
            busy.discard(gpu)
        return {"trial": d}

    monkeypatch.setattr(sweep, "visible_gpus", lambda: ["3", "5"])
    monkeypatch.setattr(sweep, "run_trial", fake_trial)
    jobs = [(f"p{i}.yaml", f"t{i}", ()) for i in range(5)]
    results = sweep.run_local(jobs)
    assert [r["trial"] for r in results] == ["t0", "t1", "t2", "t3", "t4"]
    assert set(seen) == {"3", "5"} and len(seen) == 5 and not any(clashes)
    monkeypatch.setattr(sweep, "visible_gpus", lambda: [])
    envs = []
    monkeypatch.setattr(sweep, "run_trial", lambda p, d, o, kernel, env: envs.append(env) or {"trial": d})
    sweep.run_local(jobs[:2])
    assert envs == [{}, {}]  # CPU: sequential, nothing hidden


def test_slurm_executor_hands_jobs_to_maskcycle_slurm(tmp_path, monkeypatch):
    p = write_params(tmp_path / "params", "a", dataroot="x")
    calls = []

    def run_trials_slurm(jobs, run, options):
        calls.append((jobs, run, options))
        return [{"trial": Path(d).name, "status": "failed", "papermill": None} for _, d, _ in jobs]

    monkeypatch.setattr(sweep.slurm, "run_trials_slurm", run_trials_slurm)
    results = sweep.run_sweep([p], tmp_path / "out", ["lr=0.001"], executor="slurm",
                              slurm_options={"partition": "gpu"}, echo=lambda *a: None)
    assert calls == [([(str(p), str(tmp_path / "out" / "a"), ("lr=0.001",))], sweep.run_trial, {"partition": "gpu"})]
    assert results[0]["status"] == "failed"



def _fake_trial(folder: Path, status="finished", eval_metrics=None, **settings):
    folder.mkdir(parents=True)
    from maskcycle.config import TrialConfig

    TrialConfig(**{"name": folder.name, **settings}).to_yaml(folder / "config.yaml")
    (folder / "run.json").write_text(json.dumps({"status": status, "trial_wall_s": 12.5}))
    (folder / "metrics.json").write_text(json.dumps({"epochs_done": 3, "epochs_total": 3, "images_seen": 60,
                                                     "train_wall_s": 10.0, "finished": status == "finished"}))
    if eval_metrics:
        (folder / "eval").mkdir()
        (folder / "eval" / "metrics.json").write_text(json.dumps(eval_metrics))


def test_summary_lists_varied_settings_and_merges_eval_metrics(tmp_path):
    _fake_trial(tmp_path / "b16", batch_size=16, eval_metrics={"FID_AB": 17.07, "FID_BA": 50.1, "note": "x",
                                                                 "kid": {"AB": 0.01}})
    _fake_trial(tmp_path / "b32", batch_size=32, gan_mode="vanilla")
    _fake_trial(tmp_path / "rms", status="failed", optimizer="rmsprop")
    (tmp_path / "not_a_trial").mkdir()
    table = results.write_summary(tmp_path)
    on_disk = pd.read_csv(tmp_path / "summary.csv")
    assert list(on_disk["trial"]) == ["b16", "b32", "rms"]
    assert list(table.columns[:6]) == ["trial", "seed", "run", "gan_mode", "optimizer", "batch_size"]  # schema order
    assert {"status", "epochs", "train_wall_s", "img_per_s", "FID_AB", "FID_BA"} <= set(table.columns)
    assert not {"kid", "ngf", "name"} & set(table.columns)  # nested values and unvaried settings stay out
    assert on_disk.loc[0, "FID_AB"] == 17.07 and pd.isna(on_disk.loc[1, "FID_AB"])
    assert list(on_disk["status"]) == ["finished", "finished", "failed"]
    assert on_disk.loc[0, "img_per_s"] == 6.0 and on_disk.loc[0, "epochs"] == 3


# --- slow: real papermill trials -------------------------------------------------------------
@pytest.mark.slow
def test_failing_trial_is_recorded_others_finish_and_rerun_skips(tmp_path, capsys):
    data = make_image_folders(tmp_path / "data", n=2, size=36)
    params = tmp_path / "params"
    good = write_params(params, "good", dataroot=str(data), **TINY)
    bad = write_params(params, "broken", dataroot=str(tmp_path / "no_such_data"), **TINY)
    out = tmp_path / "sweep"
    # an interrupted trial: one of its two epochs done; the sweep must resume it, not restart it
    from maskcycle.config import TrialConfig
    from maskcycle.training.trainer import train

    train(TrialConfig.from_yaml(good, {"name": "good"}), out / "good", stop_after_epochs=1, progress=False)
    first_epoch = (out / "good" / "losses.csv").read_text()

    code = cli_main(["sweep", str(bad), str(good), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1  # one failed trial
    assert "good: resuming" in printed
    assert (out / "good" / "losses.csv").read_text().startswith(first_epoch)
    good_run = json.loads((out / "good" / "run.json").read_text())
    assert [a["status"] for a in good_run["attempts"]] == ["stopped"] and good_run["status"] == "finished"
    run = json.loads((out / "broken" / "run.json").read_text())
    assert run["status"] == "failed"
    pm = run["papermill"]
    assert pm["error_name"] == "FileNotFoundError" and "no_such_data" in pm["error_message"]
    assert "nproc" in pm["source_first_line"] and isinstance(pm["cell"], int)  # the training cell
    assert (out / "broken" / "02_training.ipynb").exists()
    assert sweep.is_finished(out / "good")
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["trial"]) == ["broken", "good"]
    assert list(summary["status"]) == ["failed", "finished"]
    assert "dataroot" not in summary.columns and "FileNotFoundError" in summary.loc[0, "error"]
    assert "good" in printed and "img_per_s" in printed

    stamp = (out / "good" / "02_training.ipynb").stat().st_mtime_ns
    results = sweep.run_sweep([bad, good], out, echo=lambda *a: None)
    assert {r["trial"]: r.get("skipped", False) for r in results} == {"good": True, "broken": False}
    assert (out / "good" / "02_training.ipynb").stat().st_mtime_ns == stamp
    assert len(json.loads((out / "broken" / "run.json").read_text())["attempts"]) >= 1


@pytest.mark.parametrize("lock, holder", [(sweep.SWEEP_LOCK, "another sweep"), (".lock", "a training")])
def test_a_trial_busy_in_another_process_is_reported_busy_and_left_untouched(tmp_path, capsys, lock, holder):
    """Two sweeps into one --out (or a sweep over a trial that `maskcycle train` is running): the
    second leaves the running trial's log, notebook and run.json alone and says it is busy."""
    from maskcycle.io import folder_lock

    params = write_params(tmp_path / "params", "t", dataroot=str(tmp_path / "data"), **TINY)
    trial = tmp_path / "sweep" / "t"
    trial.mkdir(parents=True)
    files = {"papermill.log": "epoch 1 of the running trial\n", "run.json": '{"status": "running"}\n',
             "02_training.ipynb": "{}"}
    for name, text in files.items():
        (trial / name).write_text(text)
    with folder_lock(trial, holder, lock):  # held here as the other process would hold it
        code = cli_main(["sweep", str(params), "--out", str(tmp_path / "sweep")])
    captured = capsys.readouterr()
    assert code == 1 and f"t: busy, not run here (its files are left as they are): {trial}: {holder}" in captured.out
    assert "1 of 1 trial(s) busy in another process, not run here: t" in captured.err
    assert {name: (trial / name).read_text() for name in files} == files
    # free again, and the other process finished the trial meanwhile: skipped, not rerun
    (trial / "run.json").write_text('{"status": "finished"}\n')
    (trial / "metrics.json").write_text('{"finished": true}\n')
    log = (trial / "papermill.log").read_text()
    assert sweep.run_trial(params, trial) == {"trial": "t", "status": "finished", "skipped": True}
    assert (trial / "papermill.log").read_text() == log


def test_one_rule_for_finished_in_every_table(tmp_path):
    """results.trial_status is what sweep, evaluation and survey use: run.json's status, and
    'finished' only when metrics.json says every epoch ran."""
    _fake_trial(tmp_path / "done")
    _fake_trial(tmp_path / "short")
    metrics = json.loads((tmp_path / "short" / "metrics.json").read_text())
    (tmp_path / "short" / "metrics.json").write_text(json.dumps({**metrics, "finished": False}))
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "metrics.json").write_text(json.dumps({"finished": True}))  # no run.json, no config
    assert [p.name for p in results.find_trials(tmp_path)] == ["done", "short"]
    assert results.trial_status(tmp_path / "done") == "finished"
    assert results.trial_status(tmp_path / "short") == "stopped"
    assert results.trial_status(tmp_path / "bare") == "finished"
    assert not sweep.is_finished(tmp_path / "done")  # the sweep also needs its rendered notebook
    (tmp_path / "done" / sweep.RENDERED).write_text("{}")
    assert sweep.is_finished(tmp_path / "done")


@pytest.mark.slow
def test_one_trial_of_each_model_through_papermill(tmp_path):
    """A sweep of CycleGAN, CUT, FastCUT and pix2pix (1 epoch each, tiny), evaluated: each
    one-way trial fills only its direction's columns and the table says which."""
    from conftest import TINY_CUT, TINY_PIX2PIX, add_train_pairs, make_paired_curated, register_tiny_extractor
    from maskcycle.evaluation.evaluate import evaluate_sweep

    data = add_train_pairs(make_paired_curated(tmp_path / "data", n_train=4, n_test=2))
    one = dict(TINY, n_epochs=1, n_epochs_decay=0, dataroot=str(data))
    params = tmp_path / "params"
    files = [write_params(params, "cyclegan", **one),
             write_params(params, "cut_AB", **one, **TINY_CUT, direction="AB"),
             write_params(params, "fastcut_BA", **one, **dict(TINY_CUT, model="fastcut"), direction="BA"),
             write_params(params, "pix2pix_BA", **{**one, **TINY_PIX2PIX}, direction="BA")]
    out = tmp_path / "sweep"
    assert cli_main(["sweep", *map(str, files), "--out", str(out)]) == 0
    table = evaluate_sweep(out, feature_extractor=register_tiny_extractor(), device="cpu", progress=False)
    rows = table.set_index("trial")
    assert rows.loc["cyclegan", "directions"] == "AB,BA" and rows.loc["cut_AB", "directions"] == "AB"
    assert list(rows["model"]) == ["cut", "cyclegan", "fastcut", "pix2pix"]
    assert (rows["status"] == "finished").all()
    for trial, filled in (("cyclegan", "AB,BA"), ("cut_AB", "AB"), ("fastcut_BA", "BA"), ("pix2pix_BA", "BA")):
        for d in ("AB", "BA"):
            assert pd.notna(rows.loc[trial, f"FID_{d}"]) == (d in filled), (trial, d)
            assert pd.notna(rows.loc[trial, f"psnr_{d}"]) == (d in filled), (trial, d)
        assert (out / trial / "eval" / "fakes_AB").is_dir() == ("AB" in filled)
    losses = pd.read_csv(out / "cut_AB" / "losses.csv")
    assert {"NCE", "NCE_Y", "G_GAN"} <= set(losses.columns)
