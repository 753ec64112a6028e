"""Strip the notebooks' outputs and write their paired percent scripts (jupytext).

Each ``notebooks/NAME.ipynb`` is committed without outputs or execution counts, beside
``notebooks/NAME.py``, the same notebook as a percent script (``# %%`` cells; pairing set
in ``notebooks/jupytext.toml``) that diffs and reviews as plain Python.
``tests/test_notebooks_paired.py`` fails when either rule is broken. After editing::

    .venv/bin/python tools/sync_notebooks.py            # from the .ipynb (JupyterLab edits)
    .venv/bin/python tools/sync_notebooks.py --from-py  # from the .py (editor edits)

(``make nbsync`` runs the first.) JupyterLab with jupytext (``research_lib[jupyter]``)
keeps both files in step on save; outputs must still be stripped before a commit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
FMT = "py:percent"
VOLATILE_CELL_KEYS = ("execution", "ExecuteTime", "papermill", "collapsed", "scrolled")


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No outputs, no execution counts, no per-run cell metadata."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
    nb.metadata.pop("papermill", None)
    return nb


def sync(ipynb: Path, from_py: bool = False) -> None:
    script = ipynb.with_suffix(".py")
    if from_py:
        nb = jupytext.read(script, fmt=FMT)
        if ipynb.is_file():  # keep the notebook's own metadata (kernelspec, language_info)
            old = nbformat.read(str(ipynb), as_version=4)
            nb.metadata = {**old.metadata, **{k: v for k, v in nb.metadata.items()
                                              if k != "jupytext"}}
    else:
        nb = nbformat.read(str(ipynb), as_version=4)
    nb = strip(nb)
    nb.metadata.pop("jupytext", None)  # the pairing lives in jupytext.toml
    nbformat.write(nb, str(ipynb))
    jupytext.write(nb, script, fmt=FMT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks (default: notebooks/*.ipynb)")
    ap.add_argument("--from-py", action="store_true",
                    help="rebuild each .ipynb from its .py (default: the .py from the .ipynb)")
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for p in paths:
        sync(p, from_py=args.from_py)
        print(f"synced {p} <-> {p.with_suffix('.py').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
