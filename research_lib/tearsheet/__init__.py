"""The paper-session tearsheet: a report on any run, read from its ledger alone.

::

    import research_lib as rl
    ts = rl.tearsheet("paper-20260101T000000Z-abcd1234")   # a run id, folder or ledger
    ts.header(); ts.metrics_table(); ts.equity_chart(); ts.monthly_heatmap(); ...
    ts.trades        # round trips (DataFrame), ts.attribution, ts.metrics()

Modules: :mod:`.data` (the run's series and benchmarks), :mod:`.metrics` (return metrics,
cross-checked against empyrical in the tests), :mod:`.trades` (round trips, attribution),
:mod:`.tables` (periodic tables, drawdowns, costs), :mod:`.static` (matplotlib/seaborn
figures), :mod:`.interactive` (plotly charts), :mod:`.html` (formatting), :mod:`.sheet`
(the :class:`Tearsheet`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import RunData, resolve_run
from .sheet import Tearsheet


def tearsheet(run: str | Path, run_dir: str | Path | None = None,
              summary: dict[str, Any] | None = None) -> Tearsheet:
    """The tearsheet of ``run`` (a run id under ``run_dir`` or ``runs/reports``, a run
    folder or a ledger file). ``summary``: the session's summary when the caller has it
    (its ``sample`` stamp goes in the header); without it the stamp is read back from the
    ledger (the training windows the run recorded, its decisions), as the session stamped
    it."""
    from ..ledger_read import read_run
    from ..models.windows import sample_of_run

    ledger = resolve_run(run, run_dir)
    if summary is None:
        summary = {"sample": sample_of_run(ledger)}
    return Tearsheet(RunData(read_run(ledger), summary))


__all__ = ["RunData", "Tearsheet", "resolve_run", "tearsheet"]
