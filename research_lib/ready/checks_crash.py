"""Crash-safety claim: a scratch replay is SIGKILLed mid-run (right after a step that left
orders open, so the kill strands them) and resumed; its ledger must equal an uninterrupted
run's (every table of :func:`~research_lib.ledger_read.deterministic_dump`) with no fill
lost or doubled (:func:`~research_lib.faults.fills_vs_orders`).

The killed run is ``research-lib paper`` in a subprocess (so SIGKILL lands on a real
process, mid-step: ``RESEARCH_LIB_STEP_DELAY_MS``); the uninterrupted run and the resume
run in this process.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from .context import Context
from .verdict import Verdict, failed, passed

RUN_ID = "ready-crash-run"


def _kill_point(ledger: Path, total: int, kill_at: float) -> tuple[int, int]:
    """(committed steps to kill after, orders left open then): the first step at or after
    ``kill_at`` of the run that submitted orders (they fill at the next step)."""
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT o.step, COUNT(*) FROM orders o JOIN order_events e ON e.client_order_id "
            "= o.client_order_id WHERE e.event = 'OrderSubmitted' AND o.step >= ? "
            "GROUP BY o.step ORDER BY o.step LIMIT 1", (int(total * kill_at),)).fetchall()
    finally:
        con.close()
    if rows and rows[0][0] < total - 1:
        return rows[0][0] + 1, rows[0][1]
    return max(1, int(total * kill_at)), 0


def _first_difference(ref: dict[str, list], got: dict[str, list]) -> str | None:
    for table in ref:
        a, b = ref[table], got.get(table, [])
        if a == b:
            continue
        i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
        want = a[i] if i < len(a) else "<no row>"
        have = b[i] if i < len(b) else "<no row>"
        return (f"table {table} differs from the uninterrupted run at row {i} of "
                f"{len(a)} (uninterrupted {want!r}, resumed {have!r})")
    return None


def kill_resume(ctx: Context, start: str = "2018-01-01", end: str = "2018-12-31",
                delay_ms: float = 2.0, kill_at: float = 0.5, timeout: float = 120.0) -> Verdict:
    from ..faults import FaultDrillError, LedgerWatch, fills_vs_orders, paper_cmd, sigkill
    from ..flags import KillSwitch
    from ..ledger_read import deterministic_dump
    from ..paper.session import run_session
    from ..paper.spec import STEP_DELAY_ENV
    from .context import run_id_kept

    if not (0 < kill_at < 1) or delay_ms <= 0:
        return failed(f"params kill_at {kill_at} must be in (0, 1) and delay_ms {delay_ms} > 0")
    syms = ctx.sample_symbols
    folder = ctx.scratch("crash")
    cfg = ctx.scratch_config(folder)
    runs = folder / "runs"
    kill = folder / "kill.flag"
    with run_id_kept():
        ref = run_session(symbols=syms, source="sample", interval="1d", start=start, end=end,
                          run_dir=folder / "reference", config_dir=cfg,
                          run_id="ready-crash-reference", kill_switch=KillSwitch(kill, env={}))
    total = int(ref.summary["steps"])
    if total < 4:
        return failed(f"the replay {start} .. {end} has {total} steps; too few to kill one "
                      "mid-run", steps=total)
    k, open_at_kill = _kill_point(Path(ref.ledger_path), total, kill_at)
    env = {**os.environ, "FLAG_TRADING_HALTED": "0", STEP_DELAY_ENV: str(delay_ms),
           "RESEARCH_LIB_HOME": str(ctx.home)}
    proc = subprocess.Popen(
        paper_cmd("--symbols", ",".join(syms), "--source", "sample", "--interval", "1d",
                  "--start", start, "--end", end, "--config-dir", str(cfg), "--run-dir",
                  str(runs), "--run-id", RUN_ID),
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = runs / RUN_ID / "ledger.sqlite"
    watch = LedgerWatch(ledger)
    try:
        watch.wait_for(proc, k, timeout=timeout)
        time.sleep(delay_ms / 4e3)  # into the next step: decided, not committed
        sigkill(proc)
        at_kill = watch.steps()
    except FaultDrillError as exc:
        return failed(f"the kill drill could not run: {exc}", steps=total, kill_after=k)
    finally:
        watch.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    evidence: dict[str, Any] = {"symbols": ",".join(syms), "steps": total, "delay_ms": delay_ms,
                                "killed_after_steps": at_kill}
    try:
        evidence["open_orders_at_kill"] = fills_vs_orders(ledger)["open"]
        with run_id_kept():
            res = run_session(resume=RUN_ID, run_dir=runs, config_dir=cfg,
                              kill_switch=KillSwitch(kill, env={}))
    except Exception as exc:  # the resume refused or failed: the claim is shown broken
        return failed(f"the resume after the kill at step {at_kill} failed: "
                      f"{type(exc).__name__}: {exc}", **evidence)
    evidence["resumed_steps"] = int(res.summary["steps_this_session"])
    try:
        want, got = fills_vs_orders(Path(ref.ledger_path)), fills_vs_orders(ledger)
    except FaultDrillError as exc:
        return failed(f"after the kill at step {at_kill} and the resume: {exc}", **evidence)
    evidence.update(orders=got["orders"], fills=got["fills"])
    diff = _first_difference(deterministic_dump(ref.ledger_path), deterministic_dump(ledger))
    if diff is not None:
        return failed(f"killed after {at_kill} steps and resumed: {diff}", **evidence)
    if got != want:
        return failed(f"killed after {at_kill} steps and resumed: order counts {got} != "
                      f"uninterrupted {want}", **evidence)
    if at_kill + evidence["resumed_steps"] != total:
        return failed(f"{at_kill} steps before the kill + {evidence['resumed_steps']} resumed "
                      f"!= {total} steps", **evidence)
    return passed(f"SIGKILLed after {at_kill} of {total} steps with "
                  f"{evidence['open_orders_at_kill']} order(s) open, resumed: the same ledger "
                  f"as the uninterrupted run ({got['fills']} fills, none lost or doubled)",
                  **evidence)
