"""Fault-injection drills on a running ``research-lib paper``: start it as a subprocess,
watch its ledger from outside, SIGKILL it, and check from the ledger alone that no fill was
lost or doubled. Used by ``research-lib ready`` (crash safety) and the crash tests."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .errors import ResearchLibError


class FaultDrillError(ResearchLibError):
    """Raised when a drill cannot go on (the session ended early, no progress in time) or a
    ledger breaks an invariant (a fill lost or doubled); the message says which."""


def paper_cmd(*args: str) -> list[str]:
    """``research-lib paper ARGS`` with this interpreter."""
    return [sys.executable, "-m", "research_lib.cli", "paper", *args]


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
        the count moved); a :class:`FaultDrillError` if the session ends or the time runs out
        first."""
        deadline = time.monotonic() + timeout
        last = self.steps()
        while time.monotonic() < deadline:
            k = self.steps()
            if k >= n and (not changed or k != last):
                return k
            last = k
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise FaultDrillError(f"session ended (exit {proc.returncode}) before {n} "
                                      f"committed steps (at {k}):\n{(err or '')[-2000:]}")
            time.sleep(0.0005)
        proc.kill()
        raise FaultDrillError(f"no {n} committed steps within {timeout}s")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and reap it; a :class:`FaultDrillError` if it was not the kill that
    ended it (it had already exited)."""
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        raise FaultDrillError(f"the session ended with {proc.returncode}, not by the SIGKILL")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise FaultDrillError(message)


def fills_vs_orders(ledger: Path) -> dict[str, int]:
    """Check, from the ledger alone, that no fill is lost or doubled; return the counts.

    * ``fills.client_order_id`` is unique (the primary key; counted here too);
    * every order's events are one of: denied; submitted; submitted then filled;
      submitted then rejected; submitted then cancelled by a kill switch (never filled
      twice, never filled and rejected or cancelled);
    * the fills are exactly the orders with an ``OrderFilled`` event, each filled at a later
      step than decided, and submitted = filled + rejected + cancelled + still open.

    A broken invariant is a :class:`FaultDrillError` naming it.
    """
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        n_fills, n_ids = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT client_order_id) FROM fills").fetchone()
        _check(n_fills == n_ids, f"{ledger}: {n_fills} fills for {n_ids} client order ids")
        orders = dict(con.execute("SELECT client_order_id, step FROM orders"))
        events: dict[str, list[str]] = {}
        for cid, ev in con.execute("SELECT client_order_id, event FROM order_events "
                                   "ORDER BY seq"):
            events.setdefault(cid, []).append(ev)
        _check(set(events) == set(orders), f"{ledger}: orders and their events differ")
        allowed = {("OrderDenied",), ("OrderSubmitted",), ("OrderSubmitted", "OrderFilled"),
                   ("OrderSubmitted", "OrderRejected"), ("OrderSubmitted", "OrderCancelled")}
        bad = {cid: ev for cid, ev in events.items() if tuple(ev) not in allowed}
        _check(not bad, f"{ledger}: impossible event sequences {list(bad.items())[:3]}")
        filled = {cid for cid, ev in events.items() if ev[-1] == "OrderFilled"}
        fills = dict(con.execute("SELECT client_order_id, step FROM fills"))
        _check(set(fills) == filled,
               f"{ledger}: fills {len(fills)} != OrderFilled {len(filled)}")
        _check(all(fills[c] > orders[c] for c in fills), f"{ledger}: a fill before its order")
        last = Counter(tuple(ev)[-1] for ev in events.values())
        submitted = sum(1 for ev in events.values() if ev[0] == "OrderSubmitted")
        _check(submitted == (last["OrderFilled"] + last["OrderRejected"]
                             + last["OrderCancelled"] + last["OrderSubmitted"]),
               f"{ledger}: submitted {submitted} != filled + rejected + cancelled + open")
        return {"orders": len(orders), "submitted": submitted, "fills": n_fills,
                "rejected": last["OrderRejected"], "open": last["OrderSubmitted"],
                "denied": last["OrderDenied"], "cancelled": last["OrderCancelled"]}
    finally:
        con.close()
