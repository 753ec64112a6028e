"""Where a replay step's time goes: the loop split into its phases, and the two costs that
every symbol of every step pays whatever the model (the ledger rows, the JSON decision
records) measured alone on a real step's records.

Phases are timed by wrapping the session's methods (about 1 us of overhead per wrapped
call): ``feed`` (the replay clock hands over a step's bars), ``reload`` (the config files'
stat), ``gate`` (the bad-bar gate), ``features`` (prices known, windows, features), ``predict``
(router or baseline), ``plan`` (signal -> target -> size, per symbol), ``orders`` (risk
engine, kill switch, submit), ``step: rest`` (fills, marks, latches, breaker, the ledger
rows built), ``commit`` (the step's one SQLite transaction), ``log`` (the step's JSON
records written to events.jsonl).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ._common import Figure, tempdir

PHASES = ("feed", "reload", "gate", "features", "predict", "plan", "orders", "step: rest",
          "commit", "log")


def phases(symbols: list[str], source: str, start: str, end: str, model: str | None,
           config: Path) -> tuple[dict[str, float], int, int, Any]:
    """(microseconds per step by phase, steps, symbol-bars, the last step's record and
    pending log) of one replay."""
    from research_lib.flags import KillSwitch
    from research_lib.ledger import Ledger
    from research_lib.session import ReplayFeed, Session, SessionSpec

    acc = dict.fromkeys(PHASES, 0.0)
    keep: dict[str, Any] = {}
    perf = time.perf_counter

    def timed(name: str, f: Any) -> Any:
        def w(*a: Any, **k: Any) -> Any:
            t = perf()
            try:
                return f(*a, **k)
            finally:
                acc[name] += perf() - t
        return w

    class Phased(Session):
        reload = timed("reload", Session.reload)
        gate = timed("gate", Session.gate)
        observe = timed("features", Session.observe)
        predict = timed("predict", Session.predict)
        plan = timed("plan", Session.plan)
        execute = timed("orders", Session.execute)
        log_decisions = timed("log", Session.log_decisions)

        def step(self, step: int, bars: Any, t0: float) -> Any:
            t = perf()
            rec = Session.step(self, step, bars, t0)
            acc["step: rest"] += perf() - t
            keep["rec"], keep["log"] = rec, rec.log
            return rec

    orig_iter, orig_commit = ReplayFeed.__iter__, Ledger.commit_step

    def feed_iter(self: Any) -> Any:
        it = orig_iter(self)
        while True:
            t = perf()
            try:
                bars = next(it)
            except StopIteration:
                return
            acc["feed"] += perf() - t
            yield bars

    ReplayFeed.__iter__ = feed_iter  # type: ignore[method-assign]
    Ledger.commit_step = timed("commit", orig_commit)  # type: ignore[method-assign]
    try:
        run_dir = tempdir("profile")
        s = Phased(SessionSpec(symbols=symbols, source=source, start=start, end=end,
                               model=model, config_dir=config, run_dir=run_dir,
                               kill_switch=KillSwitch(run_dir / "kill.flag", env={}),
                               replicas=True))  # replicated real series
        res = s.run()
    finally:
        ReplayFeed.__iter__ = orig_iter  # type: ignore[method-assign]
        Ledger.commit_step = orig_commit  # type: ignore[method-assign]
    steps = int(res.summary["steps"])
    inner = sum(acc[k] for k in ("reload", "gate", "features", "predict", "plan", "orders"))
    acc["step: rest"] -= inner
    feed = s.feed
    bars = int(feed.has[feed.n_warmup:].sum())
    return {k: v / steps * 1e6 for k, v in acc.items()}, steps, bars, keep


def ledger_alone(rec: Any, repeats: int = 300) -> float:
    """Microseconds to commit a copy of ``rec`` (a real step's rows) into a fresh ledger."""
    import dataclasses

    from research_lib.ledger import Ledger

    path = tempdir("ledger") / "run" / "ledger.sqlite"
    led = Ledger.create(path, {"run_id": "profile", "symbols": [], "initial_cash": 1.0})
    try:
        t = time.perf_counter()
        for k in range(repeats):
            # new keys per copy: orders/fills are keyed by client order id, rows by step
            rows = {tbl: [_rekey(tbl, r, k) for r in rs] for tbl, rs in rec.rows.items()}
            led.commit_step(dataclasses.replace(rec, step=k, rows=rows))
        return (time.perf_counter() - t) / repeats * 1e6
    finally:
        led.close()


def _rekey(table: str, row: tuple, k: int) -> tuple:
    """The row with this copy's keys, by the table's named columns (research_lib.paper.rows):
    a client order id made unique, a step column set to ``k``."""
    from research_lib.paper.rows import RESUME_TABLES_ROWS, TABLES

    fields = (TABLES.get(table) or RESUME_TABLES_ROWS[table])._fields
    out = list(row)
    if fields[0] == "client_order_id":
        out[0] = f"{row[0]}-copy{k}"
    if "step" in fields[:2]:
        out[fields.index("step")] = k
    return tuple(out)


def log_alone(pending: Any, repeats: int = 300) -> float:
    """Microseconds to write one step's JSON records (``pending``: plans, fills, events) to
    an events.jsonl, as the session does."""
    from research_lib.session import Session
    from research_lib.telemetry import JsonFormatter

    root = logging.getLogger("research_lib")
    h = logging.FileHandler(tempdir("log") / "events.jsonl", encoding="utf-8")
    h.setFormatter(JsonFormatter())
    saved = root.level, [(x, x.level) for x in root.handlers]
    for x in root.handlers:  # as the session does: stderr keeps the level asked for
        x.setLevel(max(x.level, root.getEffectiveLevel()))
    root.addHandler(h)
    root.setLevel(logging.INFO)
    try:
        s = Session.__new__(Session)
        t = time.perf_counter()
        for _ in range(repeats):
            s.log_decisions(pending)
        return (time.perf_counter() - t) / repeats * 1e6
    finally:
        root.removeHandler(h)
        root.setLevel(saved[0])
        for x, lv in saved[1]:
            x.setLevel(lv)
        h.close()


def profile(data: Any, repeats: int, cases: list[tuple[str, int, str | None, str, str]]
            ) -> list[tuple[str, list[Figure]]]:
    """For each case (label, symbols, model, start, end): per-phase us/step figures."""
    out = []
    for label, n, model, start, end in cases:
        syms, src = data.csv(n)
        figs = {k: Figure(f"{label}: {k}", "us/step") for k in PHASES}
        total = Figure(f"{label}: loop total", "us/step")
        ledger = Figure(f"{label}: the step's ledger commit alone (fresh ledger)", "us/step")
        log = Figure(f"{label}: the step's JSON records alone", "us/step")
        for _ in range(repeats):
            per, steps, bars, keep = phases(syms, src, start, end, model, data.config(n))
            for k, v in per.items():
                figs[k].add(v)
            total.add(sum(per.values()))
            ledger.add(ledger_alone(keep["rec"]))
            log.add(log_alone(keep["log"]))
        total.note = f"{bars / steps:.1f} symbol-bars per step, {steps:,} steps"
        rec = keep["rec"]
        ledger.note = ("last step: " + ", ".join(f"{len(v)} {k}" for k, v in rec.rows.items()
                                                  if v))
        log.note = f"{len(keep['log'][0])} decision record(s)"
        out.append((label, [*figs.values(), total, ledger, log]))
    return out
