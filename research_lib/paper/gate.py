"""The bar gate: the whole-frame sanity suite at start, then per step each new bar checked
(faults, stale bars, jumps held until confirmed); a bad bar is recorded and used for nothing."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..telemetry import (
    get_logger,
    log_event,
)
from .feeds import (
    StepBars,
)
from .spec import (
    interval_seconds,
)

log = get_logger("session")


class BarGate:
    """The bar gate of one session: per symbol its calendar and the jump threshold the
    sanity suite uses for it, the jumps held until confirmed, and the start-up findings."""

    def __init__(self, symbols: list[str], gate: Any, assets: Any, interval: str,
                 live: bool, clock: Callable[[], float], attrs: dict[str, Any]) -> None:
        from ..data.jumps import JumpGate
        from ..data.sanity import jump_threshold_for

        self.symbols = symbols
        self.interval = interval
        self.live = live
        self.clock = clock
        self.jumps = JumpGate(gate.jump_confirm_bars, gate.split_tolerance)
        self.data_events: list[tuple[Any, ...]] = []  # risk events of the run's first step
        self.interval_s = interval_seconds(interval)
        self.cal = [str(attrs.get(s, {}).get("calendar") or assets.calendar_for(s))
                    for s in symbols]
        self.jump_thr = np.array([
            jump_threshold_for(str(attrs.get(s, {}).get("served_as", s)), c,
                               per_calendar=gate.thresholds())
            for s, c in zip(symbols, self.cal, strict=True)])

    def check_data(self, frames: dict[str, Any], start: Any, end: Any) -> None:
        """The whole-frame sanity suite on what the session replays. Its error and warning
        findings become ``data`` risk events at the run's first step (and a log record):
        in the warm-up history they are warnings only; inside the window the bar gate
        judges each bar at its step. Missing sessions are flagged, never filled."""
        import pandas as pd

        from ..data.sanity import (
            ERROR,
            INFO,
            WARNING,
            Finding,
            SanityConfig,
            check_frame,
            stale_bar,
        )

        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        cap = 20  # events per symbol and code; the rest are counted in one more
        for j, (s, f) in enumerate(frames.items()):
            found = check_frame(f, s, SanityConfig(calendar=self.cal[j], now=now,
                                                   interval=self.interval,
                                                   jump_threshold=float(self.jump_thr[j])))
            last = f.index[-1]
            if stale_bar(self.cal[j], self.interval_s, last, end):
                found.append(Finding(
                    "STALE_LAST_BAR", WARNING, s, last, len(f) - 1,
                    f"last bar {last.isoformat()} is a full session or more before the "
                    f"session's end {end.isoformat()}; {s} gets no decision after it and is "
                    "marked at that close"))
            found = [x for x in found if x.severity != INFO]
            if not found:
                continue
            seen: Counter[str] = Counter()
            for x in found:
                seen[x.code] += 1
                if seen[x.code] > cap:
                    continue
                ts = x.timestamp.isoformat() if x.timestamp is not None else None
                where = ""
                if x.timestamp is not None and x.severity == ERROR:
                    where = (" (warm-up history before the window: warned, never traded on)"
                             if x.timestamp < start else
                             " (inside the window: the bar gate checks it at its step)")
                self.data_events.append((ts, s, "data", x.code,
                                          f"{x.code}: {x.message} severity={x.severity} "
                                          f"symbol={s} at={ts}{where}", None))
            for code, k in seen.items():
                if k > cap:
                    self.data_events.append((None, s, "data", code,
                                              f"{code}: {k - cap} more finding(s) not listed "
                                              f"symbol={s}; run `research-lib data check`", None))
            errors = sum(x.severity == ERROR for x in found)
            log_event(log, "data_findings", level=logging.WARNING if errors else logging.INFO,
                      symbol=s, errors=errors, warnings=len(found) - errors,
                      codes=dict(sorted(seen.items())))

    def check(self, bars: StepBars, last_close: np.ndarray, volume_of: Callable[[int], float]
              ) -> tuple[StepBars, list[tuple[int, str]]]:
        """The bar gate (fail closed): each new bar must have finite positive prices,
        consistent OHLC, no negative volume, a stamp not after now (live: not stale), and a
        close within its calendar's jump threshold of the last good close (the rules and
        thresholds of :mod:`research_lib.data.sanity`). Returns the bars that pass and
        ``(row, "BAD_BAR: CODE: ...")`` for the others, which the step records and uses for
        nothing: no features, no mark (the last good close stays), no order, no fill."""
        from ..data.sanity import bar_faults, describe_bar_fault

        rows = bars.rows
        if not len(rows):
            self.jumps.clear()
            return bars, []
        now_ns = int(self.clock() * 1e9)
        stale = None
        if self.live and not bars.warmup and bars.bar_ns is not None:
            import pandas as pd

            from ..data.sanity import stale_bar

            now = pd.Timestamp(now_ns, unit="ns", tz="UTC")
            stale = np.array([stale_bar(self.cal[i], self.interval_s,
                                        pd.Timestamp(int(ns), unit="ns", tz="UTC"), now)
                              for i, ns in zip(rows, bars.bar_ns, strict=True)], dtype=bool)
            if bars.newest is not None:  # a bar a late poll catches up on, with a newer
                stale &= bars.newest     # one behind it, is old but not a frozen feed
        ref, thr = last_close[rows], self.jump_thr[rows]
        code = bar_faults(bars.open, bars.high, bars.low, bars.close, bars.volume, ref, thr,
                          bars.bar_ns, now_ns, stale)
        held = self.jumps.review(rows, code, bars, ref, thr,  # jumps: held, split, confirmed
                                  volume_of)
        if not code.any():
            return bars, []
        import pandas as pd

        bad = []
        for k in np.flatnonzero(code):
            i = int(rows[k])
            stamp = ("" if bars.bar_ns is None
                     else pd.Timestamp(int(bars.bar_ns[k]), unit="ns", tz="UTC").isoformat())
            why = describe_bar_fault(
                int(code[k]), float(bars.open[k]), float(bars.high[k]), float(bars.low[k]),
                float(bars.close[k]), float(bars.volume[k]), float(ref[k]), float(thr[k]),
                stamp, pd.Timestamp(now_ns, unit="ns", tz="UTC").isoformat())
            bad.append((i, f"BAD_BAR: {why}{held.get(int(k), '')} symbol={self.symbols[i]}"))
        return bars.select(code == 0), bad

    def stale_fill(self, i: int, bar_ts: Any, now: Any) -> bool:
        """Live: the symbol's newest bar is too old to fill at (the gate's stale rule)."""
        from ..data.sanity import stale_bar

        return bool(stale_bar(self.cal[i], self.interval_s, bar_ts, now))

    def fill_prices(self, bars: StepBars, bad: list[tuple[int, str]], last_close: np.ndarray
                    ) -> np.ndarray:
        """Fill prices that pass the gate: none from a bad bar; finite, positive and within
        the jump threshold of the last good close."""
        from ..data.sanity import jump_exceeds

        fp = bars.fill_prices
        if bad:
            fp = fp.copy()
            fp[[i for i, _ in bad]] = np.nan
        with np.errstate(invalid="ignore"):
            ok = (fp > 0) & (fp < np.inf) & ~jump_exceeds(fp, last_close, self.jump_thr)
        return np.where(ok, fp, np.nan)

