"""Notebook 04 end to end: a quiz, simulated answers, papermill; the simulator's parameters come back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from maskcycle.survey import simulate as survey_sim

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "04_survey_analysis.ipynb"


@pytest.mark.slow
def test_notebook_recovers_simulated_parameters(tmp_path):
    from test_survey_page import build

    page = build(tmp_path, n=22, n_practice=2, n_attention=2, n_images=16)
    responses = tmp_path / "responses_simulated"
    params = survey_sim.SimParams(n_participants=80, dprime=1.0, criterion=0.25, seed=2)
    survey_sim.simulate(page.parent, responses, params)
    out_nb, summary = tmp_path / "04.ipynb", tmp_path / "analysis_simulated.json"
    subprocess.run([sys.executable, "-m", "papermill", "-k", "maskcycle", str(NB), str(out_nb),
                    "-p", "survey_dir", str(page.parent), "-p", "responses_dir", str(responses),
                    "-p", "summary_out", str(summary), "-p", "n_boot", "500", "--no-progress-bar"],
                   check=True, cwd=tmp_path, capture_output=True)
    s = json.loads(summary.read_text())
    assert s["simulation"]["simulated"] and s["n_participants"] == 80
    rec = {r["parameter"]: r for r in s["recovery"]}
    assert set(rec) == {"dprime (pooled)", "criterion (pooled)", "fool rate", "real error rate"}
    for name, r in rec.items():
        assert r["lo"] <= r["simulated"] <= r["hi"], (name, r)
    assert s["published"]["wrong_implied_by_reported_mean"] == pytest.approx(876)
    text = "".join(str(o) for c in nbformat.read(out_nb, as_version=4).cells for o in c.get("outputs", []))
    assert "SIMULATED DATA" in text and "all recovered: True" in text and "40.05 %" in text
