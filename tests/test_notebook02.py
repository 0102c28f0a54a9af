"""notebooks/02_training.ipynb: parameters cell = params file, overrides, output folder; papermill
renders every artefact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import make_image_folders
from maskcycle.config import defaults
from test_notebooks import literal_assignments

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_training.ipynb"


def parameters_cell(nb) -> nbformat.NotebookNode:
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{NOTEBOOK}: expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def test_parameters_cell_is_the_params_file_overrides_and_output_folder():
    cell = parameters_cell(nbformat.read(str(NOTEBOOK), as_version=4))
    assert set(literal_assignments(cell.source)) == {"params_file", "overrides", "out_dir"}
    assert len(cell.source.splitlines()) <= 6
    assert (ROOT / literal_assignments(cell.source)["params_file"]).is_file()


@pytest.mark.slow
def test_papermill_with_params_file_renders_every_artefact(tmp_path):
    data = make_image_folders(tmp_path / "data", n=2, size=36)
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump(dict(
        dataroot=str(data), netG="resnet_6blocks", ngf=16, ndf=8, load_size=36, crop_size=32,
        n_epochs=1, n_epochs_decay=1, batch_size=2, n_samples=2, num_threads=0, save_epoch_freq=1)))
    out, rendered = tmp_path / "trial", tmp_path / "rendered.ipynb"
    # exactly the documented command: papermill NOTEBOOK OUT -p params_file ... -p overrides ... -p out_dir ...
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(rendered), "-k", "maskcycle",
                           "-p", "params_file", str(params), "-p", "overrides", "ngf=8 n_epochs=1",
                           "-p", "out_dir", str(out), "--no-progress-bar"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["git"]["commit"] and run["start"] and run["end"]
    assert run["packages"]["torch"] and run["device"]["requested"] == "auto"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["ngf"] == 8 and cfg["name"] == "tiny" and set(cfg) == set(defaults())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["epochs_done"] == 2
    header = (out / "losses.csv").read_text().splitlines()[0].split(",")
    assert header[4:] == ["D_A", "G_AB", "cycle_A", "idt_AB", "D_B", "G_BA", "cycle_B", "idt_BA"]
    for rel in ("samples/epoch_001.png", "samples/epoch_002.png", "checkpoints/latest.pt",
                "checkpoints/epoch_002.pt", "figures/loss_curves.png", "figures/fakes_by_epoch.png",
                "figures/final_samples.png"):
        assert (out / rel).stat().st_size > 0, rel

    nb = nbformat.read(str(rendered), as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "loss curves, fakes by epoch and final samples should be shown inline"
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "img_per_s" in text
    assert nb.metadata["papermill"]["parameters"]["overrides"] == "ngf=8 n_epochs=1"
