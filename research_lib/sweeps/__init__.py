"""Parameter sweeps over replays (issue 15), the package behind :func:`research_lib.sweep` (named
``sweeps`` so that importing it never hides that function): :func:`sweep` runs a grid or a list of
override dicts, each point a normal replay in its own run folder, through joblib (loky or
Dask), and writes a results table (Parquet) and a report (HTML)."""

from __future__ import annotations

from .grid import expand, parse_grid_args, split_point
from .notebook import NotebookSweepResult, notebook_sweep
from .run import SweepResult, sweep

__all__ = ["NotebookSweepResult", "SweepResult", "expand", "notebook_sweep",
           "parse_grid_args", "split_point", "sweep"]
