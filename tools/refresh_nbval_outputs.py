"""Store golden outputs in the ``# NBVAL_CHECK_OUTPUT`` cells of notebooks, and only there.

nbval (lax mode) compares a marked cell only when the committed notebook holds its
output, so after a deliberate change to a summary figure run::

    .venv/bin/python tools/refresh_nbval_outputs.py notebooks/data_sanity.ipynb

It executes the notebook with its default parameters (papermill), copies the stream
outputs of marked cells into the source notebook and clears every other output.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
import papermill as pm

from research_lib.notebooks import kernel_env

MARK = "NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, kernel_env():
        out = Path(tmp) / path.name
        pm.execute_notebook(str(path), str(out), progress_bar=False, kernel_name="python3",
                            cwd=str(path.resolve().parents[1]))
        executed = nbformat.read(str(out), as_version=4)
    nb = nbformat.read(str(path), as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and "injected-parameters"
           not in c.metadata.get("tags", [])]
    src = [c for c in nb.cells if c.cell_type == "code"]
    assert len(ran) == len(src), "cell count changed while executing"
    for mine, theirs in zip(src, ran, strict=True):
        if MARK in mine.source:
            mine.outputs = [o for o in theirs.outputs if o.output_type == "stream"]
            mine.execution_count = 1
        else:
            mine.outputs = []
            mine.execution_count = None
    nbformat.write(nb, str(path))
    print(f"refreshed {path}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(str(p) for p in Path("notebooks").glob("*.ipynb")):
        refresh(Path(arg))
