"""The ledger's side of an external venue: orders go to the venue, fills come from it.

:class:`VenueBroker` is a :class:`~research_lib.broker.PaperBroker` whose orders the venue
fills: the same cash, open orders and positions (the fold of the fills, rebuilt from the
ledger on a resume), with

* ``submit``: the order goes to the venue under its client order id (an id the venue
  already has is adopted, never sent twice); a venue refusal is an ``OrderRejected``;
* ``fill_open``: each open order's state at the venue; a filled order is booked at the
  venue's average price and quantity, less the fee the venue takes from what it credits
  (``Venue.fee_rate``: Alpaca's crypto fee comes out of a buy's coins and a sell's
  dollars, recorded as the fill's commission; equities pay none);
  a partial fill is an ``OrderPartiallyFilled`` event (the order stays open, and is booked
  when the venue reports it done, with the part filled); a rejection, cancel or expiry is
  recorded with the venue's id;
* ``cancel_open`` (a kill switch): every open order is cancelled at the venue; what the
  venue filled before the cancel is booked by the fill stage that follows.

Every report is kept in :attr:`VenueBroker.journal` (the venue's ids and numbers), which
the step writes into ``venue_events`` (:mod:`research_lib.venues.link`). ``--dry-run``
sends nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..broker import (
    QTY_DIGITS,
    Fill,
    Order,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PaperBroker,
)
from ..telemetry import get_logger, log_event
from .base import OrderPartiallyFilled, VenueOrder, VenueRejected

log = get_logger("venue")


@dataclass
class VenueBroker(PaperBroker):
    """A :class:`~research_lib.venues.base.Broker` whose orders an external venue fills."""

    venue: Any = None  # a research_lib.venues.base.Venue
    # venue reports not yet written: (cid, venue id, event, status, symbol, qty, filled,
    # avg price, reason), drained into the step's venue_events rows
    journal: list[tuple[Any, ...]] = field(default_factory=list)
    venue_ids: dict[str, str] = field(default_factory=dict)
    reported: dict[str, float] = field(default_factory=dict)  # partial fills said so far

    def _note(self, cid: str | None, vo: VenueOrder | None, event: str, symbol: str | None,
              qty: float | None, reason: str | None = None, venue_id: str | None = None
              ) -> None:
        self.journal.append((cid, vo.venue_order_id if vo else venue_id, event,
                             vo.status if vo else None, symbol, qty,
                             vo.filled_qty if vo else None,
                             vo.filled_avg_price if vo else None, reason))

    # -- commands -----------------------------------------------------------------
    def submit(self, order: Order) -> OrderSubmitted | OrderRejected | None:
        cid = order.client_order_id
        if cid in self.known_ids:
            log_event(log, "order_duplicate_ignored", level=30, client_order_id=cid)
            return None
        self.known_ids.add(cid)
        if self.dry_run:  # decided and recorded; nothing goes to the venue
            return OrderSubmitted(order, dry_run=True)
        try:
            vo, adopted = self.venue.submit(order)
        except VenueRejected as exc:
            self._note(cid, None, "REJECTED", order.symbol, order.qty, exc.reason,
                       exc.venue_order_id)
            return self._reject(order, order.step, order.ts,
                                f"VENUE_REJECTED: {exc.reason} symbol={order.symbol}")
        self.venue_ids[cid] = vo.venue_order_id
        note = None
        if adopted and round(vo.qty - order.qty, QTY_DIGITS) != 0:
            note = (f"VENUE_QTY_DIFFERS: the venue holds qty={vo.qty:.10g} under this id, "
                    f"decided qty={order.qty:.10g}; the venue's order is the one that fills")
            order = dataclasses.replace(order, qty=vo.qty)
        self._note(cid, vo, "ADOPTED" if adopted else "SUBMITTED", order.symbol, order.qty,
                   note)
        if vo.status == "rejected":
            return self._reject(order, order.step, order.ts,
                                f"VENUE_REJECTED: status=rejected venue_order_id="
                                f"{vo.venue_order_id} symbol={order.symbol}")
        self.open_orders[cid] = order
        return OrderSubmitted(order, reason=note)

    def fill_open(self, step: int, ts: str, prices: Mapping[str, float]) -> list[Any]:
        """What the venue did with each open order since the last look (``prices`` are not
        used: the venue's fills are the truth)."""
        events: list[Any] = []
        for cid in list(self.open_orders):
            vo = self.venue.order(cid)
            if vo is None:  # the venue does not know it: reconciliation says so
                continue
            events += self._apply(self.open_orders[cid], vo, step, ts)
        return events

    def _apply(self, o: Order, vo: VenueOrder, step: int, ts: str) -> list[OrderEvent | Any]:
        cid = o.client_order_id
        done = round(vo.filled_qty, QTY_DIGITS)
        if vo.terminal and done != 0:  # filled, or cancelled/expired with a part filled
            price = float(vo.filled_avg_price or 0.0)
            rate = getattr(self.venue, "fee_rate", None)
            fee = rate(o.symbol) if rate is not None else 0.0
            # the venue's fee comes out of what the fill credits (Alpaca's crypto): a buy
            # books the coins received, a sell the dollars received; commission = the fee
            qty = round(done * (1 - fee), QTY_DIGITS) if done > 0 else done
            commission = abs(done) * price * fee
            f = Fill(cid, step, ts, o.symbol, qty, price, price, commission,
                     -(qty * price) - commission)
            del self.open_orders[cid]
            self.fills.append(f)
            self._book(f)
            reason = None if vo.status == "filled" else (
                f"VENUE_PARTIAL_FILL: filled={done:.10g} of {vo.qty:.10g}, the rest "
                f"{vo.status} venue_order_id={vo.venue_order_id} symbol={o.symbol}")
            self._note(cid, vo, "FILLED" if reason is None else vo.status.upper(), o.symbol,
                       o.qty, reason)
            return [OrderFilled(o, f, reason=reason)]
        if vo.terminal:
            del self.open_orders[cid]
            why = (f"VENUE_{vo.status.upper()}: venue_order_id={vo.venue_order_id} "
                   f"symbol={o.symbol}")
            self._note(cid, vo, vo.status.upper(), o.symbol, o.qty, why)
            if vo.status == "rejected":
                return [self._reject(o, step, ts, why)]
            return [OrderCancelled(o, why)]
        if done != self.reported.get(cid, 0.0):
            self.reported[cid] = done
            self._note(cid, vo, "PARTIALLY_FILLED", o.symbol, o.qty)
            return [OrderPartiallyFilled(o, done, vo.filled_avg_price, vo.venue_order_id)]
        return []

    def cancel_open(self, reason: str) -> list[OrderCancelled]:
        """Cancel every open order at the venue (a kill switch is set). An order the venue
        confirms cancelled with nothing filled is ``OrderCancelled``; one it filled (in part)
        first stays open for the fill stage, which books what was filled."""
        events: list[OrderCancelled] = []
        for cid, o in list(self.open_orders.items()):
            vid = self.venue_ids.get(cid)
            if vid is None:
                found = self.venue.order(cid)
                vid = found.venue_order_id if found is not None else None
            if vid is None:  # the venue never had it: nothing can fill
                del self.open_orders[cid]
                events.append(OrderCancelled(o, reason))
                continue
            self.venue.cancel(vid)
            vo = self.venue.order(cid)
            self._note(cid, vo, "CANCEL_REQUESTED", o.symbol, o.qty, reason, vid)
            if vo is None or (vo.terminal and round(vo.filled_qty, QTY_DIGITS) == 0):
                del self.open_orders[cid]
                events.append(OrderCancelled(o, reason))
        return events

    def drain(self) -> list[tuple[Any, ...]]:
        out, self.journal = self.journal, []
        return out
