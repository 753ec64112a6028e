"""How much of the decision log a run keeps: ``decision_log`` = ``full`` | ``changes``.

``full`` (the default) records one decision per symbol and bar, in the ledger's
``decisions`` table and in ``events.jsonl``, as every run did before. ``changes`` records a
decision that places no order (``HOLD``, ``NO_SIGNAL``, and ``HALTED`` for a symbol with
nothing to close) only when something changed since
that symbol's last recorded decision: the verdict, the reason's code (``CLIPPED_TO_ZERO``,
``WITHIN_REBALANCE_BAND``, ...; not its numbers), the deciding or shadow model, or the
side of the signal (long, flat between the thresholds, short, none). Every other decision
(an order, a denial, a bad bar, ``HALTED``, ``NO_PRICE``, ...) is always recorded.
The plan stage's per-symbol clips that repeat every bar while their cause lasts
(``TARGET_CLIPPED``: a target above the position limit; ``REDUCING_ONLY_CLIPPED``: the
account in REDUCING) are folded into one row per step and code, with their count
(:func:`fold_clips`). Nothing else changes: orders, fills, positions, equity and the other
risk events are the same rows, and both engines keep the same decisions (the fast replay applies the same filter, in the
same order). A resumed run keeps the level it started with (recorded in the ledger's meta
as ``decision_log`` when it is not ``full``) and picks up each symbol's last recorded
decision.

What it saves: a decision row is about 143 bytes of ledger and its JSON record about 386
bytes of ``events.jsonl``; a 300-symbol, 2-year replay kept 41,114 of 160,450 rows
(README "Big universes").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .rows import DECISION

if TYPE_CHECKING:
    from .account import Desk

LEVELS = ("full", "changes")
QUIET_VERDICTS = ("HOLD", "NO_SIGNAL", "HALTED")  # the verdicts that place no order
# per-symbol clips of the plan stage that repeat every bar while their cause lasts (a
# target above the position limit, an account in REDUCING): folded into one row per step
FOLDED_CLIPS = ("TARGET_CLIPPED", "REDUCING_ONLY_CLIPPED")


def check_level(value: Any) -> str:
    """``None`` -> ``full``; anything but :data:`LEVELS` is an error naming the fix."""
    if value is None:
        return "full"
    if value not in LEVELS:
        raise ConfigError(f"decision_log {value!r} is not a level; use 'full' (every decision, "
                          "the default) or 'changes' (decisions without an order only when "
                          "they change)")
    return str(value)


def _side(desk: Desk, prob: Any) -> int | None:
    if prob is None or not math.isfinite(prob):
        return None
    sig = desk.settings.signal
    return 1 if prob > sig.long_threshold else (-1 if prob < sig.short_threshold else 0)


def _code(reason: Any) -> Any:
    return reason.split(":", 1)[0] if isinstance(reason, str) else reason


class DecisionFilter:
    """The ``changes`` level: each symbol's last recorded decision, as a key."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Any, ...]] = {}

    def keep_values(self, desk: Desk, symbol: str, model: Any, prob: Any, shadow: Any,
                    verdict: str, reason: Any) -> bool:
        key = (verdict, _code(reason), model, shadow, _side(desk, prob))
        if verdict in QUIET_VERDICTS and self.last.get(symbol) == key:
            return False
        self.last[symbol] = key
        return True

    def keep(self, desk: Desk, d: list[Any]) -> bool:
        """For a decision row (a list in ``DecisionRow`` order)."""
        D = DECISION
        return self.keep_values(desk, d[D.symbol], d[D.model], d[D.probability],
                                d[D.shadow_model], d[D.verdict], d[D.reason])

    def prime(self, desk: Desk, conn: Any) -> None:
        """A resumed run: each symbol's last recorded decision."""
        from ..ledger_columns import iter_bulk  # either store (a replay's column blocks)

        cols = ("symbol", "model", "probability", "shadow_model", "verdict", "reason")
        last: dict[str, tuple[Any, ...]] = {}
        for part in iter_bulk(conn, "decisions", cols):
            for row in zip(*(part[c].tolist() for c in cols), strict=True):
                last[row[0]] = row
        for sym, model, prob, shadow, verdict, reason in last.values():
            self.keep_values(desk, sym, model, None if prob != prob else prob, shadow,
                             verdict, reason)


def fold_clips(rec: Any) -> None:
    """``changes``: a step's per-symbol :data:`FOLDED_CLIPS` rows of one code, when there
    are two or more, become one row in the first one's place (symbol empty), with the
    count and the first one's reason: ``TARGET_CLIPPED: symbols=3 first=TARGET_CLIPPED: ...``
    (the summary counts ``symbols=``)."""
    rows = rec.rows.get("risk_events")
    if not rows:
        return
    groups: dict[str, list[Any]] = {}
    for r in rows:
        if r.kind == "clip" and r.symbol is not None and r.code in FOLDED_CLIPS:
            groups.setdefault(r.code, []).append(r)
    folded = {code: rs for code, rs in groups.items() if len(rs) >= 2}
    if not folded:
        return
    out = []
    for r in rows:
        rs = folded.get(r.code) if r.kind == "clip" and r.symbol is not None else None
        if rs is None:
            out.append(r)
        elif r is rs[0]:
            out.append(r._replace(symbol=None,
                                  reason=f"{r.code}: symbols={len(rs)} first={r.reason}"))
    rec.rows["risk_events"] = out


def meta_entry(level: str) -> dict[str, str]:
    """What the ledger's meta records: nothing for ``full`` (ledgers stay as they were)."""
    return {} if level == "full" else {"decision_log": level}


def open_filter(asked: Any, meta: dict[str, Any], desk: Desk, conn: Any,
                resumed: bool) -> DecisionFilter | None:
    """The run's filter (``None``: ``full``, nothing filtered). A resume keeps the
    recorded level; asking another is refused."""
    level = str(meta.get("decision_log", "full"))
    if asked is not None and check_level(asked) != level:
        raise ConfigError(f"decision_log {asked!r} cannot be used with --resume: the run keeps "
                          f"its recorded decision_log {level!r}; drop the option")
    if level == "full":
        return None
    flt = DecisionFilter()
    if resumed:
        flt.prime(desk, conn)
    return flt
