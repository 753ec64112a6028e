"""The session summary: a pure function of the ledger (and what the run knows of itself),
and its one-screen text form (:func:`format_summary`)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..models.windows import sample_text
from .allocation import allocation_summary


def compute_summary(c: sqlite3.Connection, *, run_id: str, ledger: str, mode: str,
                    engine: str, dry_run: bool, model: str, symbols: Sequence[str],
                    proxies: dict[str, str], initial_cash: float, state: str,
                    latency_ms: dict[str, float], stopped: str, committed: int,
                    error: str | None, notes: Sequence[str]) -> dict[str, Any]:
    """A session's summary from its ledger (``c``) and what the run knows of itself (a
    pure function of them, like backtesting.py's ``compute_stats``): counts of orders,
    fills, denials and rejections by reason, data findings, stale marks, equity, return,
    max drawdown, and the latency percentiles measured this session."""
    from ..data.jumps import stale_marks

    n_steps = c.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    events = Counter(dict(c.execute(
        "SELECT event, COUNT(*) FROM order_events GROUP BY event").fetchall()))
    denials = dict(c.execute(
        "SELECT code, COUNT(*) FROM risk_events WHERE kind='denial' GROUP BY code "
        "ORDER BY code").fetchall())
    rejections = dict(c.execute(
        "SELECT code, COUNT(*) FROM risk_events WHERE kind='rejection' GROUP BY code "
        "ORDER BY code").fetchall())
    data = dict(c.execute(
        "SELECT code, COUNT(*) FROM risk_events WHERE kind='data' GROUP BY code "
        "ORDER BY code").fetchall())
    eq = [r[0] for r in c.execute("SELECT equity FROM equity ORDER BY step")]
    final = eq[-1] if eq else initial_cash
    peak, mdd = initial_cash, 0.0
    for e in eq:
        peak = max(peak, e)
        mdd = max(mdd, 1.0 - e / peak)
    first_last = c.execute("SELECT MIN(ts), MAX(ts) FROM steps").fetchone()
    lat = latency_ms
    row = c.execute("SELECT value FROM meta WHERE key='config'").fetchone()
    alloc = allocation_summary(c, list(symbols), json.loads(row[0]) if row else None)
    return {
        "run_id": run_id,
        "ledger": ledger,
        "mode": mode,
        "engine": engine,
        "dry_run": dry_run,
        "model": model,
        "symbols": symbols,
        "proxies": {k: v for k, v in proxies.items() if v},
        "first_step_ts": first_last[0],
        "last_step_ts": first_last[1],
        "steps": n_steps,
        "steps_this_session": committed,
        "stopped": stopped,
        "error": error,
        "orders": events.get("OrderSubmitted", 0),
        "fills": events.get("OrderFilled", 0),
        "rejected": events.get("OrderRejected", 0),
        "denied": events.get("OrderDenied", 0),
        "cancelled": events.get("OrderCancelled", 0),  # by a kill switch, before a fill
        "denials_by_reason": denials,
        "rejections_by_reason": rejections,
        "bad_bars": data.pop("BAD_BAR", 0),
        "data_findings": data,
        "stale_marks": stale_marks(c),
        "initial_equity": initial_cash,
        "final_equity": final,
        "return_pct": (final / initial_cash - 1.0) * 100.0,
        "max_drawdown_pct": mdd * 100.0,
        "state": state,
        "e2d_p50_ms": lat["p50_ms"],
        "e2d_p99_ms": lat["p99_ms"],
        "e2d_max_ms": lat["max_ms"],
        "notes": list(notes),
        **alloc,  # clipped, clips_by_reason, symbols_traded, position_size
    }


def _cancelled(s: dict[str, Any]) -> str:
    n = s.get("cancelled", 0)
    return f", {n} cancelled by the kill switch" if n else ""


def _allocation_lines(s: dict[str, Any]) -> list[str]:
    """Orders cut by cash or gross room (never hidden behind ``denied: 0``), symbols that
    ever traded, and the position size when the universe made it smaller."""
    if "clipped" not in s:
        return []
    clips = ", ".join(f"{k}={v}" for k, v in s["clips_by_reason"].items()) or "none"
    out = [f"clips      {s['clipped']} order(s) cut by cash or gross room; by reason: {clips}",
           f"traded     {s['symbols_traded']} of {len(s['symbols'])} symbol(s) ever filled"]
    ps = s.get("position_size")
    if ps and ps["per_symbol"] < ps["configured"]:
        out.append(f"sizing     full position {ps['per_symbol']:.4g} of equity, not "
                   f"signal.target_weight {ps['configured']:g}: {ps['symbols']} symbols share "
                   f"min(gross, (1 - cash buffer) / (1 + costs)) = {ps['budget']:.4g}")
    return out


def format_summary(s: dict[str, Any]) -> str:
    den = ", ".join(f"{k}={v}" for k, v in s["denials_by_reason"].items()) or "none"
    rej = ", ".join(f"{k}={v}" for k, v in s["rejections_by_reason"].items()) or "none"
    data = ", ".join(f"{k}={v}" for k, v in s.get("data_findings", {}).items()) or "none"
    lines = [
        f"run        {s['run_id']}",
        f"ledger     {s['ledger']}",
        f"session    {s['mode']}{' (fast)' if s.get('engine') == 'fast' else ''}"
        f"{' (dry run)' if s['dry_run'] else ''}, model {s['model']}, "
        f"{', '.join(s['symbols'])}",
        *(f"proxy      {sym}: {note}" for sym, note in (s.get("proxies") or {}).items()),
        f"steps      {s['steps']} ({s['first_step_ts']} .. {s['last_step_ts']}), "
        f"{s['steps_this_session']} this session, stopped: {s['stopped']}",
        *(f"sample     {t}" for t in (sample_text(s.get("sample")),) if t),
        f"orders     {s['orders']} submitted, {s['fills']} filled, {s['rejected']} rejected, "
        f"{s['denied']} denied{_cancelled(s)}",
        f"denials    {den}",
        *_allocation_lines(s),
        f"rejections {rej}",
        f"data       {s.get('bad_bars', 0)} bad bar(s) refused; findings: {data}",
        *(f"stale      {sym} marked at {m['last_good']:.10g} since {m['since']} "
          f"({m['bars_refused']} bars refused)" for sym, m in (s.get("stale_marks") or {}).items()),
        f"equity     {s['initial_equity']:.2f} -> {s['final_equity']:.2f} "
        f"({s['return_pct']:+.2f}%), max drawdown {s['max_drawdown_pct']:.2f}%",
        f"state      {s['state']}",
        f"e2d        p50 {s['e2d_p50_ms']:.3f} ms, p99 {s['e2d_p99_ms']:.3f} ms",
    ]
    lines += [f"note       {n}" for n in s.get("notes", ())]
    if s.get("error"):
        lines.append(f"error      {s['error']}")
    return "\n".join(lines)

