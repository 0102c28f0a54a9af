"""Notebook 03 through papermill on a tiny finished sweep, offline: FID is recorded as unavailable
with the reason and the table, charts and paired metrics are still produced. The committed
notebook has no outputs and a literal-only parameters cell."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from conftest import make_tiny_sweep
from maskcycle.evaluation import fid as fidlib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_fid_evaluation.ipynb"


@pytest.mark.slow
def test_notebook03_runs_offline_on_a_tiny_sweep(tmp_path):
    trials = {"baseline": {}, "bs3_vanilla": {"batch_size": 3, "gan_mode": "vanilla"}}
    sweep, curated = make_tiny_sweep(tmp_path, trials, n_val=3)
    out = tmp_path / "03.ipynb"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    env.pop(fidlib.WEIGHTS_ENV, None)
    cmd = [sys.executable, "-m", "papermill", "-k", "maskcycle", str(NOTEBOOK), str(out),
           "-p", "sweep_dir", str(sweep), "-p", "curated_dir", str(curated), "-p", "inception_download", "False",
           "--cwd", str(ROOT)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    nb = nbformat.read(out, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "FID/KID unavailable" in text and fidlib.INCEPTION_WEIGHTS_FILE in text
    assert text.count("image/png") >= 7  # forest, bias, bars, curves, paired plot, two example grids
    table = pd.read_csv(sweep / "summary.csv")
    # each learned trial also with mask-guided compositing (issue 22)
    assert list(table["trial"]) == ["baseline", "baseline+composite", "bs3_vanilla", "bs3_vanilla+composite"]
    # it opens with the answer: the short table from comparison.csv (one seed: within-run intervals, said)
    first_outputs = json.dumps([c.get("outputs", []) for c in nb.cells[:8]])
    assert "diff to baseline [95% CI]" in first_outputs and "within-run bootstrap over test images" in first_outputs
    comp = pd.read_csv(sweep / "comparison.csv")
    assert {"baseline", "bs3_vanilla"} <= set(comp["trial"]) and comp["p_holm"].notna().any()
    assert (table["epoch_chosen_on"] == "val").all() and "optimistic" in text
    for name in ("forest.png", "sample_count_bias.png"):
        assert (sweep / "eval_figures" / name).is_file(), name
    assert table["FID_AB"].isna().all() and table["psnr_BA_mask"].notna().all()
    assert any(c.source.startswith("## Every family side by side") for c in nb.cells)
    # face features and identity are computed offline and shown (issue 12)
    assert "identity rate" in text and "FD_face" in text
    for col in ("fd_face_AB", "kd_face_BA", "id_rate_AB", "id_dist_BA"):
        assert table[col].notna().all(), col
    assert (table["id_reference_BA"] == "counterpart").all()
    assert (sweep / "eval_figures" / "fid_per_direction.png").is_file()
    assert (sweep / "baseline" / "eval" / "paired.csv").is_file()
