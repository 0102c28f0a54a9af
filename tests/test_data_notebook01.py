"""Notebook 01 runs through papermill on a small demo set and writes the curated set."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "01_data_curation.ipynb"


@pytest.mark.slow
def test_notebook01_runs_on_demo_set(demo_raw, tmp_path):
    import papermill

    out = tmp_path / "curated"
    papermill.execute_notebook(
        str(NB), str(tmp_path / "01.ipynb"), kernel_name="maskcycle", cwd=str(ROOT), progress_bar=False,
        parameters=dict(ffhq_root=str(demo_raw / "ffhq"), maskedfacenet_root=str(demo_raw / "maskedfacenet"),
                        out_dir=str(out), n_train=10, n_test=4, n_val=3, load_size=40, workers=2, sheet_n=8))
    info = json.loads((out / "curation.json").read_text())
    assert info["counts"] == {"testA": 4, "testB": 4, "valA": 3, "valB": 3, "trainA": 10, "trainB": 10}
    assert (out / "figures" / "kept_A.png").exists() and (out / "cache" / "trainA_40.npy").exists()
    text = (tmp_path / "01.ipynb").read_text()
    assert "hit_rate" in text and "blurry" in text


def test_parameters_cell_holds_every_curation_setting():
    """Notebook 01 passes its parameters on as the Settings' own flags: no setting is left out."""
    import dataclasses

    import jupytext

    from maskcycle.data.curate import Settings
    from test_notebooks import literal_assignments

    nb = jupytext.read(ROOT / "notebooks" / "01_data_curation.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    missing = {f.name for f in dataclasses.fields(Settings)} - set(literal_assignments(cell.source))
    assert not missing, f"notebook 01 lacks parameters for curation settings {sorted(missing)}"
