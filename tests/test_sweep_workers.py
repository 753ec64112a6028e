"""Sweeps on real worker processes (issue 15): a worker SIGKILLed under a point (a loky
process, a Dask worker process) leaves the other points intact and its point retried or
recorded failed with the error; a re-run finishes it. Nothing is mocked: the test reads
the point's claim (OUT/claims/<run id>.json, written by the worker running it) and kills
that process."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import research_lib as rl
from research_lib.sweeps.point import read_claim
from research_lib.sweeps.run import sweep_id_of

SYMS = ["SPY", "QQQ"]
MODEL = "baseline:sma_cross"
# point 0 is the slow one (14 years, step by step: seconds), the others a few months fast
POINTS = [{"start": "2005-01-01", "end": "2018-12-31", "fast": False},
          {"start": "2017-01-01", "end": "2017-06-30", "signal.target_weight": 0.05},
          {"start": "2017-01-01", "end": "2017-06-30", "signal.target_weight": 0.1}]
METRICS = ["total_return_pct", "sharpe", "max_drawdown_pct", "fills", "final_equity", "steps"]


class Killer(threading.Thread):
    """SIGKILL the process that claims ``run_id`` in ``out``/claims, once."""

    def __init__(self, out: Path, run_id: str, timeout: float = 180.0):
        super().__init__(daemon=True)
        self.path = out / "claims" / f"{run_id}.json"
        self.timeout = timeout
        self.killed: int | None = None

    def run(self) -> None:
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            claim = read_claim(self.path)
            if claim and claim.get("attempt") == 1 and claim.get("pid") != os.getpid():
                os.kill(int(claim["pid"]), signal.SIGKILL)
                self.killed = int(claim["pid"])
                return
            time.sleep(0.005)


def _sweep(out: Path, **kw):
    return rl.sweep(SYMS, points=POINTS, out=out, model=MODEL, report=False, **kw)


def _with_killer(out: Path, **kw):
    sid = sweep_id_of({"symbols": SYMS, "points": POINTS, "model": MODEL,
                                     "flag": None, "source": "sample", "start": None,
                                     "end": None, "interval": "1d", "fast": True})
    killer = Killer(out, f"{sid}-p0000")
    killer.start()
    res = _sweep(out, **kw)
    killer.join(1)
    assert res.sweep_id == sid
    assert killer.killed is not None and killer.killed != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(killer.killed, 0)  # the worker really is gone
    return res


def _serial(tmp_path: Path):
    return _sweep(tmp_path / "serial", backend="serial").table


def _same_metrics(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a[["point", "run_id", *METRICS]].reset_index(drop=True),
                                  b[["point", "run_id", *METRICS]].reset_index(drop=True))


def test_sweep_when_a_loky_worker_is_killed_then_its_point_is_retried(tmp_path):
    res = _with_killer(tmp_path / "o", backend="local", jobs=2)
    t = res.table
    assert (t["status"] == "ok").all(), t[["status", "error"]]
    assert t.loc[0, "attempts"] == 2 and t.loc[1:, "attempts"].max() <= 2
    lost = t.loc[0, "lost_worker"]
    assert "attempt 1" in lost and "TerminatedWorkerError" in lost and "SIGKILL" in lost
    assert not list((tmp_path / "o" / "claims").iterdir())  # every claim released
    _same_metrics(t, _serial(tmp_path))  # the retry's ledger is the one it would have alone


def test_sweep_when_a_loky_worker_is_killed_without_retries_then_failed_and_rerun_finishes(
        tmp_path):
    out = tmp_path / "o"
    res = _with_killer(out, backend="local", jobs=2, retries=0)
    t = res.table
    assert t.loc[0, "status"] == "failed" and pd.isna(t.loc[0, "sharpe"])
    assert "worker process died 1 time(s)" in t.loc[0, "error"]
    assert "TerminatedWorkerError" in t.loc[0, "error"]
    # a point that shared the broken pool may be failed too (it cannot be told apart);
    # every point that finished is intact, and was not run again
    ok = t[t["status"] == "ok"]
    assert len(ok) >= 1 and res.failed == len(t) - len(ok)
    stamps = {r: (out / "runs" / r / "ledger.sqlite").stat().st_mtime_ns for r in ok["run_id"]}
    again = _sweep(out, backend="local", jobs=2, retries=0)
    assert (again.ran, again.skipped, again.failed) == (res.failed, len(ok), 0)
    assert (again.table["status"] == "ok").all()
    assert {r: (out / "runs" / r / "ledger.sqlite").stat().st_mtime_ns
            for r in ok["run_id"]} == stamps
    _same_metrics(again.table, _serial(tmp_path))


def test_sweep_when_a_dask_worker_is_killed_then_dask_reruns_its_point(tmp_path):
    from distributed import LocalCluster

    # real worker processes (each under a nanny that restarts it), on loopback only
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        res = _with_killer(tmp_path / "o", backend="dask", jobs=2,
                           scheduler=cluster.scheduler_address)
    t = res.table
    assert (t["status"] == "ok").all(), t[["status", "error"]]
    assert t.loc[0, "attempts"] == 2
    assert "attempt 1 (pid " in t.loc[0, "lost_worker"]
    assert "did not finish" in t.loc[0, "lost_worker"]
    _same_metrics(t, _serial(tmp_path))
