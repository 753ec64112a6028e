"""The state the stages of a step read and change, seen whole.

* :class:`Account`: what a step changes. The broker (cash, open orders, the fills, and the
  positions as arrays over symbols: :class:`~research_lib.broker.PositionBook`), the risk
  engine (latched state, session day, day-start equity, peak, per-symbol breakers) and the
  marks (last good close and the one before it, per symbol index), and the last equity.
* :class:`Desk`: what the rules read and a step does not change: the symbols and their
  classes, the limits and settings (a hot reload replaces them between steps), the run id,
  the kill switch, the model and its features, the bar gate.

The stages (:mod:`research_lib.paper.stages`) are plain functions over these two; the
session (:mod:`research_lib.paper.session`) builds them at set-up and hands them to
:func:`research_lib.paper.step.run_step` once per step. :class:`SessionLike` names what the
set-up, reload, resume and fast-replay helpers read of a session, so none of them imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..broker import PaperBroker
    from ..config import RiskLimits, SessionSettings
    from ..flags import KillSwitch
    from ..risk import RiskEngine


@dataclass
class Account:
    """What a step changes (index ``i`` of an array is ``Desk.symbols[i]``)."""

    broker: PaperBroker  # cash, open orders, fills; positions as arrays (broker.book)
    engine: RiskEngine  # ACTIVE / REDUCING / HALTED, day, day start, peak, breakers
    last_close: np.ndarray  # the last good close per symbol (the mark)
    prev_close: np.ndarray  # the good close before it (the breaker's reference)
    last_equity: float  # the equity the last committed step closed at
    # a live resume: the mark the ledger recorded for a held symbol until its first bar
    resume_marks: dict[int, float] = field(default_factory=dict)
    # an external venue (research_lib.venues.link.VenueLink): reconciled after each step,
    # its view checked beside the ledger's; None for the internal paper broker
    venue: Any = None
    # decision_log "changes": each symbol's last recorded decision (None: "full")
    decision_filter: Any = None


@dataclass
class Desk:
    """What the rules read and a step does not change (a reload swaps limits, settings,
    classes between steps)."""

    symbols: list[str]
    index: dict[str, int]
    classes: dict[str, str]
    crypto: np.ndarray  # bool per symbol: traded in lots, no per-share commission
    limits: RiskLimits
    settings: SessionSettings
    run_id: str
    dry_run: bool
    model_label: str
    ks: KillSwitch

    def lot(self, i: int) -> float | None:
        return self.settings.session.crypto_lot_size if self.crypto[i] else None

    def cost_rate(self, i: int, price: float) -> float:
        """Slippage and commission as a share of notional (buying power, projected cash)."""
        c = self.settings.session
        rate = (c.slippage_bps + c.commission_bps) / 1e4
        if not self.crypto[i] and price > 0:
            rate += c.commission_per_share / price
        return rate


class SessionLike(Protocol):
    """What :mod:`research_lib.resume`, :mod:`.reload`, :mod:`.setup` and the fast replay
    read of a running session (so none of them imports the session)."""

    spec: Any
    wiring: Any
    desk: Desk
    acct: Account
    ledger: Any
    feed: Any
    model: Any
    features: Any
    run_id: str
    symbols: list[str]
    mode: str
    n: int

    def __getattr__(self, name: str) -> Any: ...
