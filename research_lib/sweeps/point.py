"""One sweep point: a normal replay (:func:`research_lib.paper.session.run_session`) in its
own run folder, turned into one row of the results table. Runs in a worker process (loky,
Dask): a top-level function of plain arguments, no state outside them."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

METRICS = ("total_return_pct", "sharpe", "max_drawdown_pct", "fills", "final_equity", "steps")


def run_id_of(sweep_id: str, index: int) -> str:
    """The run id of point ``index`` of sweep ``sweep_id``: the same on every re-run."""
    return f"{sweep_id}-p{index:04d}"


def sharpe_of(ledger: str | Path) -> float:
    """Annualised Sharpe (risk-free 0) of the run's equity curve, read through
    :func:`research_lib.ledger_read.read_run` (:func:`research_lib.metrics.sharpe`)."""
    import pandas as pd

    from ..ledger_read import read_run
    from ..metrics import infer_periods_per_year, returns_from_equity, sharpe

    eq = read_run(ledger)["equity"]["equity"].astype("float64")
    if len(eq) < 3:
        return float("nan")
    return sharpe(returns_from_equity(eq), infer_periods_per_year(pd.DatetimeIndex(eq.index)))


def run_point(index: int, point: dict[str, Any], kwargs: dict[str, Any], run_dir: str,
              run_id: str) -> dict[str, Any]:
    """Run one point; never raises: a failure is the row's ``status="failed"`` and
    ``error``. ``kwargs`` are ``run_session``'s (the sweep's and this point's)."""
    from ..paper.session import run_session

    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": index, "run_id": run_id, "status": "ok", "error": "",
                           **{m: math.nan for m in METRICS}}
    try:
        res = run_session(**kwargs, run_dir=run_dir, run_id=run_id)
        s = res.summary
        if res.exit_code != 0 or s.get("error"):
            row["status"] = "failed"
            row["error"] = f"exit code {res.exit_code}: {s.get('error') or s.get('stopped')}"
        row.update(total_return_pct=float(s["return_pct"]),
                   max_drawdown_pct=float(s["max_drawdown_pct"]), fills=int(s["fills"]),
                   final_equity=float(s["final_equity"]), steps=int(s["steps"]),
                   sharpe=sharpe_of(res.ledger_path))
    except Exception as exc:  # recorded, and the sweep goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["wall_s"] = time.perf_counter() - t0
    return row
