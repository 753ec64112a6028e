"""A paper broker: market orders, fills at the next price, costs, positions derived from fills.

* :class:`Order` is decided at one step from prices known then; it fills at the symbol's
  next bar open when replaying history, or at the next observed price when live. Fill
  price = that price moved against the order by ``slippage_bps``; commission =
  ``commission_bps`` of notional + ``commission_per_share`` (not on crypto).
* Quantities: whole units for equities (and options), multiples of ``crypto_lot_size``
  for crypto, always rounded toward zero (:func:`round_qty`).
* :class:`Position` is a fold of fills (``Position.from_fills``); :class:`PaperBroker`
  keeps the fills (the truth) and folds them as they arrive. Cash is the initial cash plus
  every fill's ``cash_delta``.
* A buy that the cash cannot pay for at fill time, or a fill price outside the price band
  around the decision price, is **rejected** (:class:`OrderRejected`), logged at ERROR and
  recorded, never dropped.

Events are in the past tense: :class:`OrderSubmitted`, :class:`OrderFilled`,
:class:`OrderDenied` (risk or kill switch said no), :class:`OrderRejected` (the broker
could not fill), :class:`OrderCancelled` (an open order a kill switch stopped before it
filled).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .config import SessionConfig
from .telemetry import get_logger, log_event

log = get_logger("broker")

QTY_DIGITS = 10  # quantities are rounded to this many decimals after arithmetic


def client_order_id(run_id: str, step: int, symbol: str) -> str:
    """Deterministic: one order per (run, step, symbol), so a retried step cannot add one."""
    return f"{run_id}-{step}-{symbol}"


def round_qty(qty: float, lot: float | None) -> float:
    """Round toward zero to whole units (``lot=None``) or to a multiple of ``lot``."""
    if not math.isfinite(qty):
        return 0.0
    step = 1.0 if lot is None else lot
    n = math.floor(abs(qty) / step + 1e-9)
    q = round(n * step, QTY_DIGITS)
    return q if qty >= 0 else -q


def round_qty_array(qty: np.ndarray, lots: np.ndarray | None = None,
                    lot: float | None = None) -> np.ndarray:
    """:func:`round_qty` over an array (the fast path), with the same floats: whole units in
    numpy; the columns where ``lots`` is True (crypto) through :func:`round_qty` itself with
    ``lot`` (its decimal rounding is Python's, which numpy's does not always equal)."""
    q = np.asarray(qty, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        n = np.floor(np.abs(q) / 1.0 + 1e-9)
        out = np.where(np.isfinite(q), np.where(q >= 0, n, -n), 0.0)
    if lots is not None and lots.any():
        sel = np.broadcast_to(lots, q.shape)
        for k in zip(*np.nonzero(sel), strict=True):
            out[k] = round_qty(float(q[k]), lot)
    return out


@dataclass(frozen=True, slots=True)
class Order:
    """A market order for ``qty`` (signed: + buy, - sell) decided at ``step``."""

    client_order_id: str
    step: int
    ts: str
    symbol: str
    qty: float
    decision_price: float
    kind: str = "signal"  # signal | trim | flatten
    asset_class: str = ""
    crypto: bool = False

    @property
    def side(self) -> str:
        return "BUY" if self.qty > 0 else "SELL"


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    step: int
    ts: str
    symbol: str
    qty: float  # signed
    price: float  # after slippage
    base_price: float  # the observed price before slippage
    commission: float
    cash_delta: float  # -(qty * price) - commission


@dataclass(frozen=True, slots=True)
class Position:
    """A position as the fold of its fills: average cost, realised PnL and fees."""

    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0

    def apply(self, f: Fill) -> Position:
        q0, q = self.qty, f.qty
        q1 = round(q0 + q, QTY_DIGITS)
        realized = self.realized
        if q0 == 0 or (q0 > 0) == (q > 0):  # opening or adding
            avg = (q0 * self.avg_price + q * f.price) / q1 if q1 != 0 else 0.0
        else:  # reducing, closing or flipping
            closed = min(abs(q), abs(q0))
            realized += closed * (f.price - self.avg_price) * (1.0 if q0 > 0 else -1.0)
            if q1 == 0:
                avg = 0.0
            elif (q1 > 0) == (q0 > 0):
                avg = self.avg_price
            else:  # flipped: the rest opens at the fill price
                avg = f.price
        return Position(self.symbol, q1, avg, realized, self.fees + f.commission)

    @classmethod
    def from_fills(cls, symbol: str, fills: Iterable[Fill]) -> Position:
        p = cls(symbol)
        for f in fills:
            if f.symbol == symbol:
                p = p.apply(f)
        return p

    def value(self, mark: float) -> float:
        return self.qty * mark if self.qty else 0.0

    def unrealized(self, mark: float) -> float:
        return self.qty * (mark - self.avg_price) if self.qty else 0.0


# ------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    order: Order
    dry_run: bool = False
    event: str = "OrderSubmitted"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderDenied:
    order: Order
    reason: str
    event: str = "OrderDenied"


@dataclass(frozen=True, slots=True)
class OrderRejected:
    order: Order
    reason: str
    step: int = -1
    ts: str = ""
    event: str = "OrderRejected"


@dataclass(frozen=True, slots=True)
class OrderFilled:
    order: Order
    fill: Fill
    event: str = "OrderFilled"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order: Order
    reason: str
    event: str = "OrderCancelled"


OrderEvent = OrderSubmitted | OrderDenied | OrderRejected | OrderFilled | OrderCancelled


class PositionBook(Mapping[str, Position]):
    """The positions of one account as arrays over symbols, in the order each was first
    booked: ``qty``, ``avg_price``, ``realized``, ``fees`` (float64). Read as a mapping of
    :class:`Position` (read-only); written by the broker one fill at a time."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.symbols: list[str] = []
        self.qty = np.zeros(0)
        self.avg_price = np.zeros(0)
        self.realized = np.zeros(0)
        self.fees = np.zeros(0)

    def put(self, p: Position) -> None:
        i = self.index.get(p.symbol)
        if i is None:
            i = self.index[p.symbol] = len(self.symbols)
            self.symbols.append(p.symbol)
            self.qty, self.avg_price, self.realized, self.fees = (
                np.append(a, 0.0) for a in (self.qty, self.avg_price, self.realized, self.fees))
        self.qty[i], self.avg_price[i], self.realized[i], self.fees[i] = (
            p.qty, p.avg_price, p.realized, p.fees)

    def qty_of(self, symbol: str) -> float:
        i = self.index.get(symbol)
        return 0.0 if i is None else float(self.qty[i])

    def held(self) -> list[tuple[str, float]]:
        """(symbol, quantity) of the open positions, in booking order."""
        return [(self.symbols[i], float(self.qty[i])) for i in np.flatnonzero(self.qty)]

    # Mapping: Position objects built on demand (Python floats, as the fold gives them)
    def __getitem__(self, symbol: str) -> Position:
        i = self.index[symbol]
        return Position(symbol, float(self.qty[i]), float(self.avg_price[i]),
                        float(self.realized[i]), float(self.fees[i]))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.symbols))

    def __len__(self) -> int:
        return len(self.symbols)


@dataclass
class PaperBroker:
    """Cash, open orders and fills for one paper account.

    ``submit`` queues an order (or, in dry run, records it and fills nothing); ``fill_open``
    fills queued orders for the symbols that have a price at this step.
    """

    initial_cash: float
    costs: SessionConfig = field(default_factory=SessionConfig)
    dry_run: bool = False
    price_band_pct: float = float("inf")
    fills: list[Fill] = field(default_factory=list)
    open_orders: dict[str, Order] = field(default_factory=dict)
    known_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._cash = float(self.initial_cash)
        self.book = PositionBook()
        for f in self.fills:
            self._book(f)

    # -- derived state -------------------------------------------------------------
    @property
    def cash(self) -> float:
        return self._cash

    @property
    def positions(self) -> Mapping[str, Position]:
        """Read-only: the fold of the fills, by symbol (flat positions included)."""
        return self.book

    def position(self, symbol: str) -> Position:
        return self.book.get(symbol) or Position(symbol)

    def qty(self, symbol: str) -> float:
        """``position(symbol).qty`` without building a Position (asked per symbol and step)."""
        return self.book.qty_of(symbol)

    def open_qty(self, symbol: str) -> float:
        return sum(o.qty for o in self.open_orders.values() if o.symbol == symbol)

    def _book(self, f: Fill) -> None:
        self._cash += f.cash_delta
        self.book.put(self.position(f.symbol).apply(f))

    def mark(self, prices: Mapping[str, float]) -> tuple[float, float, float]:
        """(equity, gross, net) with each position valued at ``prices[symbol]``, summed in
        booking order (:meth:`mark_block` is the same sums over a block of steps)."""
        gross = net = 0.0
        for sym, q in self.book.held():
            v = q * prices[sym]
            gross += abs(v)
            net += v
        return self._cash + net, gross, net

    def mark_block(self, marks: np.ndarray, index: Mapping[str, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`mark` over a block of steps (the fast path): ``marks[k, index[symbol]]``
        values the position at step k; the same sums in the same order, so the same floats."""
        b = len(marks)
        gross = np.zeros(b)
        net = np.zeros(b)
        for sym, q in self.book.held():
            v = q * marks[:, index[sym]]
            gross = gross + np.abs(v)
            net = net + v
        return self._cash + net, gross, net

    # -- commands -----------------------------------------------------------------
    def seen(self, client_order_id: str) -> bool:
        return client_order_id in self.known_ids

    def submit(self, order: Order) -> OrderSubmitted | None:
        """Queue ``order``; ``None`` if its client order id was already used (idempotent)."""
        if order.client_order_id in self.known_ids:
            log_event(log, "order_duplicate_ignored", level=30,
                      client_order_id=order.client_order_id)
            return None
        self.known_ids.add(order.client_order_id)
        if not self.dry_run:
            self.open_orders[order.client_order_id] = order
        return OrderSubmitted(order, dry_run=self.dry_run)

    def deny(self, order: Order, reason: str) -> OrderDenied | None:
        if order.client_order_id in self.known_ids:
            return None
        self.known_ids.add(order.client_order_id)
        return OrderDenied(order, reason)

    def fill_price(self, order: Order, base: float) -> tuple[float, float]:
        """(fill price after adverse slippage, commission) for ``order`` at ``base``."""
        slip = self.costs.slippage_bps / 1e4
        price = base * (1.0 + slip) if order.qty > 0 else base * (1.0 - slip)
        commission = abs(order.qty) * price * self.costs.commission_bps / 1e4
        if not order.crypto:
            commission += abs(order.qty) * self.costs.commission_per_share
        return price, commission

    def fill_open(self, step: int, ts: str, prices: Mapping[str, float]) -> list[OrderEvent]:
        """Fill every open order whose symbol has a finite price in ``prices`` (the next
        bar's open in replay, the next observed price live), in submission order."""
        events: list[OrderEvent] = []
        for cid in list(self.open_orders):
            o = self.open_orders[cid]
            base = prices.get(o.symbol)
            if base is None or not math.isfinite(base) or base <= 0:
                continue  # no price yet: the order stays open until there is one
            del self.open_orders[cid]
            move = base / o.decision_price - 1.0
            if abs(move) > self.price_band_pct + 1e-9:
                events.append(self._reject(
                    o, step, ts,
                    f"PRICE_BAND_AT_FILL: band={self.price_band_pct:g} move={move:.4f} "
                    f"fill_price={base:.10g} decision_price={o.decision_price:.10g} "
                    f"symbol={o.symbol}"))
                continue
            price, commission = self.fill_price(o, base)
            cash_delta = -(o.qty * price) - commission
            if o.qty > 0 and self._cash + cash_delta < 0:
                events.append(self._reject(
                    o, step, ts,
                    f"INSUFFICIENT_CASH: need={-cash_delta:.2f} cash={self._cash:.2f} "
                    f"symbol={o.symbol}"))
                continue
            f = Fill(cid, step, ts, o.symbol, o.qty, price, base, commission, cash_delta)
            self.fills.append(f)
            self._book(f)
            events.append(OrderFilled(o, f))
        return events

    def cancel_open(self, reason: str) -> list[OrderCancelled]:
        """Cancel every open order (a kill switch is set), in submission order."""
        events = [OrderCancelled(o, reason) for o in self.open_orders.values()]
        self.open_orders.clear()
        return events

    def _reject(self, o: Order, step: int, ts: str, reason: str) -> OrderRejected:
        log_event(log, "order_rejected", level=40, client_order_id=o.client_order_id,
                  symbol=o.symbol, qty=o.qty, reason=reason)
        return OrderRejected(o, reason, step, ts)

    def restore(self, fills: Iterable[Fill], open_orders: Iterable[Order],
                known_ids: Iterable[str]) -> PaperBroker:
        """A broker whose state is the fold of ``fills`` (rebuild from the ledger)."""
        b = replace(self, fills=[], open_orders={}, known_ids=set(known_ids))
        for f in fills:
            b.fills.append(f)
            b._book(f)
        for o in open_orders:
            b.open_orders[o.client_order_id] = o
        return b
