"""scripts/gpu_check.sh: valid bash, and its tiny CPU mode runs every step (no GPU needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_check_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.slow
def test_gpu_check_tiny_mode_on_cpu(tmp_path):
    """Every step of the H200 script at toy sizes on the CPU (the compiled bench is GPU only)."""
    env = {**os.environ, "TINY": "1", "DEVICE": "cpu", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    subprocess.run(["bash", str(SCRIPT)], check=True, env=env, cwd=ROOT, capture_output=True, timeout=900)
    steps = json.loads((tmp_path / "steps.json").read_text())["steps"]
    assert [s["step"] for s in steps] == ["norm_check", "bench_b16", "bench_b1", "demo_data", "curate",
                                          "trial", "translate"]
    assert all(s["rc"] == 0 for s in steps), steps
    assert json.loads((tmp_path / "norm_check.json").read_text())["ok"]
    bench = json.loads((tmp_path / "bench_b16.json").read_text())["configs"]["tiny"]
    assert set(bench["paths"]) == {"plain", "fast", "batched", "fast_batched"}
    assert json.loads((tmp_path / "trial_metrics.json").read_text())["finished"]
    assert json.loads((tmp_path / "translate.json").read_text())["checkpoint"]  # the trial's generator
