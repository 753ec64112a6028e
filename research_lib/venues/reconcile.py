"""Reconciliation: the venue's account against the ledger's, a pure function.

The ledger is what this run recorded (cash, the positions folded from its fills, its open
orders); the venue is what the venue reports (cash, positions, open orders). They agree
when, per symbol and for cash, the venue's number equals the ledger's within the
tolerance. A difference is **explained** when an in-flight order accounts for it: an order
open in the ledger (or decided by a step not yet committed) that the venue has already
filled, in part or whole, and whose fill the ledger books at its next fill stage. Anything
else is a **difference** (with its numbers): a position the ledger does not have (or does
not have at that size), an open order at the venue the ledger does not know, an order the
ledger holds open that the venue does not know, cash that does not add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .base import VenueOrder, VenueSnapshot

EXPLAINED = "EXPLAINED"
DIFFERENCE = "DIFFERENCE"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # position | open_order | cash | account
    symbol: str | None
    client_order_id: str | None
    ledger: float | None
    venue: float | None
    in_flight: float | None
    verdict: str  # EXPLAINED | DIFFERENCE
    reason: str


def _g(x: float) -> str:
    return f"{x:.10g}"


def received(vo: VenueOrder, fee: float) -> tuple[float, float]:
    """(quantity, cash) a fill of ``vo`` so far adds to the account when the venue takes
    ``fee`` (a fraction) from what the fill credits: a buy's quantity, a sell's cash (how
    Alpaca charges crypto)."""
    q, px = vo.filled_qty, vo.filled_avg_price or 0.0
    if q > 0:
        return q * (1 - fee), -q * px
    return q, -q * px * (1 - fee)


def reconcile(ledger_positions: Mapping[str, float], ledger_cash: float,
              ledger_open: Mapping[str, float], snap: VenueSnapshot,
              in_flight: Mapping[str, VenueOrder | None], qty_tol: float, cash_tol: float,
              fees: Mapping[str, float] | None = None) -> list[Finding]:
    """Findings of one reconciliation (nothing when everything agrees).

    ``ledger_open``: client order id -> quantity of each order open in the ledger;
    ``in_flight``: client order id -> the venue's view of each in-flight order
    (the ledger's open orders and a not-yet-committed step's), ``None`` when the venue
    does not know it. ``fees``: symbol -> the fee the venue takes from what a fill credits
    (:func:`received`; none: 0)."""
    out: list[Finding] = []
    fq: dict[str, float] = {}
    fcash = 0.0
    fees = fees or {}
    for vo in in_flight.values():
        if vo is None or vo.filled_qty == 0:
            continue
        q, c = received(vo, fees.get(vo.symbol, 0.0))
        fq[vo.symbol] = fq.get(vo.symbol, 0.0) + q
        fcash += c

    for sym in sorted(set(ledger_positions) | set(snap.positions) | set(fq)):
        led = ledger_positions.get(sym, 0.0)
        ven = snap.positions.get(sym, 0.0)
        fl = fq.get(sym, 0.0)
        if abs(ven - led) <= qty_tol:
            continue
        if fl and abs(ven - (led + fl)) <= qty_tol:
            out.append(Finding("position", sym, None, led, ven, fl, EXPLAINED,
                               f"IN_FLIGHT_FILL: symbol={sym} ledger={_g(led)} venue={_g(ven)} "
                               f"in_flight={_g(fl)}"))
            continue
        out.append(Finding("position", sym, None, led, ven, fl, DIFFERENCE,
                           f"POSITION_DIFFERENCE: symbol={sym} ledger={_g(led)} venue={_g(ven)} "
                           f"in_flight={_g(fl)} unexplained={_g(ven - led - fl)} "
                           f"tolerance={qty_tol:g}" + (
                               f" (the venue's crypto fee is booked at {fees[sym] * 1e4:g} "
                               "bps: is venue.crypto_fee_bps your tier's?)"
                               if fees.get(sym) else "")))

    for vo in snap.open_orders:
        cid = vo.client_order_id
        if cid in ledger_open or in_flight.get(cid) is not None:
            continue
        out.append(Finding("open_order", vo.symbol, cid, None, vo.qty - vo.filled_qty, None,
                           DIFFERENCE,
                           f"UNKNOWN_VENUE_ORDER: client_order_id={cid} venue_order_id="
                           f"{vo.venue_order_id} symbol={vo.symbol} qty={_g(vo.qty)} "
                           f"filled={_g(vo.filled_qty)} status={vo.status}"))
    for cid, qty in ledger_open.items():
        if in_flight.get(cid) is None:
            out.append(Finding("open_order", None, cid, qty, None, None, DIFFERENCE,
                               f"ORDER_MISSING_AT_VENUE: client_order_id={cid} qty={_g(qty)}: "
                               "the ledger holds it open, the venue has no order with this id"))

    ven_cash = snap.account.cash
    if abs(ven_cash - ledger_cash) > cash_tol:
        if fcash and abs(ven_cash - (ledger_cash + fcash)) <= cash_tol:
            out.append(Finding("cash", None, None, ledger_cash, ven_cash, fcash, EXPLAINED,
                               f"IN_FLIGHT_FILL: cash ledger={ledger_cash:.2f} venue="
                               f"{ven_cash:.2f} in_flight={fcash:.2f}"))
        else:
            out.append(Finding("cash", None, None, ledger_cash, ven_cash, fcash, DIFFERENCE,
                               f"CASH_DIFFERENCE: ledger={ledger_cash:.2f} venue={ven_cash:.2f} "
                               f"in_flight={fcash:.2f} unexplained="
                               f"{ven_cash - ledger_cash - fcash:.2f} tolerance={cash_tol:g}"))
    return out
