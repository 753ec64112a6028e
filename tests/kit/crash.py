"""Helpers for the crash tests: drive ``research-lib paper`` as a subprocess, watch its
ledger from outside, kill it, and check that no fill was lost or doubled."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from research_lib.session import STEP_DELAY_ENV

ROOT = Path(__file__).resolve().parents[2]

# the session the crash tests run: 365 daily steps (BTC trades every day), the ONNX router
# with the class models (FLAG_ASSET_SPECIFIC_MODELS=1): about 100 orders, all filled
CRASH_CONFIG = str(ROOT / "config")
CRASH_ARGS = ("--symbols", "SPY,QQQ,BTC-USD", "--start", "2018-01-01", "--end", "2018-12-31",
              "--config-dir", CRASH_CONFIG)
CRASH_STEPS = 365


def cli_env(delay_ms: float = 0.0) -> dict[str, str]:
    env = {**os.environ, "FLAG_TRADING_HALTED": "0", "FLAG_ASSET_SPECIFIC_MODELS": "1",
           "RESEARCH_LIB_HOME": str(ROOT)}
    env.pop(STEP_DELAY_ENV, None)
    if delay_ms:
        env[STEP_DELAY_ENV] = str(delay_ms)
    return env


def paper_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "research_lib.cli", "paper", *args]


def start_paper(cwd: Path, args: Sequence[str], delay_ms: float = 0.0) -> subprocess.Popen:
    """``research-lib paper ARGS`` in ``cwd`` (so a stray kill.flag elsewhere never counts)."""
    return subprocess.Popen(paper_cmd(*args), cwd=cwd, env=cli_env(delay_ms),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_paper(cwd: Path, args: Sequence[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(paper_cmd(*args), cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


class LedgerWatch:
    """Counts a running session's committed steps from outside (a read-only connection)."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.conn: sqlite3.Connection | None = None

    def steps(self) -> int:
        if self.conn is None:
            if not self.ledger.exists():
                return 0
            try:
                self.conn = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True)
            except sqlite3.Error:
                return 0
        try:
            return self.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        except sqlite3.Error:  # not created yet
            return 0

    def wait_for(self, proc: subprocess.Popen, n: int, timeout: float = 120,
                 changed: bool = False) -> int:
        """Poll until at least ``n`` steps are committed (and, with ``changed``, right after
        the count moved); fail if the session ends or the time runs out first."""
        deadline = time.monotonic() + timeout
        last = self.steps()
        while time.monotonic() < deadline:
            k = self.steps()
            if k >= n and (not changed or k != last):
                return k
            last = k
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"session ended (exit {proc.returncode}) before {n} "
                                     f"committed steps (at {k}):\n{err[-2000:]}")
            time.sleep(0.0005)
        proc.kill()
        raise AssertionError(f"no {n} committed steps within {timeout}s")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def fills_vs_orders(ledger: Path) -> dict[str, int]:
    """Check, from the ledger alone, that no fill is lost or doubled; return the counts.

    * ``fills.client_order_id`` is unique (the primary key; counted here too);
    * every order's events are one of: denied; submitted; submitted then filled;
      submitted then rejected; submitted then cancelled by a kill switch (never filled
      twice, never filled and rejected or cancelled);
    * the fills are exactly the orders with an ``OrderFilled`` event, each filled at a later
      step than decided, and submitted = filled + rejected + cancelled + still open.
    """
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        n_fills, n_ids = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT client_order_id) FROM fills").fetchone()
        assert n_fills == n_ids, f"{ledger}: {n_fills} fills for {n_ids} client order ids"
        orders = dict(con.execute("SELECT client_order_id, step FROM orders"))
        events: dict[str, list[str]] = {}
        for cid, ev in con.execute("SELECT client_order_id, event FROM order_events "
                                   "ORDER BY seq"):
            events.setdefault(cid, []).append(ev)
        assert set(events) == set(orders), f"{ledger}: orders and their events differ"
        allowed = {("OrderDenied",), ("OrderSubmitted",), ("OrderSubmitted", "OrderFilled"),
                   ("OrderSubmitted", "OrderRejected"), ("OrderSubmitted", "OrderCancelled")}
        bad = {cid: ev for cid, ev in events.items() if tuple(ev) not in allowed}
        assert not bad, f"{ledger}: impossible event sequences {list(bad.items())[:3]}"
        filled = {cid for cid, ev in events.items() if ev[-1] == "OrderFilled"}
        fills = dict(con.execute("SELECT client_order_id, step FROM fills"))
        assert set(fills) == filled, f"{ledger}: fills {len(fills)} != OrderFilled {len(filled)}"
        assert all(fills[c] > orders[c] for c in fills), f"{ledger}: a fill before its order"
        last = Counter(tuple(ev)[-1] for ev in events.values())
        submitted = sum(1 for ev in events.values() if ev[0] == "OrderSubmitted")
        assert submitted == (last["OrderFilled"] + last["OrderRejected"] + last["OrderCancelled"]
                             + last["OrderSubmitted"])
        return {"orders": len(orders), "submitted": submitted, "fills": n_fills,
                "rejected": last["OrderRejected"], "open": last["OrderSubmitted"],
                "denied": last["OrderDenied"], "cancelled": last["OrderCancelled"]}
    finally:
        con.close()
