"""The session's JSON event log: ``<run>/events.jsonl`` attached for the run, and each
committed step's decision and risk-event records written in one batch."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..telemetry import (
    JsonFormatter,
    RunFilter,
    get_logger,
    log_rows,
)
from .rows import (
    DECISION,
)

log = get_logger("session")

# the fields of the JSON records a step logs (risk_events rows, decisions)
_RISK_EVENT_KEYS = ("step", "bar_ts", "symbol", "kind", "code", "reason", "client_order_id")
_DECISION_KEYS = ("step", "bar_ts", "symbol", "asset_class", "model", "probability", "target",
                  "verdict", "reason", "order", "fill", "latency_ms")



# sessions of this process with an events.jsonl attached (runs may share a process: a
# sweep worker's threads); the package logger's levels are saved by the first, restored by
# the last, so sessions ending out of order leave them as they were
_ATTACHED: list[logging.Handler] = []
_SAVED: list[tuple[int, list[tuple[logging.Handler, int]]]] = []
_ATTACHED_LOCK = threading.Lock()


class EventLog:
    """The event log of :class:`~research_lib.paper.session.Session` (a mixin)."""

    def log_decisions(self, pending: Any) -> None:
        """A committed step's JSON records (``rec.log``: plans, fills, risk events)."""
        if not log.isEnabledFor(logging.INFO):
            return
        plans, fills_now, events = pending
        # batches (telemetry.log_rows): the same JSON records, one write per step
        # clips, denials, rejections, breaches (rejections also at ERROR)
        log_rows(log, "risk_event", _RISK_EVENT_KEYS, events)
        D = DECISION  # column indices: the decision is a plain list in DecisionRow order
        log_rows(log, "decision", _DECISION_KEYS, [
            (d[D.step], d[D.ts], d[D.symbol], d[D.asset_class], d[D.model], d[D.probability],
             d[D.target], d[D.verdict], d[D.reason],
             None if d[D.client_order_id] is None
             else {"client_order_id": d[D.client_order_id], "qty": d[D.qty]},
             fills_now.get(d[D.symbol]), d[D.latency_ms])
            for d in (p.decision for p in plans)])

    def _attach_log(self) -> logging.Handler | None:
        if not self.wiring.log_file:
            return None
        root = logging.getLogger("research_lib")
        path = self.ledger.path.parent / "events.jsonl"
        h = logging.FileHandler(path, encoding="utf-8")
        h.setFormatter(JsonFormatter())
        h.addFilter(RunFilter(self.run_id))  # only this run's records (runs may share a process)
        h.setLevel(logging.INFO)
        with _ATTACHED_LOCK:  # the first session in the process saves the levels
            if not _ATTACHED:
                _SAVED[:] = [(root.level, [(x, x.level) for x in root.handlers])]
                floor = root.getEffectiveLevel()
                for x in root.handlers:  # stderr keeps the level the user asked for
                    if x.level < floor:
                        x.setLevel(floor)
                root.setLevel(min(floor, logging.INFO))
            _ATTACHED.append(h)
            root.addHandler(h)
        return h

    def _detach_log(self, h: logging.Handler | None) -> None:
        if h is None:
            return
        root = logging.getLogger("research_lib")
        with _ATTACHED_LOCK:  # the last session out restores them, whatever the order
            root.removeHandler(h)
            h.close()
            _ATTACHED.remove(h)
            if not _ATTACHED and _SAVED:
                level, handlers = _SAVED.pop()
                root.setLevel(level)
                for x, lv in handlers:
                    x.setLevel(lv)
