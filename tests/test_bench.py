"""`maskcycle bench` runs on a tiny config and writes what BENCHMARKS.md quotes (no timing asserts)."""

import json

import pytest
import torch

from maskcycle.cli import main
from maskcycle.models.cyclegan import LOSS_NAMES
from maskcycle.training import bench


def test_bench_command_on_a_tiny_config(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    rc = main(["bench", "--configs", "tiny", "--paths", "plain,auto,bf16_cl", "--rounds", "2", "--iters", "1",
               "--warmup", "1", "--threads", "1", "--out", str(out)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # --threads does not leak into the caller
    result = json.loads(out.read_text())
    assert result["machine"]["torch"] == torch.__version__ and result["machine"]["torch_threads"] == 1
    c = result["configs"]["tiny"]
    assert list(c["paths"]) == ["plain", "auto", "bf16_cl"]
    for name, p in c["paths"].items():
        assert len(p["ms_per_iter_by_round"]) == 2 and all(t > 0 for t in p["ms_per_iter_by_round"])
        assert p["median_img_per_s"] == pytest.approx(1000 / p["median_ms_per_iter"], rel=1e-2)
        assert p["ratio_vs_plain"] > 0 and p["rss_mb_max"] > 0 and p["first_iter_s"] > 0
        assert len(c["trajectory"][name]) == 3  # warmup + 2 rounds x 1 iteration, 8 losses each
        assert all(len(row) == 8 for row in c["trajectory"][name])
    assert c["paths"]["plain"]["ratio_vs_plain"] == 1.0
    # same seed, same batches: the first step's losses of the paths differ only by rounding
    assert c["trajectory_comparison"]["bf16_cl"]["cycle_A"]["first_step_abs_diff"] < 0.1
    out_text = capsys.readouterr().out
    assert "tiny  plain" in out_text
    # it tells the user what this machine computes natively and what `auto` picks here
    picks = result["machine"]["auto_picks"]
    assert picks["precision"] == ("bf16" if result["machine"]["capability"]["bf16_native"] else "fp32")
    assert f"auto picks: precision {picks['precision']}" in out_text and "bf16 native:" in out_text


def test_bench_rejects_unknown_names(capsys):
    assert main(["bench", "--configs", "C9"]) == 2
    assert "C9" in capsys.readouterr().err
    assert main(["bench", "--configs", "tiny", "--paths", "plain,turbo"]) == 2
    assert "turbo" in capsys.readouterr().err


def test_compare_windows():
    same = [[float(i + k) for k in range(8)] for i in range(10)]
    r = bench.compare(same, same, LOSS_NAMES, window=5)
    assert r["iterations"] == 10 and r["window"] == 5
    assert all(r[n]["max_abs_diff"] == 0 for n in LOSS_NAMES)
    shifted = [[v + (1.0 if k == 2 else 0.0) for k, v in enumerate(row)] for row in same]
    r = bench.compare(same, shifted, LOSS_NAMES, window=5)
    assert r["cycle_A"]["max_abs_diff"] == pytest.approx(1.0) and r["D_A"]["max_abs_diff"] == 0
