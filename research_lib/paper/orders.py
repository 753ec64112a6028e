"""Orders: a plan per symbol (signal -> target weight, clipped to the limits, REDUCING and
HALTED rules, the rebalance band), then execute (cash and gross room, the risk engine, the
kill switch right before each order, submit), reductions first."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..broker import (
    QTY_DIGITS,
    Order,
    client_order_id,
    round_qty,
)
from ..ledger import (
    StepRecord,
)
from ..risk import (
    EPS,
    OrderCheck,
    TradingState,
    clip_target,
    reason_code,
)
from ..telemetry import (
    get_logger,
    log_event,
)
from .rows import (
    OrderEventRow,
    OrderRow,
    RiskEventRow,
)
from .signals import signal_target

log = get_logger("session")


@dataclass(slots=True)
class _Plan:
    i: int
    symbol: str
    pred: Any
    target: float | None
    target_qty: float
    kind: str
    decision: list[Any] = field(default_factory=list)  # a DecisionRow, filled in stages


class OrderStages:
    """The plan and execute stages of :class:`~research_lib.paper.session.Session` (a mixin)."""

    def _cancel_if_killed(self, rec: StepRecord, ts: str) -> None:
        """A kill switch set at the fill stage cancels every open order (none fills while
        it is set, none is left to fill after it clears), each recorded with the reason."""
        halt = self.ks.check()
        if not halt.halted:
            return
        for ev in self.broker.cancel_open(f"KILL_SWITCH: {halt.reason}"):
            cid, sym = ev.order.client_order_id, ev.order.symbol
            reason = f"{ev.reason} symbol={sym}"
            rec.add("order_events", OrderEventRow(rec.step, ts, cid, "OrderCancelled", reason))
            rec.add("risk_events", RiskEventRow(rec.step, ts, sym, "cancellation", reason_code(reason),
                                    reason, cid))
            log_event(log, "order_cancelled", level=30, client_order_id=cid, symbol=sym,
                      qty=ev.order.qty, reason=reason)

    def _bad_bar_plan(self, rec: StepRecord, i: int, why: str) -> _Plan:
        s = self.symbols[i]
        plan = _Plan(i, s, None, None, None, "bad_bar")  # type: ignore[arg-type]
        plan.decision = [rec.step, rec.ts, s, self.classes[s], self.model_label, None, None,
                         None, None, None, "BAD_BAR", why, None, None]
        return plan


    def _open_qty_by_symbol(self) -> dict[str, float]:
        """``broker.open_qty(s)`` for every symbol with open orders, summed in the same
        order. Taken once per step after the fills: each symbol gets at most one order per
        step, decided after its own lookups, so the map holds for the whole step."""
        out: dict[str, float] = {}
        for o in self.broker.open_orders.values():
            out[o.symbol] = out.get(o.symbol, 0) + o.qty
        return out

    def _breaker_rows(self, rows: np.ndarray) -> list[int]:
        """Rows whose per-symbol breaker may change this step: a close outside the price
        band around the previous close (numpy, the same arithmetic as
        :func:`research_lib.risk.price_band_breached`) or a symbol already halted."""
        if len(rows) <= 8:
            return rows.tolist()
        ref = self.prev_close[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (np.isfinite(ref) & (ref > 0) & (np.abs(self.last_close[rows] / ref - 1.0)
                                                   > self.engine.limits.price_band_pct + EPS))
        halted, sym = self.engine.halted_symbols, self.symbols
        return [i for i, b in zip(rows.tolist(), out.tolist(), strict=True)
                if b or sym[i] in halted]

    def _cost_rate(self, symbol: str, price: float) -> float:
        c = self.settings.session
        rate = (c.slippage_bps + c.commission_bps) / 1e4
        i = self._index[symbol]
        if not self.crypto[i] and price > 0:
            rate += c.commission_per_share / price
        return rate

    def _lot(self, i: int) -> float | None:
        return self.settings.session.crypto_lot_size if self.crypto[i] else None

    def _over_limit(self, i: int, equity: float, oq: dict[str, float]) -> bool:
        """The symbol's held + pending quantity, at its last close, above max_position_pct."""
        s = self.symbols[i]
        price = float(self.last_close[i])
        if not (math.isfinite(price) and price > 0 and equity > 0):
            return False
        cur = self.broker.qty(s) + oq.get(s, 0)
        return abs(cur * price / equity) > self.limits.max_position_pct + EPS

    def _increases(self, p: _Plan, oq: dict[str, float]) -> bool:
        cur = self.broker.qty(p.symbol) + oq.get(p.symbol, 0)
        return abs(p.target_qty) > abs(cur) or (p.target_qty * cur < 0)

    def plan(self, rec: StepRecord, i: int, pred: Any, equity: float,
              oq: dict[str, float]) -> _Plan:
        s = self.symbols[i]
        lim, sig = self.limits, self.settings.signal
        eng = self.engine
        price = float(self.last_close[i])
        cur = self.broker.qty(s) + oq.get(s, 0)
        if pred is None:
            model, prob, shadow, shadow_prob, fallback = self.model_label, None, None, None, None
        else:
            model = getattr(pred, "model", self.model_label)
            prob = getattr(pred, "probability", None)
            shadow = getattr(pred, "shadow_model", None)
            shadow_prob = getattr(pred, "shadow_probability", None)
            fallback = getattr(pred, "fallback_reason", None)
        if prob is not None and not math.isfinite(prob):
            prob = None
        plan = _Plan(i, s, pred, None, None, "signal",  # type: ignore[arg-type]
                     [rec.step, rec.ts, s, self.classes[s], model, prob, shadow, shadow_prob,
                      fallback])

        def verdict(v: str, reason: str | None = None, target: float | None = None) -> _Plan:
            plan.decision += [target, v, reason, None, None]
            plan.target_qty = None  # type: ignore[assignment]
            return plan

        if not math.isfinite(price) or price <= 0:
            reason = f"NO_PRICE: price={price} symbol={s}"
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "denial", "NO_PRICE", reason, None))
            return verdict("NO_PRICE", reason)
        cur_w = cur * price / equity if equity > 0 else 0.0
        # above the limit at the current mark (held + pending): always trimmed back to it,
        # whatever the signal, the rebalance band or a missing prediction say
        over = abs(cur_w) > lim.max_position_pct + EPS
        if eng.state is TradingState.HALTED:
            if cur == 0:
                return verdict("HALTED", "HALTED: no position to close", 0.0)
            target_w, plan.kind = 0.0, "flatten"
        else:
            raw: float | None = None
            if pred is None or prob is None:
                if not over:
                    why = getattr(pred, "fallback_reason", None) or "NO_SIGNAL: no probability"
                    return verdict("NO_SIGNAL", why)
            else:
                raw = signal_target(prob, sig.long_threshold, sig.short_threshold,
                                    sig.target_weight, lim.allow_short)
            if raw is None:  # hold; a position above the limit is trimmed to it
                target_w = cur_w
                if over:
                    target_w = math.copysign(lim.max_position_pct, cur_w)
                    plan.kind = "trim"
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "POSITION_TRIMMED",
                                            f"POSITION_TRIMMED: limit={lim.max_position_pct:g} "
                                            f"weight={cur_w:.4f} symbol={s}", None))
            else:
                target_w, why = clip_target(raw, lim)
                if why is not None:
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "TARGET_CLIPPED",
                                            f"{why} symbol={s}", None))
            if eng.state is TradingState.REDUCING:
                lo, hi = (0.0, cur_w) if cur_w >= 0 else (cur_w, 0.0)
                clipped = min(max(target_w, lo), hi)
                if clipped != target_w:
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "REDUCING_ONLY_CLIPPED",
                                            f"REDUCING_ONLY_CLIPPED: target={target_w:.4f} "
                                            f"clipped={clipped:.4f} symbol={s}", None))
                    target_w = clipped
        plan.target = target_w
        tq = round_qty(target_w * equity / price, self._lot(i)) if target_w else 0.0
        if target_w == cur_w and plan.kind == "signal":
            tq = cur  # an explicit hold keeps the exact quantity
        if tq == cur:
            return verdict("HOLD", None, target_w)
        if (tq != 0 and cur != 0 and (tq > 0) == (cur > 0) and eng.state is TradingState.ACTIVE
                and not over
                and abs(tq - cur) * price / equity <= self.settings.session.rebalance_band + EPS):
            return verdict("HOLD", f"WITHIN_REBALANCE_BAND: band="
                           f"{self.settings.session.rebalance_band:g} target={target_w:.4f} "
                           f"weight={cur_w:.4f}", target_w)
        plan.target_qty = tq
        return plan

    def execute(self, rec: StepRecord, p: _Plan, equity: float, book: dict[str, float],
                 oq: dict[str, float]) -> None:
        s, i = p.symbol, p.i
        lim = self.limits
        broker = self.broker
        price = float(self.last_close[i])
        cur = broker.qty(s) + oq.get(s, 0)
        qty = round(p.target_qty - cur, QTY_DIGITS)
        rate = self._cost_rate(s, price)
        lot = self._lot(i)
        reducing = abs(cur + qty) < abs(cur) and (cur + qty) * cur >= 0
        if qty > 0 and not reducing:  # buying power, with the cash buffer kept back
            room = book["cash"] - lim.cash_buffer_pct * equity
            if cur < 0:
                room += -cur * price  # covering a short first
            max_q = max(round_qty(room / (price * (1 + rate)), lot), 0.0)
            if qty > max_q:
                rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "CASH_CLIPPED",
                                        f"CASH_CLIPPED: wanted={qty:.10g} allowed={max_q:.10g} "
                                        f"cash={book['cash']:.2f} buffer={lim.cash_buffer_pct:g} "
                                        f"symbol={s}", None))
                qty = max_q
        if not reducing and qty != 0:  # gross room
            room = lim.max_gross_leverage * equity - (book["gross"] - abs(cur * price))
            max_abs = max(round_qty(room / price, lot), 0.0)
            if abs(cur + qty) > max_abs and abs(cur + qty) > abs(cur):
                new_after = math.copysign(max(max_abs, abs(cur)), cur + qty)
                new_qty = round(new_after - cur, QTY_DIGITS)
                rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "GROSS_CLIPPED",
                                        f"GROSS_CLIPPED: limit={lim.max_gross_leverage:g} "
                                        f"wanted={qty:.10g} allowed={new_qty:.10g} symbol={s}",
                                        None))
                qty = new_qty
        if qty == 0:
            p.decision += [p.target, "HOLD", "CLIPPED_TO_ZERO", None, None]
            return
        cid = client_order_id(self.run_id, rec.step, s)
        order = Order(cid, rec.step, rec.ts, s, qty, price, p.kind, self.classes[s],
                      bool(self.crypto[i]))
        check = OrderCheck(s, qty, price, float(self.prev_close[i]), cur, equity, book["gross"],
                           book["cash"], self.engine.state, rate)
        reason = self.engine.check(check)
        if reason is None:
            halt = self.ks.check()  # immediately before this order, every time
            if halt.halted:
                reason = f"KILL_SWITCH: {halt.reason} symbol={s}"
        rec.add("orders", OrderRow(cid, rec.step, rec.ts, s, self.classes[s], order.side, qty, price,
                           p.kind, int(self.dry_run)))
        if reason is not None:
            ev = broker.deny(order, reason)
            if ev is None:
                p.decision += [p.target, "DUPLICATE", cid, cid, qty]
                return
            rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderDenied", reason))
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "denial", reason_code(reason), reason,
                                    cid))
            log_event(log, "order_denied", client_order_id=cid, symbol=s, qty=qty,
                      reason=reason)
            p.decision += [p.target, "DENIED", reason, cid, qty]
            return
        sub = broker.submit(order)
        if sub is None:
            p.decision += [p.target, "DUPLICATE", cid, cid, qty]
            return
        rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderSubmitted",
                                 "DRY_RUN" if sub.dry_run else None))
        if qty > 0:
            book["cash"] -= qty * price * (1 + rate)
        book["gross"] += abs((cur + qty) * price) - abs(cur * price)
        p.decision += [p.target, "DRY_RUN" if sub.dry_run else "SUBMITTED", None, cid, qty]

