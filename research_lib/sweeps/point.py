"""One sweep point: a normal replay (:func:`research_lib.paper.session.run_session`) in its
own run folder, turned into one row of the results table. Runs in a worker process (loky,
Dask): a top-level function of plain arguments, no state outside them."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
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


CLAIMS = "claims"  # OUT/claims/<run id>.json: a point being run, by which process


def claim_path(claims: str | Path, run_id: str) -> Path:
    return Path(claims) / f"{run_id}.json"


def read_claim(path: Path) -> dict[str, Any] | None:
    """A claim file's content, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_claim(path: Path, claim: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(claim, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def stake_claim(claims: str | Path, run_id: str) -> tuple[int, str]:
    """Claim ``run_id`` for this process: ``OUT/claims/<run id>.json`` names the attempt,
    the process id and the host. A claim already there is an earlier attempt whose worker
    died before it finished (a finished point removes its claim): returns this attempt's
    number and what is known of the lost ones."""
    path = claim_path(claims, run_id)
    old = read_claim(path) or {}
    attempt = int(old.get("attempt", 0)) + 1
    lost = str(old.get("lost", ""))
    if old:
        this = (f"attempt {attempt - 1} (pid {old.get('pid')} on {old.get('host')}) did not "
                f"finish: its worker process was lost")
        cause = old.get("cause")
        lost = "; ".join(x for x in (lost, this + (f" ({cause})" if cause else "")) if x)
    write_claim(path, {"attempt": attempt, "pid": os.getpid(), "host": socket.gethostname(),
                       "lost": lost})
    return attempt, lost


def run_point(index: int, point: dict[str, Any], kwargs: dict[str, Any], run_dir: str,
              run_id: str, claims: str | None = None) -> dict[str, Any]:
    """Run one point; never raises: a failure is the row's ``status="failed"`` and
    ``error``. ``kwargs`` are ``run_session``'s (the sweep's and this point's).

    With ``claims`` (a folder), the point is claimed while it runs (:func:`stake_claim`):
    an attempt after a lost worker starts its run folder afresh and its row counts the
    attempts and says what was lost (``attempts``, ``lost_worker``)."""
    from ..paper.session import run_session

    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": index, "run_id": run_id, "status": "ok", "error": "",
                           "attempts": 1, "lost_worker": "",
                           **{m: math.nan for m in METRICS}}
    if claims is not None:
        row["attempts"], row["lost_worker"] = stake_claim(claims, run_id)
        folder = Path(run_dir) / run_id  # a lost attempt's partial run: ours, start afresh
        if folder.is_dir():
            shutil.rmtree(folder)
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
    if claims is not None:
        claim_path(claims, run_id).unlink(missing_ok=True)
    return row
