"""The stages of one step, plain functions over the :class:`~.account.Account` (what a step
changes) and the :class:`~.account.Desk` (what the rules read), writing into the step's
:class:`~research_lib.ledger.StepRecord`. :func:`research_lib.paper.step.run_step` calls
them in order: gate -> **fill** -> observe -> **mark** -> predict -> **plan** -> **risk and
execute** -> **record**. (The gate, observe and predict read bars and the model, not the
account: :mod:`.inputs`.)

Where the fast replay needs a rule over a block of steps, its vectorised twin sits beside
the scalar rule: :func:`quiet_plan_block` beside :func:`plan` here,
:meth:`~research_lib.broker.PaperBroker.mark_block` beside ``mark``,
:meth:`~research_lib.risk.RiskEngine.marks_block` beside ``start_day``/``on_mark``,
:func:`~research_lib.risk.price_band_mask` beside ``price_band_breached``,
:func:`~research_lib.broker.round_qty_array` beside ``round_qty``; ``tests/test_twins.py``
runs each pair on the same inputs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..broker import (
    QTY_DIGITS,
    Order,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    client_order_id,
    round_qty,
    round_qty_array,
)
from ..ledger import StepRecord, now_iso
from ..risk import (
    EPS,
    OrderCheck,
    StateChange,
    TradingState,
    clip_target,
    price_band_mask,
    reason_code,
)
from ..telemetry import get_logger, log_event
from ..venues.base import OrderPartiallyFilled
from .account import Account, Desk
from .allocation import desk_weight
from .decision_log import fold_clips
from .rows import (
    EquityRow,
    FillRow,
    OrderEventRow,
    OrderRow,
    RiskEventRow,
    StateChangeRow,
    position_rows,
)
from .signals import signal_target

log = get_logger("session")


@dataclass(slots=True)
class Plan:
    """One symbol's decision at a step: its target (weight and quantity) and its row."""

    i: int
    symbol: str
    pred: Any
    target: float | None
    target_qty: float | None
    kind: str  # signal | trim | flatten | bad_bar
    decision: list[Any] = field(default_factory=list)  # a DecisionRow, filled in stages
    note: str | None = None  # why the order was scaled (allocation.scale_increases)


# ---------------------------------------------------------------------- state rows
def state_row(desk: Desk, acct: Account, rec: StepRecord, ch: StateChange) -> None:
    rec.add("state_changes", StateChangeRow(rec.step, rec.ts, ch.scope, ch.from_state,
                                            ch.to_state, ch.reason, acct.last_equity,
                                            acct.engine.peak, acct.engine.day, now_iso()))
    level = (logging.WARNING if (ch.scope == "account" and ch.to_state == "HALTED")
             or ch.to_state == "REJECTED" else logging.INFO)
    log_event(log, "state_changed", level=level, step=rec.step, scope=ch.scope,
              from_state=ch.from_state, to_state=ch.to_state, reason=ch.reason)


# ---------------------------------------------------------------------------- fill
def cancel_if_killed(desk: Desk, acct: Account, rec: StepRecord) -> None:
    """A kill switch set at the fill stage cancels every open order (none fills while it
    is set, none is left to fill after it clears), each recorded with the reason."""
    halt = desk.ks.check()
    if not halt.halted:
        return
    for ev in acct.broker.cancel_open(f"KILL_SWITCH: {halt.reason}"):
        cid, sym = ev.order.client_order_id, ev.order.symbol
        reason = f"{ev.reason} symbol={sym}"
        rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderCancelled", reason))
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, sym, "cancellation",
                                            reason_code(reason), reason, cid))
        log_event(log, "order_cancelled", level=30, client_order_id=cid, symbol=sym,
                  qty=ev.order.qty, reason=reason)


def fill(desk: Desk, acct: Account, rec: StepRecord, fill_prices: np.ndarray) -> dict[str, Any]:
    """Open orders fill at this step's gated prices (``fill_prices`` per symbol index, NaN:
    none); returns the fills by symbol for the step's JSON records."""
    fills_now: dict[str, Any] = {}
    broker = acct.broker
    if broker.open_orders:
        cancel_if_killed(desk, acct, rec)
    if not broker.open_orders:
        return fills_now
    idx = desk.index
    prices = {o.symbol: float(fill_prices[idx[o.symbol]]) for o in broker.open_orders.values()}
    for ev in broker.fill_open(rec.step, rec.ts, prices):
        cid = ev.order.client_order_id
        if isinstance(ev, OrderFilled):
            f = ev.fill
            rec.add("fills", FillRow(cid, f.step, f.ts, f.symbol, f.qty, f.price, f.base_price,
                                     f.commission, f.cash_delta))
            rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderFilled",
                                                  ev.reason))
            fills_now[f.symbol] = {"client_order_id": cid, "qty": f.qty, "price": f.price}
        elif isinstance(ev, OrderPartiallyFilled):  # a venue's: the order stays open
            rec.add("order_events", OrderEventRow(
                rec.step, rec.ts, cid, "OrderPartiallyFilled",
                f"filled={ev.filled_qty:.10g} of {ev.order.qty:.10g} avg_price={ev.avg_price} "
                f"venue_order_id={ev.venue_order_id}"))
        elif isinstance(ev, OrderCancelled):  # a venue cancelled or expired it
            rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderCancelled",
                                                  ev.reason))
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, ev.order.symbol,
                                                "cancellation", reason_code(ev.reason),
                                                ev.reason, cid))
        else:
            rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderRejected",
                                                  ev.reason))
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, ev.order.symbol, "rejection",
                                                reason_code(ev.reason), ev.reason, cid))
    return fills_now


# ---------------------------------------------------------------------------- mark
def marks_now(acct: Account) -> list[float]:
    """The marks of this step per symbol: the last good close; a live resume's recorded
    mark for a held symbol that has no bar yet (no price is not a NaN equity)."""
    last = acct.last_close.tolist()
    if acct.resume_marks:
        for i in list(acct.resume_marks):
            if math.isfinite(last[i]):
                del acct.resume_marks[i]
            else:
                last[i] = acct.resume_marks[i]
    return last


def mark(desk: Desk, acct: Account, rec: StepRecord, rows: np.ndarray, last: list[float]
         ) -> tuple[float, float, float]:
    """Equity at the marks, the account limits (REDUCING, HALTED latch), the breakers of
    the symbols with a new bar; returns (equity, gross, net)."""
    sym, eng = desk.symbols, acct.engine
    equity, gross, net = acct.broker.mark(dict(zip(sym, last, strict=True)))
    for ch in eng.on_mark(equity):
        state_row(desk, acct, rec, ch)
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, None, "breach",
                                            reason_code(ch.reason), ch.reason, None))
    for i in breaker_rows(desk, acct, rows):
        ch = eng.observe_price(sym[i], last[i], float(acct.prev_close[i]))
        if ch is not None:
            state_row(desk, acct, rec, ch)
    return equity, gross, net


def breaker_rows(desk: Desk, acct: Account, rows: np.ndarray) -> list[int]:
    """Rows whose breaker may change this step: a close outside the price band around the
    previous close (:func:`~research_lib.risk.price_band_mask`) or a symbol already halted."""
    if len(rows) <= 8:
        return rows.tolist()
    out = price_band_mask(acct.last_close[rows], acct.prev_close[rows],
                          acct.engine.limits.price_band_pct)
    halted, sym = acct.engine.halted_symbols, desk.symbols
    return [i for i, b in zip(rows.tolist(), out.tolist(), strict=True) if b or sym[i] in halted]


# ---------------------------------------------------------------------------- plan
def open_qty_by_symbol(acct: Account) -> dict[str, float]:
    """``broker.open_qty(s)`` for every symbol with open orders, summed in the same order.
    Taken once per step after the fills: each symbol gets at most one order per step,
    decided after its own lookups, so the map holds for the whole step."""
    out: dict[str, float] = {}
    for o in acct.broker.open_orders.values():
        out[o.symbol] = out.get(o.symbol, 0) + o.qty
    return out


def over_limit(desk: Desk, acct: Account, i: int, equity: float, oq: dict[str, float]) -> bool:
    """The symbol's held + pending quantity, at its last close, above max_position_pct."""
    s = desk.symbols[i]
    price = float(acct.last_close[i])
    if not (math.isfinite(price) and price > 0 and equity > 0):
        return False
    cur = acct.broker.qty(s) + oq.get(s, 0)
    return abs(cur * price / equity) > desk.limits.max_position_pct + EPS


def candidates(desk: Desk, acct: Account, rows: np.ndarray, equity: float,
               oq: dict[str, float]) -> list[int]:
    """The symbols planned this step: those with a new bar, and a held or pending one above
    max_position_pct without a bar (its market is closed while others move the equity: the
    trim waits for its open). HALTED plans every held or pending symbol (to flatten)."""
    cands = rows.tolist()
    held = {s for s, _ in acct.broker.book.held()}
    if not (held or oq):
        return cands
    new = set(cands)
    extra = [i for i, s in enumerate(desk.symbols)
             if (s in held or oq.get(s, 0)) and i not in new]
    if acct.engine.state is not TradingState.HALTED:
        extra = [i for i in extra if over_limit(desk, acct, i, equity, oq)]
    return sorted(set(cands) | set(extra)) if extra else cands


def band_reason(band: float, target: float, weight: float) -> str:
    return f"WITHIN_REBALANCE_BAND: band={band:g} target={target:.4f} weight={weight:.4f}"


def bad_bar_plan(desk: Desk, rec: StepRecord, i: int, why: str) -> Plan:
    s = desk.symbols[i]
    plan = Plan(i, s, None, None, None, "bad_bar")
    plan.decision = [rec.step, rec.ts, s, desk.classes[s], desk.model_label, None, None,
                     None, None, None, "BAD_BAR", why, None, None]
    return plan


def plan(desk: Desk, acct: Account, rec: StepRecord, i: int, pred: Any, equity: float,
         oq: dict[str, float]) -> Plan:
    """Signal -> target weight, clipped to the limits, REDUCING and HALTED rules, the
    rebalance band; a plan with ``target_qty`` set goes to :func:`execute`."""
    s = desk.symbols[i]
    lim, sig = desk.limits, desk.settings.signal
    eng = acct.engine
    price = float(acct.last_close[i])
    cur = acct.broker.qty(s) + oq.get(s, 0)
    if pred is None:
        model, prob, shadow, shadow_prob, fallback = desk.model_label, None, None, None, None
    else:
        model = getattr(pred, "model", desk.model_label)
        prob = getattr(pred, "probability", None)
        shadow = getattr(pred, "shadow_model", None)
        shadow_prob = getattr(pred, "shadow_probability", None)
        fallback = getattr(pred, "fallback_reason", None)
    if prob is not None and not math.isfinite(prob):
        prob = None
    p = Plan(i, s, pred, None, None, "signal",
             [rec.step, rec.ts, s, desk.classes[s], model, prob, shadow, shadow_prob, fallback])

    def verdict(v: str, reason: str | None = None, target: float | None = None) -> Plan:
        p.decision += [target, v, reason, None, None]
        p.target_qty = None
        return p

    def risk_event(code: str, reason: str, kind: str = "clip") -> None:
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, kind, code, reason, None))

    if not math.isfinite(price) or price <= 0:
        reason = f"NO_PRICE: price={price} symbol={s}"
        risk_event("NO_PRICE", reason, "denial")
        return verdict("NO_PRICE", reason)
    cur_w = cur * price / equity if equity > 0 else 0.0
    # above the limit at the current mark (held + pending): always trimmed back to it,
    # whatever the signal, the rebalance band or a missing prediction say
    over = abs(cur_w) > lim.max_position_pct + EPS
    if eng.state is TradingState.HALTED:
        if cur == 0:
            return verdict("HALTED", "HALTED: no position to close", 0.0)
        target_w, p.kind = 0.0, "flatten"
    else:
        raw: float | None = None
        if pred is None or prob is None:
            if not over:
                why = getattr(pred, "fallback_reason", None) or "NO_SIGNAL: no probability"
                return verdict("NO_SIGNAL", why)
        else:
            raw = signal_target(prob, sig.long_threshold, sig.short_threshold,
                                desk_weight(desk), lim.allow_short)
        if raw is None:  # hold; a position above the limit is trimmed to it
            target_w = cur_w
            if over:
                target_w = math.copysign(lim.max_position_pct, cur_w)
                p.kind = "trim"
                risk_event("POSITION_TRIMMED", f"POSITION_TRIMMED: limit={lim.max_position_pct:g} "
                                               f"weight={cur_w:.4f} symbol={s}")
        else:
            target_w, why = clip_target(raw, lim)
            if why is not None:
                risk_event("TARGET_CLIPPED", f"{why} symbol={s}")
        if eng.state is TradingState.REDUCING:
            lo, hi = (0.0, cur_w) if cur_w >= 0 else (cur_w, 0.0)
            clipped = min(max(target_w, lo), hi)
            if clipped != target_w:
                risk_event("REDUCING_ONLY_CLIPPED", f"REDUCING_ONLY_CLIPPED: target="
                                                    f"{target_w:.4f} clipped={clipped:.4f} symbol={s}")
                target_w = clipped
    p.target = target_w
    tq = round_qty(target_w * equity / price, desk.lot(i)) if target_w else 0.0
    if target_w == cur_w and p.kind == "signal":
        tq = cur  # an explicit hold keeps the exact quantity
    if tq == cur:
        return verdict("HOLD", None, target_w)
    band = desk.settings.session.rebalance_band
    if (tq != 0 and cur != 0 and (tq > 0) == (cur > 0) and eng.state is TradingState.ACTIVE
            and not over and abs(tq - cur) * price / equity <= band + EPS):
        return verdict("HOLD", band_reason(band, target_w, cur_w), target_w)
    p.target_qty = tq
    return p


@dataclass(slots=True)
class QuietPlans:
    """:func:`quiet_plan_block`'s answer for a block of steps x symbols."""

    event: np.ndarray  # per step: some symbol's plan could order, clip or trim
    target: np.ndarray  # the clipped target weight of a long/short signal
    moves: np.ndarray  # a long/short signal (else: hold at the current weight)
    in_band: np.ndarray  # the plan holds within the rebalance band


def quiet_plan_block(desk: Desk, P: np.ndarray, ok: np.ndarray, Q: np.ndarray,
                     L: np.ndarray, equity: np.ndarray) -> QuietPlans:
    """:func:`plan` over a block of steps (rows) x symbols for an ACTIVE account with no
    open order (the fast path): which steps could do anything beyond a HOLD or NO_SIGNAL
    decision (``event``), and for the others each plan's target and band verdict, with the
    same arithmetic. ``P``: probabilities (NaN: none); ``ok``: a good bar; ``Q``: held
    quantities; ``L``: marks; conservative where it cannot tell (an event only costs time)."""
    lim, sig = desk.limits, desk.settings.signal
    band = desk.settings.session.rebalance_band
    b = len(P)
    with np.errstate(invalid="ignore", divide="ignore"):
        eq_col = equity[:, None]
        cur_w = np.where(Q != 0, Q * L / eq_col, 0.0)
        # a held position above the limit is trimmed (bar or not)
        event = (np.abs(cur_w) > lim.max_position_pct + EPS).any(axis=1)
        long_ = P > sig.long_threshold  # signal_target's comparisons
        short = P < sig.short_threshold
        weight = desk_weight(desk)  # plan's position size (allocation.universe_weight)
        t_long, why_l = clip_target(weight, lim)
        t_short, why_s = clip_target(-weight if lim.allow_short else 0.0, lim)
        moves = long_ | short
        if why_l is not None:  # a TARGET_CLIPPED risk event
            event |= (ok & long_).any(axis=1)
        if why_s is not None:
            event |= (ok & short).any(axis=1)
        tgt = np.where(long_, t_long, t_short)
        event |= (ok & moves & (tgt == 0) & (Q != 0)).any(axis=1)  # a close
        sized = ok & moves & (tgt != 0)
        in_band = np.zeros((b, len(desk.symbols)), dtype=bool)
        if sized.any():
            lots = np.asarray(desk.crypto, dtype=bool)[None, :] & sized
            tq = round_qty_array(tgt * eq_col / L, lots, desk.settings.session.crypto_lot_size)
            tq = np.where(tgt == cur_w, Q, tq)  # an explicit hold keeps the exact quantity
            hold = tq == Q
            band_ok = ((tq != 0) & (Q != 0) & ((tq > 0) == (Q > 0))
                       & (np.abs(tq - Q) * L / eq_col <= band + EPS))
            in_band = sized & ~hold & band_ok
            event |= (sized & ~hold & ~band_ok).any(axis=1)
    return QuietPlans(event, tgt, moves, in_band)


# ----------------------------------------------------------------- risk and execute
def increases(acct: Account, p: Plan, oq: dict[str, float]) -> bool:
    cur = acct.broker.qty(p.symbol) + oq.get(p.symbol, 0)
    return abs(p.target_qty) > abs(cur) or (p.target_qty * cur < 0)


def projected_room(desk: Desk, acct: Account, marks: list[float], oq: dict[str, float]
                   ) -> dict[str, float]:
    """Cash after the open buys (at their decision prices, with costs) and the gross
    exposure of held + pending quantities at the marks: what :func:`execute` sizes against."""
    broker = acct.broker
    cash = broker.cash - sum(
        o.qty * o.decision_price * (1 + desk.cost_rate(desk.index[o.symbol], o.decision_price))
        for o in broker.open_orders.values() if o.qty > 0)
    held = {s for s, _ in broker.book.held()}
    gross = sum(abs((broker.qty(s) + oq.get(s, 0)) * m)
                for s, m in zip(desk.symbols, marks, strict=True)
                if (s in held or oq.get(s, 0)))
    return {"cash": cash, "gross": gross}


def execute(desk: Desk, acct: Account, rec: StepRecord, p: Plan, equity: float,
            room: dict[str, float], oq: dict[str, float]) -> None:
    """Size the order to the cash and gross room, ask the risk engine, then the kill switch
    (immediately before each order), and submit; each outcome recorded."""
    s, i = p.symbol, p.i
    lim = desk.limits
    broker = acct.broker
    price = float(acct.last_close[i])
    cur = broker.qty(s) + oq.get(s, 0)
    qty = round(p.target_qty - cur, QTY_DIGITS)
    rate = desk.cost_rate(i, price)
    lot = desk.lot(i)
    reducing = abs(cur + qty) < abs(cur) and (cur + qty) * cur >= 0
    if qty > 0 and not reducing:  # buying power, with the cash buffer kept back
        avail = room["cash"] - lim.cash_buffer_pct * equity
        if cur < 0:
            avail += -cur * price  # covering a short first
        max_q = max(round_qty(avail / (price * (1 + rate)), lot), 0.0)
        if qty > max_q:
            rec.add("risk_events", RiskEventRow(
                rec.step, rec.ts, s, "clip", "CASH_CLIPPED",
                f"CASH_CLIPPED: wanted={qty:.10g} allowed={max_q:.10g} cash={room['cash']:.2f} "
                f"buffer={lim.cash_buffer_pct:g} symbol={s}", None))
            qty = max_q
    if not reducing and qty != 0:  # gross room
        avail = lim.max_gross_leverage * equity - (room["gross"] - abs(cur * price))
        max_abs = max(round_qty(avail / price, lot), 0.0)
        if abs(cur + qty) > max_abs and abs(cur + qty) > abs(cur):
            new_after = math.copysign(max(max_abs, abs(cur)), cur + qty)
            new_qty = round(new_after - cur, QTY_DIGITS)
            rec.add("risk_events", RiskEventRow(
                rec.step, rec.ts, s, "clip", "GROSS_CLIPPED",
                f"GROSS_CLIPPED: limit={lim.max_gross_leverage:g} wanted={qty:.10g} "
                f"allowed={new_qty:.10g} symbol={s}", None))
            qty = new_qty
    if qty == 0:
        p.decision += [p.target, "HOLD", "CLIPPED_TO_ZERO" + (f": {p.note}" if p.note else ""),
                       None, None]
        return
    cid = client_order_id(desk.run_id, rec.step, s)
    order = Order(cid, rec.step, rec.ts, s, qty, price, p.kind, desk.classes[s],
                  bool(desk.crypto[i]))
    check = OrderCheck(s, qty, price, float(acct.prev_close[i]), cur, equity, room["gross"],
                       room["cash"], acct.engine.state, rate)
    reason = acct.engine.check(check)
    if reason is None and acct.venue is not None:  # and against the venue's view
        reason = acct.venue.check_order(acct.engine, check)
    if reason is None:
        halt = desk.ks.check()  # immediately before this order, every time
        if halt.halted:
            reason = f"KILL_SWITCH: {halt.reason} symbol={s}"
    rec.add("orders", OrderRow(cid, rec.step, rec.ts, s, desk.classes[s], order.side, qty,
                               price, p.kind, int(desk.dry_run)))
    if reason is not None:
        ev = broker.deny(order, reason)
        if ev is None:
            p.decision += [p.target, "DUPLICATE", cid, cid, qty]
            return
        rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderDenied", reason))
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "denial", reason_code(reason),
                                            reason, cid))
        log_event(log, "order_denied", client_order_id=cid, symbol=s, qty=qty, reason=reason)
        p.decision += [p.target, "DENIED", reason, cid, qty]
        return
    sub = broker.submit(order)
    if sub is None:
        p.decision += [p.target, "DUPLICATE", cid, cid, qty]
        return
    if isinstance(sub, OrderRejected):  # a venue refused it at once (recorded as such)
        rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderRejected",
                                              sub.reason))
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "rejection",
                                            reason_code(sub.reason), sub.reason, cid))
        p.decision += [p.target, "REJECTED", sub.reason, cid, qty]
        return
    rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderSubmitted",
                                          "DRY_RUN" if sub.dry_run else sub.reason))
    if qty > 0:
        room["cash"] -= qty * price * (1 + rate)
    room["gross"] += abs((cur + qty) * price) - abs(cur * price)
    p.decision += [p.target, "DRY_RUN" if sub.dry_run else "SUBMITTED", p.note, cid, qty]


# -------------------------------------------------------------------------- record
def record(desk: Desk, acct: Account, rec: StepRecord, day: str, plans: list[Plan],
           marks: list[float], equity: float, gross: float, net: float) -> list[Plan]:
    """The step's decisions (with its E2D latency), its equity row and a position row per
    symbol. Orders fill later, so the marks are the step's closing marks. Returns the plans
    whose decisions were recorded (all, unless ``decision_log`` is ``changes``)."""
    eng = acct.engine
    decisions = rec.rows.setdefault("decisions", [])
    flt = acct.decision_filter
    kept = plans if flt is None else [p for p in plans if flt.keep(desk, p.decision)]
    if flt is not None:
        fold_clips(rec)  # decision_log "changes": repeated per-symbol clips, one row a step
    for p in plans:
        p.decision.append(rec.e2d_ms)
    decisions.extend(tuple(p.decision) for p in kept)
    dd = 1.0 - equity / eng.peak if eng.peak and math.isfinite(eng.peak) else 0.0
    rec.add("equity", EquityRow(rec.step, rec.ts, acct.broker.cash, equity, gross, net,
                                eng.peak, eng.day_start_equity, dd, day, eng.state.value))
    rec.rows.setdefault("positions", []).extend(
        position_rows([rec.step], desk.symbols, acct.broker.book, np.array([marks])))
    return kept
