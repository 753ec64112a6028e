"""A session's link to an external venue: reconciliation at start and after every step, the
venue's view in the risk check, and the HALT latch a difference sets.

* :meth:`VenueLink.at_start` (before the first decision, after a resume too): the venue's
  account against the ledger's. Orders of the step that was being decided when the session
  stopped (client order ids ``run-NEXT-symbol``) count as in flight: the resumed step looks
  each id up before sending and adopts what the venue already has.
* :meth:`VenueLink.after_step` (inside the step, before its rows are written): the venue's
  reports of the step go to ``venue_events``, then a reconciliation; findings go to
  ``reconciliations`` in the step's own transaction.
* A **difference** (numbers in the row and the reason) latches the account HALTED with
  reason ``RECONCILIATION_DIFFERENCE: ...``. Unlike a drawdown halt it sends no order at
  all, not even a flattening one (the ledger's positions are what is in doubt): every order
  is denied ``VENUE_UNRECONCILED`` until a person resolves the difference at the venue and
  runs ``research-lib reset-halt RUN``; the resume reconciles again before deciding.
* :meth:`VenueLink.check_order`: every order the ledger's risk check passes is checked
  again against the venue's view (its position and open orders for the symbol, its equity,
  its cash), with the same rules; a denial reads ``VENUE_VIEW: <rule's reason>``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..broker import client_order_id
from ..errors import ConfigError
from ..paper.rows import ReconciliationRow, RiskEventRow, VenueEventRow
from ..paper.stages import state_row
from ..risk import OrderCheck, StateChange, TradingState
from ..telemetry import get_logger, log_event
from .base import VenueOrder, VenueSnapshot
from .config import VenueConfig, load_venue, venue_reload_problem
from .reconcile import DIFFERENCE, Finding, received, reconcile

if TYPE_CHECKING:
    from ..ledger import StepRecord
    from ..paper.account import Account, Desk

log = get_logger("venue")

HALT_CODE = "RECONCILIATION_DIFFERENCE"


def undecided_ids(run_id: str, next_step: int, symbols: Any) -> list[str]:
    """The client order ids of the step after the ledger's last (``run-NEXT-symbol``): a
    session that stopped while deciding it may have sent them already."""
    return [client_order_id(run_id, next_step, sym) for sym in symbols]


def in_flight(venue: Any, broker: Any, snap: VenueSnapshot, extra: Any = ()
              ) -> dict[str, VenueOrder | None]:
    """The venue's view of each order open in the ledger (``broker.open_orders``; ``None``
    when the venue does not know it), and of the ``extra`` ids (a step decided but not
    committed) the venue has."""
    at_venue = {o.client_order_id: o for o in snap.open_orders}
    out: dict[str, VenueOrder | None] = {}
    for cid in broker.open_orders:
        out[cid] = at_venue.get(cid) or venue.order(cid)
    for cid in extra:
        if cid not in out and cid not in broker.known_ids:
            vo = at_venue.get(cid) or venue.order(cid)
            if vo is not None:
                out[cid] = vo
    return out


def reconcile_broker(venue: Any, cfg: VenueConfig, broker: Any, extra: Any = ()
                     ) -> tuple[VenueSnapshot, dict[str, VenueOrder | None], list[Finding]]:
    """One snapshot of the venue, the in-flight orders, and the findings of the venue's
    account against the ledger's (``broker``: the positions folded from its fills, its
    cash, its open orders). A session's reconciliations and ``research-lib ready`` both
    reconcile through here."""
    snap = venue.snapshot()
    flight = in_flight(venue, broker, snap, extra)
    found = reconcile(dict(broker.book.held()), broker.cash,
                      {cid: o.qty for cid, o in broker.open_orders.items()}, snap, flight,
                      cfg.qty_tolerance, cfg.cash_tolerance, fee_rates(venue, snap, flight))
    return snap, flight, found


def fee_rates(venue: Any, snap: VenueSnapshot, flight: Any) -> dict[str, float]:
    """symbol -> the fee the venue takes from what a fill credits (a venue without
    ``fee_rate`` takes none)."""
    rate = getattr(venue, "fee_rate", None)
    if rate is None:
        return {}
    syms = set(snap.positions) | {vo.symbol for vo in flight.values() if vo is not None}
    return {s: rate(s) for s in sorted(syms)}


class VenueLink:
    """What a session holds of its venue (``Account.venue``)."""

    def __init__(self, venue: Any, cfg: VenueConfig, run_id: str, config_file: Path) -> None:
        self.venue = venue
        self.cfg = cfg
        self.run_id = run_id
        self.last: VenueSnapshot | None = None  # the venue's view after the last step
        self.cash_gap = 0.0  # ledger cash + in-flight fills - venue cash at that view
        # a resume: the orders the venue already has from the step that was being decided
        # (by symbol); the resumed step adopts them, so the venue's view must not count
        # them twice
        self.adopt: dict[str, VenueOrder] = {}
        self.unreconciled: str | None = None  # the latched difference, until reset-halt
        self.meta: dict[str, Any] = {}  # what the ledger's meta "venue" records
        self._file = config_file
        self._file_cfg = load_venue(config_file)
        self._stamp = _stat(config_file)
        self._reload_error: str | None = None

    # ------------------------------------------------------------------ views
    def _reconcile(self, broker: Any, extra: list[str] = ()) -> list[Finding]:
        snap, flight, found = reconcile_broker(self.venue, self.cfg, broker, extra)
        self.last = snap
        fees = fee_rates(self.venue, snap, flight)
        paid = sum(-received(vo, fees.get(vo.symbol, 0.0))[1]
                   for vo in flight.values() if vo is not None)
        self.cash_gap = broker.cash - paid - snap.account.cash
        self.adopt = {vo.symbol: vo for cid, vo in flight.items()
                      if cid in extra and vo is not None}
        return found

    def _reason(self, diffs: list[Finding]) -> str:
        shown = "; ".join(d.reason for d in diffs[:5])
        more = f"; and {len(diffs) - 5} more" if len(diffs) > 5 else ""
        return (f"{HALT_CODE}: {shown}{more}. The venue's account and the ledger disagree: "
                "no order is sent; resolve it at the venue, then `research-lib reset-halt "
                f"{self.run_id}` (a resume reconciles again)")

    # ------------------------------------------------------------------ start
    def at_start(self, s: Any) -> None:
        """Reconcile before the first decision; a difference is recorded (outside any step)
        and latches HALTED."""
        st, acct, led = s.state, s.acct, s.ledger
        if (acct.engine.state is TradingState.HALTED
                and (st.halt_reason or "").startswith(HALT_CODE)):
            self.unreconciled = st.halt_reason  # latched until reset-halt
        extra = undecided_ids(self.run_id, s.next_step, s.symbols)
        found = self._reconcile(acct.broker, extra)
        rows = [ReconciliationRow(None, None, f.kind, f.symbol, f.client_order_id, f.ledger,
                                  f.venue, f.in_flight, f.verdict, f.reason) for f in found]
        diffs = [f for f in found if f.verdict == DIFFERENCE]
        log_event(log, "venue_reconciled", level=logging.WARNING if diffs else logging.INFO,
                  at="start", differences=len(diffs), explained=len(found) - len(diffs))
        if not found:
            return
        if not diffs:
            led.append_rows({"reconciliations": rows}, "the reconciliation at start")
            return
        reason = self._reason(diffs)
        led.append_rows({"reconciliations": rows, "risk_events": [RiskEventRow(
            None, None, None, "reconciliation", HALT_CODE, reason, None)]},
            "the reconciliation at start")
        led.append_state_change("account", acct.engine.state.value, TradingState.HALTED.value,
                                reason, acct.last_equity, acct.engine.peak)
        acct.engine.state = TradingState.HALTED
        self.unreconciled = reason
        log_event(log, "account_halted_reconciliation", level=logging.WARNING, reason=reason)

    # ------------------------------------------------------------------ each step
    def after_step(self, desk: Desk, acct: Account, rec: StepRecord) -> None:
        """The step's venue reports and a reconciliation, into the step's rows."""
        self._check_reload(desk, acct, rec)
        found = self._reconcile(acct.broker)
        for e in acct.broker.drain():
            rec.add("venue_events", VenueEventRow(rec.step, rec.ts, *e))
        for f in found:
            rec.add("reconciliations", ReconciliationRow(
                rec.step, rec.ts, f.kind, f.symbol, f.client_order_id, f.ledger, f.venue,
                f.in_flight, f.verdict, f.reason))
        diffs = [f for f in found if f.verdict == DIFFERENCE]
        if not diffs:
            return
        reason = self._reason(diffs)
        rec.add("risk_events", RiskEventRow(rec.step, rec.ts, None, "reconciliation", HALT_CODE,
                                            reason, None))
        eng = acct.engine
        if eng.state is not TradingState.HALTED or self.unreconciled is None:
            ch = StateChange("account", eng.state.value, TradingState.HALTED.value, reason)
            eng.state = TradingState.HALTED
            state_row(desk, acct, rec, ch)
        self.unreconciled = reason
        log_event(log, "account_halted_reconciliation", level=logging.WARNING, step=rec.step,
                  reason=reason)

    def check_order(self, engine: Any, c: OrderCheck) -> str | None:
        """The order ``c`` against the venue's view (after the ledger's check passed)."""
        if self.unreconciled is not None:
            return (f"VENUE_UNRECONCILED: the venue and the ledger disagree; no order until "
                    f"`research-lib reset-halt {self.run_id}` symbol={c.symbol}")
        snap = self.last
        if snap is None:  # never: at_start takes a view; fail closed all the same
            return f"VENUE_VIEW_UNKNOWN: no view of the venue yet symbol={c.symbol}"
        if snap.account.blocked:
            return f"VENUE_BLOCKED: {snap.account.blocked} symbol={c.symbol}"
        vpos = snap.position(c.symbol) + snap.open_remaining(c.symbol)
        twice = self.adopt.get(c.symbol)  # the order this one adopts: counted in c already
        if twice is not None:
            vpos -= twice.qty if twice.open else twice.filled_qty
        gross = max(c.gross + abs(vpos * c.price) - abs(c.position * c.price), 0.0)
        view = dataclasses.replace(c, position=vpos, equity=snap.account.equity, gross=gross,
                                   cash=c.cash - max(self.cash_gap, 0.0))
        reason = engine.check(view)
        return None if reason is None else f"VENUE_VIEW: {reason} (venue equity=" \
            f"{snap.account.equity:.2f} position={vpos:.10g})"

    def _check_reload(self, desk: Desk, acct: Account, rec: StepRecord) -> None:
        """The ``venue`` section is read once: an edit is refused and recorded (once)."""
        stamp = _stat(self._file)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            problem = venue_reload_problem(self._file_cfg, load_venue(self._file))
        except (ConfigError, OSError) as exc:  # the session.yaml reload says so too
            problem = str(exc)
        if problem != self._reload_error:
            self._reload_error = problem
            if problem:
                state_row(desk, acct, rec, StateChange(
                    "config", "LOADED", "REJECTED", f"session.yaml: {problem}; kept previous"))


def _stat(path: Path) -> tuple[Any, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
