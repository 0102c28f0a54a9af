"""Building the committed notebooks from their scripts (notebooks/make_*.py): one kernel, stable ids."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_notebook

KERNELSPEC = {"name": "maskcycle", "display_name": "Python (maskcycle)", "language": "python"}


def study_notebook(cells) -> nbformat.NotebookNode:
    """A notebook without outputs on the project's kernel (the one papermill and JupyterLab use),
    with stable cell ids so that rebuilding gives the same file."""
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb
