"""The session summary, and its one-screen text form."""

from __future__ import annotations

from typing import Any


# ---------------------------------------------------------------------- CLI
def _cancelled(s: dict[str, Any]) -> str:
    n = s.get("cancelled", 0)
    return f", {n} cancelled by the kill switch" if n else ""


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
        f"orders     {s['orders']} submitted, {s['fills']} filled, {s['rejected']} rejected, "
        f"{s['denied']} denied{_cancelled(s)}",
        f"denials    {den}",
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

