"""Notebooks are committed without outputs and paired with percent scripts (jupytext):
``notebooks/NAME.py`` beside ``notebooks/NAME.ipynb``, the same cells (tools/sync_notebooks.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
NOTEBOOKS = sorted(NB.glob("*.ipynb"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", [])))
            for c in nb.cells]


def test_jupytext_config_when_read_then_pairs_ipynb_with_percent_scripts():
    cfg = tomllib.loads((NB / "jupytext.toml").read_text())
    assert cfg["formats"] == "ipynb,py:percent"


def test_notebooks_when_listed_then_each_has_its_script_and_each_script_its_notebook():
    assert NOTEBOOKS
    assert {p.stem for p in NB.glob("*.py")} == {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_when_read_then_has_no_outputs_or_execution_counts(path):
    nb = nbformat.read(str(path), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not cell.outputs, (f"{path.name} cell {i} has outputs; strip them: "
                                  ".venv/bin/python tools/sync_notebooks.py")
        assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "papermill" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_script_when_compared_then_same_cells_as_the_notebook(path):
    script = path.with_suffix(".py")
    from_ipynb = _cells(nbformat.read(str(path), as_version=4))
    from_py = _cells(jupytext.read(script, fmt="py:percent"))
    assert from_py == from_ipynb, (f"{script.name} is out of sync with {path.name}; run "
                                   ".venv/bin/python tools/sync_notebooks.py (or --from-py)")


def test_sync_tool_when_a_notebook_has_outputs_then_strips_them_and_rewrites_the_script(
        tmp_path):
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("sync_notebooks",
                                                  ROOT / "tools" / "sync_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    nb_path = tmp_path / "x.ipynb"
    shutil.copy(NB / "data_sanity.ipynb", nb_path)
    nb = nbformat.read(str(nb_path), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    code.execution_count = 3
    code.source += "\nx = 1"
    nbformat.write(nb, str(nb_path))
    tool.sync(nb_path)
    again = nbformat.read(str(nb_path), as_version=4)
    assert all(not c.get("outputs") for c in again.cells if c.cell_type == "code")
    assert _cells(jupytext.read(nb_path.with_suffix(".py"), fmt="py:percent")) == _cells(again)
    assert "x = 1" in nb_path.with_suffix(".py").read_text()


def test_notebooks_when_read_then_they_import_only_the_public_face():
    """Issue 11: every shipped notebook reaches the library through ``research_lib``'s
    public face (``import research_lib as rl``), never a submodule, so a refactor of the
    internals cannot break a user's copy of a notebook."""
    import re

    nb_dir = Path(__file__).resolve().parents[1] / "notebooks"
    found = {}
    for py in sorted(nb_dir.glob("*.py")):
        code = [ln for ln in py.read_text().splitlines() if not ln.lstrip().startswith("#")]
        bad = [ln for ln in code if re.search(r"\bresearch_lib\.\w", ln)
               or re.match(r"\s*from research_lib(\.\w+)* import", ln)]
        found[py.name] = bad
    assert len(found) >= 5
    assert {k: v for k, v in found.items() if v} == {}
