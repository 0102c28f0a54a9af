"""Exact resume: a run split across processes (or killed) ends bit-identical to a straight run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import tiny_config
from maskcycle.models.checkpoints import load
from maskcycle.training.errors import NonFiniteLossError
from maskcycle.training.trainer import train


def _run(cfg_path, out, *extra, wait=True):
    cmd = [sys.executable, "-m", "maskcycle.training.trainer", "--config", str(cfg_path), "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same arithmetic in every process
    if wait:
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
        return None
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _assert_same_state(a_dir, b_dir):
    a, b = load(a_dir / "checkpoints/latest.pt"), load(b_dir / "checkpoints/latest.pt")
    assert (a["epoch"], a["batch"], a["images"]) == (b["epoch"], b["batch"], b["images"])
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        for k, v in a["model"][net].items():
            assert torch.equal(v, b["model"][net][k]), f"{net}.{k} differs"
    for opt in ("opt_G", "opt_D"):
        for pid, st in a["model"][opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b["model"][opt]["state"][pid][k]), f"{opt} state {pid}.{k} differs"
    for pool in ("pool_A", "pool_B"):
        assert torch.equal(a["model"][pool]["images"], b["model"][pool]["images"])
    assert a["model"]["sched_G"] == b["model"]["sched_G"]
    assert (a_dir / "losses.csv").read_text() == (b_dir / "losses.csv").read_text()


@pytest.mark.slow
def test_resume_in_a_new_process_is_exact(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, n_epochs=2, n_epochs_decay=0, lr_policy="linear")
    cfg_path = tmp_path / "cfg.yaml"
    cfg.to_yaml(cfg_path)
    _run(cfg_path, tmp_path / "straight")
    _run(cfg_path, tmp_path / "split", "--stop-after-epochs", "1")
    assert load(tmp_path / "split/checkpoints/latest.pt")["epoch"] == 2  # next epoch to run
    _run(cfg_path, tmp_path / "split")
    _assert_same_state(tmp_path / "straight", tmp_path / "split")


@pytest.mark.slow
def test_sigkill_then_resume_matches_the_straight_run(tiny_data, tmp_path):
    # Mid-epoch checkpoints every 2 images; kill as soon as the first one lands.
    cfg = tiny_config(tiny_data, n_epochs=2, n_epochs_decay=1, save_latest_freq=2, gan_mode="vanilla")
    cfg_path = tmp_path / "cfg.yaml"
    cfg.to_yaml(cfg_path)
    _run(cfg_path, tmp_path / "straight")
    proc = _run(cfg_path, tmp_path / "killed", wait=False)
    latest = tmp_path / "killed/checkpoints/latest.pt"
    deadline = time.time() + 120
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    _run(cfg_path, tmp_path / "killed")
    _assert_same_state(tmp_path / "straight", tmp_path / "killed")


def test_same_seed_same_numbers(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, n_epochs=1, n_epochs_decay=0)
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    assert (tmp_path / "a/losses.csv").read_text() == (tmp_path / "b/losses.csv").read_text()
    train(cfg.replace(seed=1), tmp_path / "c", progress=False)
    assert (tmp_path / "a/losses.csv").read_text() != (tmp_path / "c/losses.csv").read_text()


def test_trial_folder_artefacts(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data)
    out = train(cfg, tmp_path / "t", progress=False)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for want in ("config.yaml", "run.json", "metrics.json", "losses.csv", "samples/epoch_001.png",
                 "samples/epoch_002.png", "checkpoints/latest.pt", "checkpoints/epoch_001.pt",
                 "checkpoints/epoch_002.pt"):
        assert want in names
    import json

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["packages"]["torch"] and "device" in run
    assert json.loads((out / "metrics.json").read_text())["finished"] is True
    rows = (out / "losses.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3  # header + 2 epochs x 3 batches (6 images, batch 2)
    # rerunning a finished trial does nothing and keeps the results
    train(cfg, out, progress=False)
    assert (out / "losses.csv").read_text().splitlines() == rows


def test_resume_refuses_other_settings(tiny_data, tmp_path):
    from maskcycle.config import ConfigError

    cfg = tiny_config(tiny_data, n_epochs=1, n_epochs_decay=0)
    train(cfg, tmp_path / "t", progress=False)
    with pytest.raises(ConfigError, match="lr: 0.0002 -> 0.001"):
        train(cfg.replace(lr=0.001), tmp_path / "t", progress=False)


def test_nan_loss_stops_with_named_loss_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    from maskcycle.models import cyclegan

    real_step, calls = cyclegan.train_step, {"n": 0}

    def poisoned(m, a, b):
        losses = real_step(m, a, b)
        calls["n"] += 1
        if calls["n"] == 3:  # third iteration = images 5-6
            losses["cycle_B"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(cyclegan, "train_step", poisoned)  # the family's step, as the trainer calls it
    cfg = tiny_config(tiny_data, save_latest_freq=4)
    with pytest.raises(NonFiniteLossError, match=r"'cycle_B' is nan at iteration 6"):
        train(cfg, tmp_path / "t", progress=False)
    state = load(tmp_path / "t/checkpoints/latest.pt")
    assert state["images"] == 4
    import json

    run = json.loads((tmp_path / "t/run.json").read_text())
    assert run["status"] == "failed" and "cycle_B" in run["error"]
