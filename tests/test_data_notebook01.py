"""Notebook 01 runs through papermill on a small demo set and writes the curated set."""

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "01_data_curation.ipynb"


def test_committed_notebook_has_no_outputs_and_a_literal_parameters_cell():
    nb = nbformat.read(NB, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    import ast

    for node in ast.parse(code[0].source).body:  # literals only
        assert isinstance(node, ast.Assign)
        ast.literal_eval(node.value)


@pytest.mark.slow
def test_notebook01_runs_on_demo_set(demo_raw, tmp_path):
    import papermill

    out = tmp_path / "curated"
    papermill.execute_notebook(
        str(NB), str(tmp_path / "01.ipynb"), kernel_name="maskcycle", cwd=str(ROOT), progress_bar=False,
        parameters=dict(ffhq_root=str(demo_raw / "ffhq"), maskedfacenet_root=str(demo_raw / "maskedfacenet"),
                        out_dir=str(out), n_train=10, n_test=4, load_size=40, workers=2, sheet_n=8))
    info = json.loads((out / "curation.json").read_text())
    assert info["counts"] == {"testA": 4, "testB": 4, "trainA": 10, "trainB": 10}
    assert (out / "figures" / "kept_A.png").exists() and (out / "cache" / "trainA_40.npy").exists()
    text = (tmp_path / "01.ipynb").read_text()
    assert "hit_rate" in text and "blurry" in text
