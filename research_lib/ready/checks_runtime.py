"""Runtime claims: logs are JSON lines with the run id, the end-to-decision p99 is within
the configured budget, and the package runs headless. (The venue claim is
:mod:`research_lib.ready.checks_venue`.)"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from .context import Context, captured_logs, scratch_session
from .verdict import Verdict, failed, passed


# --------------------------------------------------------------------------- logs
def _bad_lines(lines: list[str], where: str, run_id: str | None) -> str | None:
    """What is wrong with the first bad line: not JSON, not an object, no run id, or
    (``run_id`` given) another run's id."""
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"{where} line {i} is not JSON ({exc.msg}): {line[:120]!r}"
        if not isinstance(rec, dict):
            return f"{where} line {i} is JSON but not an object: {line[:120]!r}"
        rid = rec.get("run_id")
        if not isinstance(rid, str) or not rid:
            return f"{where} line {i} has no run_id: {line[:120]!r}"
        if run_id is not None and rid != run_id:
            return f"{where} line {i} carries run_id {rid!r}, not the session's {run_id!r}"
    return None


def logs_json(ctx: Context) -> Verdict:
    folder = ctx.scratch("logs")
    with captured_logs(logging.INFO) as buf:
        res = scratch_session(ctx, folder, run_id="ready-logs", bars=8,
                              model="baseline:buy_and_hold", log_file=True)
    logged = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    events_path = Path(res.ledger_path).parent / "events.jsonl"
    events = ([ln for ln in events_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
              if events_path.is_file() else [])
    evidence: dict[str, Any] = {"log_lines": len(logged), "event_lines": len(events),
                                "run_id": res.run_id}
    if not logged:
        return failed("the scratch session logged nothing at INFO: no record to show", **evidence)
    if not events:
        return failed(f"the scratch session wrote no decision record to {events_path.name}",
                      **evidence)
    problem = (_bad_lines(logged, "log", None)
               or _bad_lines(events, "events.jsonl", res.run_id))
    if problem:
        return failed(problem, **evidence)
    decisions = sum(1 for ln in events if json.loads(ln).get("event") == "decision")
    evidence["decision_records"] = decisions
    if not decisions:
        return failed("events.jsonl holds no decision record", **evidence)
    return passed(f"{len(logged)} log lines and {len(events)} event lines ({decisions} "
                  f"decisions): each one JSON object with the run id", **evidence)


# ------------------------------------------------------------------------ latency
def e2d_p99(ctx: Context, steps: int = 300) -> Verdict:
    budget = ctx.settings.e2d_p99_budget_ms
    folder = ctx.scratch("latency")
    with captured_logs(logging.WARNING):  # as `research-lib paper` runs by default
        res = scratch_session(ctx, folder, run_id="ready-latency", bars=steps, log_file=True,
                              max_steps=steps)
    s = res.summary
    p99 = s.get("e2d_p99_ms")
    evidence = {"p50_ms": s.get("e2d_p50_ms"), "p99_ms": p99, "max_ms": s.get("e2d_max_ms"),
                "budget_ms": budget, "steps": s.get("steps"), "symbols": ",".join(s["symbols"]),
                "model": s.get("model")}
    if p99 is None or not s.get("steps"):
        return failed("the scratch replay measured no step", **evidence)
    if p99 > budget:
        return failed(f"E2D p99 {p99:.3f} ms is over the budget ready.e2d_p99_budget_ms "
                      f"{budget:g} ms ({s['steps']} steps, {len(s['symbols'])} symbols, "
                      f"model {s['model']})", **evidence)
    return passed(f"E2D p99 {p99:.3f} ms (p50 {s['e2d_p50_ms']:.3f}, max {s['e2d_max_ms']:.3f}) "
                  f"within the {budget:g} ms budget over {s['steps']} steps of "
                  f"{len(s['symbols'])} symbols", **evidence)


# ----------------------------------------------------------------------- headless
GUI_ROOTS = ("tkinter", "_tkinter", "PyQt4", "PyQt5", "PyQt6", "PySide", "PySide2",
             "PySide6", "sip", "gi", "wx", "AppKit")
GUI_BACKENDS = ("tkagg", "tkcairo", "_backend_tk", "qtagg", "qtcairo", "qt", "qt5agg",
                "qt5cairo", "qt5", "gtk3agg", "gtk3cairo", "gtk3", "gtk4agg", "gtk4cairo",
                "gtk4", "_backend_gtk", "wxagg", "wxcairo", "wx", "macosx", "webagg",
                "webagg_core", "nbagg")

# runs in a fresh interpreter: import every module of the package (and any extra), one at
# a time, noting which brought a GUI toolkit or pyplot, then draw a figure without pyplot
PROBE = r"""
import importlib, io, json, pkgutil, sys
gui_roots, gui_backends, extra = json.loads(sys.argv[1])

def gui():
    out = set()
    for m in list(sys.modules):
        root = m.split(".")[0]
        if root in gui_roots:
            out.add(m if root != m else root)
        elif m.startswith("matplotlib.backends.backend_") and (
                m.rsplit("backend_", 1)[1] in gui_backends):
            out.add(m)
        elif m == "matplotlib.pyplot":
            out.add(m)
    return out

import research_lib
names = ["research_lib"] + sorted(
    m.name for m in pkgutil.walk_packages(research_lib.__path__, "research_lib.")
    if not m.name.endswith("__main__")) + list(extra)
brought, failed = {}, {}
seen = gui()
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
    now = gui()
    if now - seen:
        brought[name] = sorted(now - seen)
    seen = now
from matplotlib.figure import Figure
fig = Figure()
fig.subplots().plot([0, 1], [0, 1])
fig.savefig(io.BytesIO(), format="png")
now = gui()
if now - seen:
    brought["<drawing a figure>"] = sorted(now - seen)
print(json.dumps({"modules": len(names), "brought": brought, "failed": failed}))
"""


def headless(ctx: Context, extra_modules: list[str] | tuple[str, ...] = ()) -> Verdict:
    arg = json.dumps([list(GUI_ROOTS), list(GUI_BACKENDS), list(extra_modules)])
    proc = subprocess.run([sys.executable, "-c", PROBE, arg], capture_output=True, text=True,
                          timeout=300, cwd=ctx.scratch("headless"))
    if proc.returncode != 0:
        return failed(f"the import probe exited {proc.returncode}: {proc.stderr[-800:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    evidence = {"modules_imported": out["modules"], "gui_modules": out["brought"],
                "import_errors": out["failed"]}
    if out["brought"]:
        shown = "; ".join(f"{mod} imported {', '.join(g)}" for mod, g in out["brought"].items())
        return failed(f"not headless: {shown}", **evidence)
    if out["failed"]:
        shown = "; ".join(f"{m}: {e}" for m, e in list(out["failed"].items())[:3])
        return failed(f"{len(out['failed'])} module(s) failed to import: {shown}", **evidence)
    return passed(f"{out['modules']} modules imported and a figure drawn: no GUI toolkit, no "
                  "GUI backend, no pyplot", **evidence)
