"""One trial on several processes (DDP, gloo on CPU): sharding, launch, equivalence, resume."""

import sys
from pathlib import Path

import pytest
import torch

from conftest import make_image_folders, tiny_config
from maskcycle.config import ConfigError, check_processes
from maskcycle.data.unpaired import UnpairedData
from maskcycle.models.checkpoints import load, load_generators
from maskcycle.models.cyclegan import build as build_cyclegan
from maskcycle.models.runtime import STREAMS, stream_seed, translate_batch
from maskcycle.training import ddp
from maskcycle.training import launch as launch_mod
from maskcycle.training.ddp import Rank
from maskcycle.training.errors import LaunchError
from maskcycle.training.launch import launch
from maskcycle.training.trainer import train


# --- fast: sharding, seeds, validation, the launcher's own logic -----------------------------
def test_ranks_split_each_global_batch_without_overlap():
    n, batch, world = 11, 4, 2
    steps = ddp.n_global_batches(n, batch, world)
    assert steps == 3  # 4 + 4 + the last 3 cut to 2
    wanted = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # item 10 is cut: 3 items cannot split evenly
    for b in range(steps):
        parts = [ddp.rank_items(n, batch, b, Rank(r, world)).tolist() for r in range(world)]
        assert parts == [wanted[b][0::2], wanted[b][1::2]]
    assert ddp.n_global_batches(9, 4, 2) == 2  # a last batch of 1 cannot feed 2 ranks
    assert ddp.n_global_batches(10, 4, 1) == 3  # one process keeps the reference's last batch
    with pytest.raises(IndexError):
        ddp.rank_items(9, 4, 2, Rank(0, 2))


def test_sharded_batches_are_the_global_batch_dealt_out(tmp_path):
    root = make_image_folders(tmp_path / "data", n=6, size=36, splits=("train",))
    cfg = tiny_config(root, batch_size=4, nproc=2)
    data = UnpairedData(root, cfg)
    plan = data.plan(epoch=3)
    for b in range(2):
        full_A, full_B = data.batch(plan, b)
        shares = [ddp.ShardedData(data, cfg.batch_size, Rank(r, 2)).batch(plan, b) for r in range(2)]
        for r, (a, bb) in enumerate(shares):
            assert torch.equal(a, full_A[r::2]) and torch.equal(bb, full_B[r::2])
    assert ddp.ShardedData(data, 4, Rank(1, 2)).n_batches() == data.n_batches() == 2


def test_config_rules_for_several_processes(tiny_data):
    with pytest.raises(ConfigError, match="batch_size.*divisible by nproc"):
        tiny_config(tiny_data, batch_size=3, nproc=2)
    with pytest.raises(ConfigError, match="nnodes"):
        tiny_config(tiny_data, nnodes=0)
    with pytest.raises(ConfigError, match="SyncBatchNorm"):
        tiny_config(tiny_data, norm="batch", nproc=2, device="cpu")
    cfg = tiny_config(tiny_data, norm="batch", batch_size=4, nproc=2)  # device auto: decided at start
    with pytest.raises(ConfigError, match="SyncBatchNorm"):
        check_processes(cfg, "cpu")
    # a multi-process config in a single process (not torchrun, not launched by train) says how to start it
    with pytest.raises(ConfigError, match="launch"):
        ddp.setup(tiny_config(tiny_data, nproc=2), torch.device("cpu"))


def test_rank_seeds_keep_rank0_and_separate_the_others():
    assert stream_seed(7, "pool_B", 0) == 9  # the single-process pool seed
    seeds = {stream_seed(7, s, r) for r in range(1, 4) for s in STREAMS}
    assert len(seeds) == 3 * len(STREAMS) and stream_seed(7, "pool_A", 1) == stream_seed(7, "pool_A", 1)
    assert len(set(STREAMS.values())) == len(STREAMS)  # no two streams share an offset


def _fake_torchrun(monkeypatch, code):
    monkeypatch.setattr(launch_mod, "torchrun_command", lambda *a, **k: [sys.executable, "-c", code])


def test_launch_streams_output_and_thins_progress_bars(monkeypatch, tiny_data, tmp_path):
    _fake_torchrun(monkeypatch, "import sys\nprint('start')\n"
                                "for i in range(50): sys.stdout.write(f'bar {i}\\r')\nprint('done')")
    lines = []
    out = launch(tiny_config(tiny_data, nproc=2), tmp_path / "t", echo=lines.append, progress_every_s=3600)
    assert out == tmp_path / "t"
    assert lines == ["start", "bar 0", "done"]  # the first bar refresh, then none within the hour
    assert not (out / ".launch_config.yaml").exists()


def test_launch_failure_raises_with_the_tail(monkeypatch, tiny_data, tmp_path):
    _fake_torchrun(monkeypatch, "import sys\nfor i in range(100): print('line', i)\n"
                                "sys.exit('worker failed: no images in trainA')")
    with pytest.raises(LaunchError, match=r"(?s)status 1.*line 99.*worker failed: no images") as err:
        launch(tiny_config(tiny_data, nproc=2), tmp_path / "t", echo=lambda s: None, tail_lines=5)
    assert "line 90" not in str(err.value)
    with pytest.raises(ConfigError, match="nnodes"):
        launch(tiny_config(tiny_data, nnodes=2, batch_size=2), tmp_path / "t")


# --- slow: real torchrun with gloo and 2 processes --------------------------------------------
def _nets_max_diff(a: dict, b: dict) -> float:
    return max((a[n][k] - b[n][k]).abs().max().item() for n in ("G_AB", "G_BA", "D_A", "D_B") for k in a[n])


@pytest.mark.slow
def test_two_process_steps_equal_one_process_steps(tiny_data, tmp_path):
    # Instance norm, no pool: DDP's average of per-rank mean gradients is the full-batch mean
    # gradient. SGD keeps updates proportional to gradients (Adam would turn the rounding noise
    # in the exactly-zero gradients of conv biases before an instance norm into +-lr steps).
    cfg = tiny_config(tiny_data, batch_size=4, pool_size=0, norm="instance", n_epochs=1, n_epochs_decay=0,
                      lr_policy="step", optimizer="sgd", lr=0.01)  # 6 images: a batch of 4, then of 2
    launch(cfg.replace(nproc=2), tmp_path / "two", echo=lambda s: None)
    train(cfg, tmp_path / "one", progress=False)
    one, two = load(tmp_path / "one/checkpoints/latest.pt"), load(tmp_path / "two/checkpoints/latest.pt")
    start = build_cyclegan(cfg).state_dict()
    moved = _nets_max_diff(one["model"], start)
    assert moved > 1e-3  # the steps did change the networks
    assert _nets_max_diff(one["model"], two["model"]) < 1e-3 * moved
    rows = [(tmp_path / d / "losses.csv").read_text().splitlines() for d in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) == 3
    for r1, r2 in zip(rows[0][1:], rows[1][1:]):  # logged losses are the global-batch losses
        a, b = (torch.tensor([float(x) for x in r.split(",")]) for r in (r1, r2))
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (r1, r2)


def _assert_same_state(a_dir: Path, b_dir: Path) -> None:
    a, b = load(a_dir / "checkpoints/latest.pt"), load(b_dir / "checkpoints/latest.pt")
    assert (a["epoch"], a["batch"], a["images"]) == (b["epoch"], b["batch"], b["images"])
    assert _nets_max_diff(a["model"], b["model"]) == 0
    for opt in ("opt_G", "opt_D"):
        for pid, st in a["model"][opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b["model"][opt]["state"][pid][k]), f"{opt} {pid}.{k}"
    for ra, rb in zip(a["rank_states"], b["rank_states"]):
        for pool in ("pool_A", "pool_B"):
            assert torch.equal(ra[pool]["images"], rb[pool]["images"])
            assert torch.equal(ra[pool]["rng"], rb[pool]["rng"])
    assert (a_dir / "losses.csv").read_text() == (b_dir / "losses.csv").read_text()


@pytest.mark.slow
def test_two_processes_run_to_the_end_load_in_one_process_and_resume_exactly(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, nproc=2, batch_size=2, pool_size=2, n_epochs=2, n_epochs_decay=0)
    straight = launch(cfg, tmp_path / "straight", echo=lambda s: None)
    run = (straight / "run.json").read_text()
    assert '"status": "finished"' in run and '"world_size": 2' in run and '"backend": "gloo"' in run
    assert (straight / "samples/epoch_002.png").exists() and (straight / "metrics.json").exists()
    assert len((straight / "losses.csv").read_text().splitlines()) == 1 + 2 * 3  # rank 0 alone writes

    # the checkpoints load in a single process
    saved_cfg, G_AB, _ = load_generators(straight / "checkpoints/epoch_002.pt")
    assert saved_cfg == cfg and translate_batch(G_AB, torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    state = load(straight / "checkpoints/latest.pt")
    build_cyclegan(saved_cfg).load_state_dict(state["model"])
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    r0, r1 = state["rank_states"]  # per-rank pools: own history, own seeds
    assert not torch.equal(r0["pool_A"]["images"], r1["pool_A"]["images"])
    assert torch.equal(r0["pool_A"]["images"], state["model"]["pool_A"]["images"])

    # stop after one epoch, resume in a fresh torchrun: every rank ends where the straight run did
    split = launch(cfg, tmp_path / "split", stop_after_epochs=1, echo=lambda s: None)
    assert load(split / "checkpoints/latest.pt")["epoch"] == 2
    launch(cfg, split, echo=lambda s: None)
    _assert_same_state(straight, split)
