"""Jumps the bar gate holds, confirms or refuses (``config/session.yaml``, section ``gate``).

A close beyond its calendar's jump threshold of the last good close is not refused for the
rest of the run any more. :class:`JumpGate` tells three cases apart:

* **likely split or unit error**: the close ratio is within ``split_tolerance`` of a split
  ratio (1/2, 1/3, 2/3, 1/4, 1/5, 1/10, 2, 3, 4, 5 or 10) and the volume did not
  move with the price (an unadjusted 2:1 split halves the price and about doubles the
  volume), or the ratio is beyond 10.5x either way. The symbol is locked: every later bar
  beyond the threshold of the last good close is refused (``LIKELY_SPLIT``), until one
  comes back within it;
* **pending jump**: any other jump. The jump bar and the bars after it are refused (no
  feature, no mark, no order) while they hold the new level: each within the threshold of
  the jump bar's close and not back toward the old level by half the jump or more. After
  ``jump_confirm_bars`` such bars the jump is confirmed (a ``JUMP_CONFIRMED`` data event
  with the numbers): that bar is accepted, the held bars are fed to the features and the
  model first, in order, so the indicators equal those of an uninterrupted series;
* **reversal**: a pending symbol's bar back within the threshold of the old close is
  accepted as usual and the jump is dropped (``JUMP_REVERSED``); a bar that neither holds
  nor reverses starts a new pending jump.

The same object runs in the step loop and in the fast replay's pass 1 (both call
``Session._gate``), and on a resume the re-fed history rebuilds its state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

JUMP_CODE = 8  # index of PRICE_JUMP in research_lib.data.sanity.BAR_FAULTS
# forward splits 2:1 3:1 3:2 4:1 5:1 10:1 and reverse splits 1:2 ... 1:10 (a reverse 2:3
# is left out: a +50% close is a plausible takeover bid)
SPLIT_RATIOS = (1 / 2, 1 / 3, 2 / 3, 1 / 4, 1 / 5, 1 / 10, 2.0, 3.0, 4.0, 5.0, 10.0)
UNIT_ERROR_RATIO = 10.5  # a close more than this many times (or this fraction of) the last


def split_like(ratio: float, volume_ratio: float, tolerance: float) -> str | None:
    """Why a close ratio looks like an unadjusted split or a unit error, else ``None``.

    ``volume_ratio`` (jump bar volume over the last good bar's; NaN, 0 or inf: unknown) only
    argues against a split when it moved the same way as the price."""
    if not (1 / UNIT_ERROR_RATIO <= ratio <= UNIT_ERROR_RATIO):
        return (f"LIKELY_UNIT_ERROR: close ratio {ratio:.4g} is beyond {UNIT_ERROR_RATIO:g}x; "
                "not confirmed as a market move")
    near = [r for r in SPLIT_RATIOS if abs(ratio / r - 1.0) <= tolerance]
    if not near:
        return None
    vr = volume_ratio
    if math.isfinite(vr) and vr > 0 and vr != 1.0 and (vr > 1.0) == (ratio > 1.0):
        return None  # volume moved with the price: a market move, not more shares
    r = near[0]
    split = f"{round(1 / r)}:1" if r < 1 and abs(1 / r - round(1 / r)) < 1e-9 else (
        f"1:{round(r)}" if r >= 1 and abs(r - round(r)) < 1e-9 else f"ratio {r:.4g}")
    return (f"LIKELY_SPLIT: close ratio {ratio:.4g} is within {tolerance:g} of a {split} "
            f"split (volume ratio {vr:.4g}); not confirmed as a move: use split-adjusted data")


@dataclass
class _Pending:
    ref: float  # the last good close before the jump
    jump: float  # the jump bar's close
    since: str  # the jump bar's timestamp
    held: list[tuple[float, ...]] = field(default_factory=list)  # (dow, high, low, close, vol)


class JumpGate:
    """Per-symbol jump state of the bar gate (see the module docstring)."""

    def __init__(self, confirm_bars: int, split_tolerance: float) -> None:
        self.confirm_bars = int(confirm_bars)
        self.split_tolerance = float(split_tolerance)
        self.pending: dict[int, _Pending] = {}
        self.locked: dict[int, str] = {}  # row -> since (a likely split)
        # set by review(), read once by the step: data events, and held bars to feed first
        self.notes: list[tuple[int, str, str]] = []
        self.release: list[tuple[int, tuple[float, ...]]] = []

    def clear(self) -> None:
        if self.notes:  # new lists (a caller may keep the old ones); none on a quiet step
            self.notes = []
        if self.release:
            self.release = []

    def review(self, rows: np.ndarray, code: np.ndarray, bars: Any, ref: np.ndarray,
               thr: np.ndarray, last_volume: Callable[[int], float]) -> dict[int, str]:
        """Revise ``code`` (the bar faults, in place) for jumps; returns, per position in
        ``rows``, what to add to a refused bar's reason. ``last_volume(row)``: the volume
        of the symbol's last good bar (asked only when a jump needs it)."""
        self.clear()
        extra: dict[int, str] = {}
        if not self.pending and not (code == JUMP_CODE).any():
            return extra
        for k in range(len(rows)):
            c = int(code[k])
            i = int(rows[k])
            p = self.pending.get(i)
            if c != JUMP_CODE:
                if c == 0 and p is not None:  # back near the old level: it was no move
                    del self.pending[i]
                    self.notes.append((i, "JUMP_REVERSED", (
                        f"JUMP_REVERSED: close={float(bars.close[k]):.10g} is back within "
                        f"{float(thr[k]):g} of last_good_close={p.ref:.10g}; the jump to "
                        f"{p.jump:.10g} at {p.since} ({len(p.held)} bar(s) refused) is "
                        "dropped")))
                if c == 0 and i in self.locked:
                    del self.locked[i]
                continue  # another fault: refused for it, the jump state unchanged
            close = float(bars.close[k])
            bar = (bars.dow[k], float(bars.high[k]), float(bars.low[k]), close,
                   float(bars.volume[k]))
            t = float(thr[k])
            if p is not None and abs(close / p.jump - 1.0) <= t and (
                    (close - p.ref) / (p.jump - p.ref) > 0.5):
                if len(p.held) >= self.confirm_bars:  # the jump bar and enough after it
                    code[k] = 0
                    del self.pending[i]
                    self.release += [(i, b) for b in p.held]
                    self.notes.append((i, "JUMP_CONFIRMED", (
                        f"JUMP_CONFIRMED: close={close:.10g} last_good_close={p.ref:.10g} "
                        f"move={p.jump / p.ref - 1.0:+.4f} since={p.since} "
                        f"held={len(p.held)} bar(s) threshold={t:g} "
                        f"confirm_bars={self.confirm_bars}; the new level is accepted, the "
                        "held bars are fed to the features in order (no order was placed "
                        "on them)")))
                    continue
                p.held.append(bar)
                extra[k] = (f"; JUMP_PENDING: bar {len(p.held) - 1} of {self.confirm_bars} "
                            f"after the jump at {p.since} (close {p.jump:.10g}) holds its level")
                continue
            r = float(ref[k])
            v0 = float(last_volume(i))
            with np.errstate(divide="ignore", invalid="ignore"):
                vr = float(np.float64(bar[4]) / np.float64(v0)) if v0 == v0 else math.nan
            if i in self.locked:
                self.pending.pop(i, None)
                extra[k] = f"; LIKELY_SPLIT: locked since {self.locked[i]}"
                continue
            why = split_like(close / r, vr, self.split_tolerance)
            if why is not None:
                self.pending.pop(i, None)
                self.locked[i] = str(bars.ts)
                extra[k] = f"; {why}"
                continue
            restarted = " (restarted: the previous jump did not hold)" if p is not None else ""
            self.pending[i] = _Pending(r, close, str(bars.ts), [bar])
            extra[k] = (f"; JUMP_PENDING: held for confirmation{restarted}: accepted at bar "
                        f"{self.confirm_bars} after it if each stays within {t:g} of "
                        f"close={close:.10g} and gives back less than half the move")
        return extra


def stale_marks(conn: Any) -> dict[str, dict[str, Any]]:
    """Open positions whose symbol's latest bars were refused: still marked at the last good
    close. ``{SYM: {since, last_good, bars_refused, qty}}`` from the ledger (any engine,
    either store: :mod:`research_lib.ledger_columns`)."""
    from ..ledger_columns import bulk_max_step, bulk_rows, iter_bulk

    last = bulk_max_step(conn, "positions")
    if last is None:
        return {}
    held = [(sym, qty, mark) for sym, qty, mark in
            bulk_rows(conn, "positions", ("symbol", "qty", "mark"), step=last) if qty != 0]
    if not held:
        return {}
    # per held symbol, streamed over the decisions in step order (one part in memory):
    # the last step it had a good bar, and the refused bars since (count, first ts)
    qty_mark = {sym: (qty, mark) for sym, qty, mark in held}
    names = np.asarray(list(qty_mark), dtype=object)
    good_at = dict.fromkeys(qty_mark, -1)
    refused: dict[str, list[Any]] = {sym: [0, None] for sym in qty_mark}
    for part in iter_bulk(conn, "decisions", ("step", "ts", "symbol", "verdict")):
        mine = np.isin(part["symbol"], names)
        if not mine.any():
            continue
        sym, step = part["symbol"][mine], part["step"][mine]
        ts, bad = part["ts"][mine], part["verdict"][mine] == "BAD_BAR"
        for name in set(sym.tolist()):
            m = sym == name
            good = step[m & ~bad]
            if good.size:
                good_at[name] = int(good.max())
                refused[name] = [0, None]
            late = m & bad & (step > good_at[name])
            if late.any():
                n, since = refused[name]
                first = min(ts[late].tolist())
                refused[name] = [n + int(late.sum()), first if since is None else since]
    out: dict[str, dict[str, Any]] = {}
    for name, (n, since) in refused.items():
        if n:
            qty, mark = qty_mark[name]
            out[name] = {"since": since, "last_good": mark, "bars_refused": n, "qty": qty}
    return out
