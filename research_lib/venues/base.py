"""The broker interface the paper engine trades through, and what an external venue reports.

* :class:`Broker` is what the stages of a step (:mod:`research_lib.paper.stages`) read and
  call of ``Account.broker``. Two implementations: :class:`~research_lib.broker.PaperBroker`
  (the internal paper broker, the default: it fills at the next observed price itself) and
  :class:`~research_lib.venues.broker.VenueBroker` (orders go to an external venue, which
  fills them; the ledger books what the venue reports).
* :class:`Venue` is what a venue client gives: the account, positions, open orders, one
  order by our client order id, a submit that never creates a second order for one client
  order id, a cancel. :class:`~research_lib.venues.alpaca.AlpacaVenue` speaks Alpaca's
  paper trading API through ``alpaca-py``.
* :class:`VenueOrder`, :class:`VenueAccount`, :class:`VenueSnapshot`: the venue's view, in
  our symbols and signed quantities (+ buy / long, - sell / short).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import VenueError

if TYPE_CHECKING:
    from ..broker import Fill, Order, OrderEvent, Position, PositionBook
    from ..config import SessionConfig

# a venue order in one of these states may still fill (Alpaca's order statuses)
OPEN_STATUSES = frozenset({
    "new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding",
    "pending_cancel", "pending_replace", "pending_review", "held", "calculated", "stopped",
    "suspended", "done_for_day"})
# ... and in these it never will again
TERMINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})


@runtime_checkable
class Broker(Protocol):
    """What a step reads and calls of its broker (``Account.broker``)."""

    initial_cash: float
    costs: SessionConfig
    dry_run: bool
    price_band_pct: float
    fills: list[Fill]
    open_orders: dict[str, Order]  # client order id -> order, in submission order
    known_ids: set[str]  # every client order id ever decided (submitted or denied)
    book: PositionBook  # the positions as arrays over symbols (the fold of the fills)

    @property
    def cash(self) -> float: ...

    @property
    def positions(self) -> Mapping[str, Position]: ...

    def position(self, symbol: str) -> Position: ...

    def qty(self, symbol: str) -> float: ...

    def open_qty(self, symbol: str) -> float: ...

    def mark(self, prices: Mapping[str, float]) -> tuple[float, float, float]: ...

    def mark_block(self, marks: Any, index: Mapping[str, int]) -> tuple[Any, Any, Any]: ...

    def seen(self, client_order_id: str) -> bool: ...

    def submit(self, order: Order) -> Any:
        """``OrderSubmitted``, ``OrderRejected`` (a venue refused it at once) or ``None``
        (the client order id was already used)."""

    def deny(self, order: Order, reason: str) -> Any: ...

    def fill_open(self, step: int, ts: str, prices: Mapping[str, float]) -> list[OrderEvent]:
        """The open orders' fills, rejections, cancels (and, at a venue, partial fills)."""

    def cancel_open(self, reason: str) -> list[Any]:
        """Cancel every open order (a kill switch is set)."""

    def restore(self, fills: Iterable[Fill], open_orders: Iterable[Order],
                known_ids: Iterable[str]) -> Broker: ...


# ---------------------------------------------------------------- the venue's view
@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the venue reports it (quantities signed like ours)."""

    client_order_id: str
    venue_order_id: str
    symbol: str  # ours (SPY, BTC-USD), mapped back from the venue's
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: str

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class VenueAccount:
    account_id: str
    status: str
    cash: float
    equity: float
    buying_power: float
    blocked: str | None = None  # why the venue refuses orders (trading_blocked, ...)


@dataclass(frozen=True)
class VenueSnapshot:
    """The account, its positions (our symbol, or the venue's for a symbol the run does
    not trade, -> signed quantity) and its open orders, read one after another."""

    account: VenueAccount
    positions: dict[str, float]
    open_orders: list[VenueOrder] = field(default_factory=list)

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def open_remaining(self, symbol: str) -> float:
        """What the venue's open orders for ``symbol`` may still add (signed)."""
        return sum(o.qty - o.filled_qty for o in self.open_orders if o.symbol == symbol)


class Venue(Protocol):
    """A venue client (every call bounded: retries with back-off, then
    :class:`VenueUnavailable`)."""

    name: str
    url: str

    def account(self) -> VenueAccount: ...

    def positions(self) -> dict[str, float]: ...

    def open_orders(self) -> list[VenueOrder]: ...

    def order(self, client_order_id: str) -> VenueOrder | None:
        """The order with our client order id, or ``None`` when the venue has none."""

    def submit(self, order: Order) -> tuple[VenueOrder, bool]:
        """Send ``order`` (a market order) under its client order id; ``(order, adopted)``:
        ``adopted`` when the venue already had that id (a retry after a timeout or a dropped
        connection, or a resumed step) and nothing new was sent. Raises
        :class:`VenueRejected` when the venue refuses it."""

    def cancel(self, venue_order_id: str) -> None: ...

    def snapshot(self) -> VenueSnapshot: ...


# ---------------------------------------------------------------- outcomes, errors
class VenueUnavailable(VenueError):
    """A venue request still failed after the bounded retries (429, 5xx, timeouts, dropped
    connections): the session stops, fail closed, with nothing of the step recorded."""


class VenueRejected(Exception):
    """The venue refused an order (an outcome recorded as ``OrderRejected``, not an error)."""

    def __init__(self, reason: str, venue_order_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.venue_order_id = venue_order_id


@dataclass(frozen=True, slots=True)
class OrderPartiallyFilled:
    """A venue filled part of an open order (the order stays open; its fill is booked when
    the venue reports it done: filled, or cancelled/expired with the part filled)."""

    order: Order
    filled_qty: float
    avg_price: float | None
    venue_order_id: str
    event: str = "OrderPartiallyFilled"
