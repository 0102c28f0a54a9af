"""Every notebook: a jupytext py:percent file paired with an output-free .ipynb on the project's
kernel, in sync, with one literal-only parameters cell (papermill injects after it and recomputes
nothing inside it)."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_the_four_study_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]
    assert not list((ROOT / "notebooks").glob("make_*.py")), "notebooks are jupytext files, not builder scripts"


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_its_py_percent_file(script):
    paired = script.with_suffix(".ipynb")
    assert paired.exists(), f"{paired} is missing: jupytext --sync {script.relative_to(ROOT)}"
    text = jupytext.read(script)
    assert text.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    committed = nbformat.read(paired, as_version=4)
    assert cells(committed) == cells(text), f"{paired.name} differs from {script.name}: jupytext --sync {script}"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_ipynb_has_no_outputs_and_the_project_kernel(script):
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{script.stem} cell {i} has outputs"
    assert nb.metadata["kernelspec"]["name"] == "maskcycle"


def literal_assignments(source: str) -> dict:
    """name -> value of every `name = <literal>`; anything else in the cell is an error."""
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"parameters cell may hold only `name = literal` lines, found: {ast.unparse(node)}"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # raises for a non-literal
    return values


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_literal_only_parameters_cell(script):
    nb = jupytext.read(script)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{script.name}: expected one cell tagged parameters, found {len(tagged)}"
    assert literal_assignments(tagged[0].source)
