"""One step, the stages in order (:mod:`.stages` holds each rule).

``pre`` (the fast replay, :mod:`research_lib.paper.fast`): the step's gate verdicts,
predictions and closes, computed in a batch pass with this same code; the config is not
re-read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..ledger import StepRecord
from ..resume import record_reload, step_digest
from ..risk import StateChange, TradingState
from . import stages
from .allocation import scale_increases
from .rows import RiskEventRow

if TYPE_CHECKING:
    from .account import SessionLike
    from .feeds import StepBars


def run_step(s: SessionLike, step: int, bars: StepBars, t0: float, pre: Any = None
             ) -> StepRecord:
    desk, acct = s.desk, s.acct
    rec = StepRecord(step, bars.ts, len(bars.rows))
    rec.rows["bar_digests"] = step_digest(s, step, bars)
    if pre is None:  # hot reload: the config files that changed apply from this step
        s.reload(rec)
        record_reload(s, rec)
    if s.ks_at_start is not None:  # the session starts halted: say why, once
        stages.state_row(desk, acct, rec, StateChange(
            "kill_switch", "CLEAR", "ENGAGED", f"KILL_SWITCH_AT_START: {s.ks_at_start}"))
        s.ks_at_start = None
    for ch in acct.engine.start_day(bars.day, acct.last_equity):
        stages.state_row(desk, acct, rec, ch)
    if step == 0:  # the start-up data findings, once per run
        for ev in s.bar_gate.data_events:
            rec.add("risk_events", RiskEventRow(step, *ev))
    for ts, sym, code, why in bars.feed_events or ():  # live: gaps, late bars, fetch errors
        rec.add("risk_events", RiskEventRow(step, ts, sym, "data", code, why, None))

    # gate: a bad bar is recorded and used for nothing (fail closed)
    bars, bad = s.gate(bars) if pre is None else (pre.bars, pre.bad)
    notes = s.bar_gate.jumps.notes if pre is None else pre.notes
    for i, why in bad:
        rec.add("risk_events", RiskEventRow(step, bars.ts, desk.symbols[i], "data", "BAD_BAR",
                                            why, None))
    for i, code, why in notes:
        rec.add("risk_events", RiskEventRow(step, bars.ts, desk.symbols[i], "data", code, why,
                                            None))

    # fill: open orders at this step's prices; none while a kill switch is set
    fills_now = stages.fill(desk, acct, rec, s.bar_gate.fill_prices(bars, bad, acct.last_close))

    # observe: prices known now, features; then mark, limits, breakers
    if pre is None:
        X = s.observe(bars, gated=True)
    else:
        X = None
        acct.last_close[:] = pre.last
        acct.prev_close[:] = pre.prev
    marks = stages.marks_now(acct)
    equity, gross, net = stages.mark(desk, acct, rec, bars.rows, marks)

    # predict: the symbols with a new bar (none while HALTED)
    preds: dict[int, Any] = {}
    if acct.engine.state is not TradingState.HALTED:
        preds = pre.preds if pre is not None else (s.predict(bars.rows, X) if X is not None
                                                   else {})

    # plan: one decision per candidate symbol (a refused bar's says why)
    oq = stages.open_qty_by_symbol(acct)  # this step's open quantities, passed explicitly
    cands = stages.candidates(desk, acct, bars.rows, equity, oq)
    plans: list[stages.Plan] = []
    if bad:
        refused = {i for i, _ in bad}
        cands = [i for i in cands if i not in refused]
        plans += [stages.bad_bar_plan(desk, rec, i, why) for i, why in bad]
    plans += [stages.plan(desk, acct, rec, i, preds.get(i), equity, oq) for i in cands]

    # risk and execute: reductions first (they free gross room), then increases
    room = stages.projected_room(desk, acct, marks, oq)
    orders = sorted((p for p in plans if p.target_qty is not None), key=lambda p: p.i)
    up = [stages.increases(acct, p, oq) for p in orders]
    grows = [p for p, u in zip(orders, up, strict=True) if u]
    for p in (p for p, u in zip(orders, up, strict=True) if not u):
        stages.execute(desk, acct, rec, p, equity, room, oq)
    # the increases share what room is left pro rata, whatever the symbols' order
    scale_increases(desk, acct, rec, grows, equity, room, oq)
    for p in grows:
        stages.execute(desk, acct, rec, p, equity, room, oq)

    e2d = time.perf_counter() - t0
    s.latency.add(e2d)
    rec.e2d_ms = e2d * 1e3
    if acct.venue is not None:  # an external venue: its reports, then reconciliation
        acct.venue.after_step(desk, acct, rec)
    kept = stages.record(desk, acct, rec, bars.day, plans, marks, equity, gross, net)
    rec.log = (kept, fills_now, rec.rows.get("risk_events", ()))  # after the commit
    return rec
