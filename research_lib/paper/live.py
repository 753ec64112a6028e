"""The live feed: polls a source and turns what it returns into steps, one per closed bar.

Rules (each one a test in ``tests/test_live_feed.py``):

* **Closed bars only.** A bar stamped at its start closes at start + interval, cut at its
  session's close (:func:`research_lib.data.market_hours.bar_close_ns`), and counts as
  closed ``settle_seconds`` after that. A forming bar is never decided on; its values are
  read again at a later poll, once closed.
* **Each closed bar exactly once**, in time order, on the union of the symbols' bar times
  (as a replay steps). A late poll catches up on every bar closed since; a repeated bar is
  ignored (a changed repeat is recorded ``BAR_REVISED``, the first version kept); a bar that
  arrives after its time was decided is recorded ``LATE_BAR`` and used for nothing; trading
  time between a symbol's bars long enough to hold a bar is recorded ``MISSING_BARS`` and
  never filled. A step waits for a symbol whose market was open during the bar until it
  delivers that bar or a later one, for one interval after the bar's close while its
  fetches succeed and for as long as they fail (the failure bound below stops the
  session). A resume decides only bars after the last step in its ledger.
* **Market hours.** Polls follow the bars' closes. While every symbol's market is closed
  the feed says so (``market_closed_waiting`` on stderr, a summary note) and sleeps until
  the next open; ``--duration`` (wall-clock time) may end the session first.
* **Failures are loud.** No symbol fetched at the first poll, any symbol failing
  ``LIVE_MAX_FAILED_POLLS`` polls in a row, or a symbol whose fetches succeed but bring no
  new bar for three intervals of open market (a dead source) stops the session with a
  :class:`FeedError` naming each symbol and reason (``FEED_FAILED`` in the ledger, exit 2).
  A single failed fetch is recorded ``FEED_ERROR`` at the next step.
* **Aliases are shown**: a symbol the source serves under another name is said at the
  first poll (stderr, the summary's proxy lines, ``SYMBOL_ALIAS`` in the ledger).

The first poll's closed bars warm the indicators; its newest bar time is the first
decision (as a replay whose ``--start`` is that bar).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..data.calendars import CRYPTO
from ..errors import DataError, FeedError
from ..risk import refuse_identical_series, refuse_shared_underlying
from ..telemetry import get_logger, log_event
from .feeds import StepBars, _check_frame
from .spec import interval_seconds

log = get_logger("session")

LIVE_MAX_FAILED_POLLS = 3  # polls in a row that fetch nothing before a live session stops
SETTLE_SECONDS = 2.0  # after a bar's close before it counts as closed (the provider's last print)
DEAD_AFTER_BARS = 3  # intervals of open market without a new bar: the source is dead
RECENT_BARS = 5  # a poll after the first re-reads this many bars before the newest seen


def is_network_source(source: Any) -> bool:
    """A source that gets new bars as time passes (a session on it is live unless given
    dates): ``yfinance``, ``alpaca``, ``ccxt:EXCHANGE``."""
    return isinstance(source, str) and (source in ("yfinance", "alpaca")
                                        or source.startswith("ccxt:"))


def _ts(ns: int) -> Any:
    import pandas as pd

    return pd.Timestamp(int(ns), unit="ns", tz="UTC")


class LiveFeed:
    """Polls ``source`` and yields a :class:`StepBars` per closed bar time (see the module
    doc). ``calendars``: each symbol's calendar; ``start_after``: a resumed run's last
    decided bar time (ISO); ``poll_seconds``: a fixed poll period (None: follow the bars'
    closes). ``clock``/``sleep`` are the session's (a test's fake clock)."""

    def __init__(self, source: Any, symbols: Sequence[str], interval: str,
                 poll_seconds: float | None, lookback_bars: int,
                 should_stop: Callable[[], bool],
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 should_abort: Callable[[], bool] = lambda: False,
                 is_stale: Callable[[int, Any, Any], bool] = lambda j, ts, now: False,
                 replicas: bool = False, calendars: Sequence[str] | None = None,
                 start_after: str | None = None,
                 settle_seconds: float = SETTLE_SECONDS) -> None:
        import pandas as pd

        self.source = source
        self.symbols = list(symbols)
        self.n = len(self.symbols)
        self.interval = interval
        self.interval_s = interval_seconds(interval)
        self.step_ns = int(round(self.interval_s * 1e9))
        self.poll_seconds = poll_seconds
        self.should_stop = should_stop
        self.clock = clock
        self.sleep = sleep
        self.should_abort = should_abort
        self.is_stale = is_stale
        self.replicas = replicas
        self.cal = list(calendars) if calendars is not None else [CRYPTO] * self.n
        self.settle_ns = int(settle_seconds * 1e9)
        margin = 10 * 86400 if self.interval_s >= 86400 else 4 * 86400  # weekends, holidays
        self.lookback_s = lookback_bars * self.interval_s * 2 + margin
        self.warmup_bars = max(int(lookback_bars), 1)  # bar times that warm a new run
        self.decided_ns: int | None = (None if not start_after
                                       else int(pd.Timestamp(start_after).value))
        self.last_seen: dict[int, int] = {}  # newest closed bar taken per symbol
        self.taken: list[dict[int, tuple[float, ...]]] = [{} for _ in self.symbols]
        self.pending: dict[int, dict[int, tuple[float, ...]]] = {}  # bar time -> {row: bar}
        self.forming_close: dict[int, int] = {}  # row -> close of its forming bar
        self.events: list[tuple[str | None, str | None, str, str]] = []  # to record
        self.notes: list[str] = []  # for the summary
        self.alias_notes: dict[str, str] = {}  # symbol -> how the source serves it
        self.stats: Counter[str] = Counter()
        self.aborted = False
        self.failed_polls = 0
        self.errors: dict[str, str] = {}
        self.symbol_fails: dict[str, int] = {}
        self.fetched_ok: set[int] = set()
        self._closed_said: set[str] = set()
        self.decided = 0

    # ------------------------------------------------------------------ polling
    def _fetch_start(self, j: int, now: Any) -> Any:
        import pandas as pd

        if j in self.last_seen:  # only what is new, and a few bars to see repeats
            return _ts(self.last_seen[j] - RECENT_BARS * self.step_ns)
        return now - pd.Timedelta(seconds=self.lookback_s)

    def _poll(self, now: Any) -> dict[int, Any] | None:
        """Fetch every symbol; ``None`` when a second interrupt abandons the poll."""
        from ..data.sanity import refuse_bad_timeline

        out: dict[int, Any] = {}
        self.fetched_ok = set()
        for j, s in enumerate(self.symbols):
            if self.should_abort():
                self.aborted = True
                log_event(log, "live_poll_abandoned", level=30, at_symbol=s,
                          reason="second interrupt: nothing of this poll was decided")
                return None
            try:
                df = self.source.fetch(s, start=self._fetch_start(j, now),
                                       interval=self.interval)
            except DataError as exc:
                log_event(log, "live_fetch_failed", level=30, symbol=s, error=str(exc))
                self.errors[s] = str(exc)
                self.events.append((now.isoformat(), s, "FEED_ERROR",
                                    f"FEED_ERROR: {exc} symbol={s}"))
                continue
            out[j] = _check_frame(s, df)
            if len(df) >= 3:
                refuse_bad_timeline({s: df}, self.interval)  # live bars of another interval
            self.fetched_ok.add(j)
        return out

    def _check_failures(self, frames: dict[int, Any], first: bool, now_ns: int) -> None:
        """No symbol fetched at the first poll, any symbol failing (or dead: fetched but
        without a new bar for DEAD_AFTER_BARS intervals of open market) at
        LIVE_MAX_FAILED_POLLS polls in a row: a FeedError with each symbol's reason."""
        from ..data.market_hours import open_seconds

        for j, sym in enumerate(self.symbols):
            failing = j not in frames
            if not failing and j in self.last_seen and not first:
                since = self.last_seen[j] + self.step_ns  # the newest bar's end
                traded = float(open_seconds(self.cal[j], [since], [now_ns])[0])
                if traded >= DEAD_AFTER_BARS * self.interval_s:
                    failing = True
                    self.errors[sym] = (
                        f"no new bar since {_ts(self.last_seen[j]).isoformat()} although "
                        f"{self.cal[j]} has traded {traded / 60:.0f} min since (a dead source)")
            self.symbol_fails[sym] = self.symbol_fails.get(sym, 0) + 1 if failing else 0
        down = [s for s, k in self.symbol_fails.items() if k >= LIVE_MAX_FAILED_POLLS]
        if frames and down:
            why = "; ".join(f"{s}: {self.errors.get(s, 'no data')}" for s in down)
            raise FeedError(f"live: {', '.join(down)} could not be fetched at "
                            f"{LIVE_MAX_FAILED_POLLS} polls in a row ({why}); its position "
                            "would be marked at its last close while the others trade; check "
                            "the symbol, the source and the network, then resume")
        if frames:
            self.failed_polls = 0
            for sym in list(self.errors):
                if self.symbol_fails.get(sym, 0) == 0:
                    del self.errors[sym]
            return
        self.failed_polls += 1
        if first or self.failed_polls >= LIVE_MAX_FAILED_POLLS:
            why = "; ".join(f"{s}: {e}" for s, e in self.errors.items()) or "no data"
            when = ("at the first poll" if first else
                    f"at {self.failed_polls} polls in a row")
            raise FeedError(f"live: no symbol could be fetched {when} ({why}); check the "
                            "network and the symbols, or replay history with --mode replay "
                            "--source cache/sample/csv:PATH")

    # ------------------------------------------------------------------ bars
    def _take(self, frames: dict[int, Any], now_ns: int, first: bool) -> None:
        """Closed bars into ``pending`` (new), or recorded as repeats, revisions, late
        arrivals; forming bars noted; gaps recorded."""
        from ..data.market_hours import bar_close_ns, open_seconds

        for j, df in frames.items():
            sym = self.symbols[j]
            ns = df.index.as_unit("ns").asi8
            ends = bar_close_ns(self.cal[j], ns, self.interval_s)
            closed = ends + self.settle_ns <= now_ns
            self.stats["forming"] += int((~closed).sum())
            self.forming_close.pop(j, None)
            if (~closed).any():
                self.forming_close[j] = int(ends[~closed].min())
            vals = df[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
            for k in np.flatnonzero(closed):
                t, bar = int(ns[k]), tuple(float(x) for x in vals[k])
                seen = self.taken[j].get(t)
                if seen is not None:
                    if not _same(seen, bar):
                        self.stats["revised"] += 1
                        self.events.append((_ts(t).isoformat(), sym, "BAR_REVISED",
                                            f"BAR_REVISED: the source changed the closed bar "
                                            f"{_ts(t).isoformat()} after it was taken: "
                                            f"{_ohlc(seen)} -> {_ohlc(bar)}; the first is kept "
                                            f"symbol={sym}"))
                        self.taken[j][t] = bar  # said once per change
                    else:
                        self.stats["repeated"] += 1
                    continue
                self.taken[j][t] = bar
                if not first and self.decided_ns is not None and t <= self.decided_ns:
                    self.stats["late"] += 1
                    self.events.append((_ts(t).isoformat(), sym, "LATE_BAR",
                                        f"LATE_BAR: bar {_ts(t).isoformat()} arrived after its "
                                        "time was decided; used for nothing (never filled, "
                                        f"never decided) symbol={sym}"))
                    continue
                prev = self.last_seen.get(j)
                if prev is not None and t > prev and not first:
                    traded = float(open_seconds(self.cal[j], [prev + self.step_ns], [t])[0])
                    missing = math.floor(traded / self.interval_s + 1e-9)
                    if missing >= 1:
                        self.stats["gaps"] += 1
                        self.events.append((_ts(t).isoformat(), sym, "MISSING_BARS",
                                            f"MISSING_BARS: {missing} {self.interval} bar(s) "
                                            f"missing between {_ts(prev).isoformat()} and "
                                            f"{_ts(t).isoformat()} ({traded / 60:.0f} min of "
                                            f"{self.cal[j]} trading); a gap is recorded, never "
                                            f"filled symbol={sym}"))
                self.last_seen[j] = max(prev if prev is not None else t, t)
                self.pending.setdefault(t, {})[j] = bar
            if len(self.taken[j]) > 4096:  # keep the recent past only
                for t in sorted(self.taken[j])[:-2048]:
                    del self.taken[j][t]

    def _ready(self, now_ns: int) -> list[int]:
        """Pending bar times that may be decided now, in order (stops at the first that
        still waits for a symbol)."""
        from ..data.market_hours import bar_close_ns, open_seconds

        out = []
        for t in sorted(self.pending):
            have = self.pending[t]
            wait = False
            for j in range(self.n):
                if j in have or self.last_seen.get(j, -1) > t:
                    continue  # delivered it, or skipped it (a later bar is here)
                if float(open_seconds(self.cal[j], [t], [t + self.step_ns])[0]) <= 0:
                    continue  # its market was closed during the bar
                if j not in self.fetched_ok:
                    wait = True  # its fetch failed: wait (the failure bound ends it)
                    break
                close = int(bar_close_ns(self.cal[j], [t], self.interval_s)[0])
                if now_ns < close + self.settle_ns + self.step_ns:
                    wait = True  # may still come: one interval of patience
                    break
            if wait:
                break
            out.append(t)
        return out

    def _bars(self, t: int, warmup: bool) -> StepBars:
        import pandas as pd

        from ..features import _dayofweek

        have = self.pending.pop(t)
        rows = np.array(sorted(have), dtype=np.int64)
        arr = np.array([have[j] for j in rows], dtype=np.float64).reshape(len(rows), 5)
        fill = np.full(self.n, np.nan)
        if not warmup and len(rows):
            o, c = arr[:, 0], arr[:, 3]
            fill[rows] = np.where(np.isfinite(o) & (o > 0), o, c)  # as a replay fills
        stamp = _ts(t)
        newest = np.array([self.last_seen.get(int(j)) == t for j in rows], dtype=bool)
        return StepBars(ts=stamp.isoformat(), day=stamp.strftime("%Y-%m-%d"), rows=rows,
                        open=arr[:, 0].copy(), high=arr[:, 1].copy(), low=arr[:, 2].copy(),
                        close=arr[:, 3].copy(), volume=arr[:, 4].copy(),
                        dow=np.full(len(rows), _dayofweek(pd.DatetimeIndex([stamp]))[0],
                                    dtype=np.int64),
                        fill_prices=fill, warmup=warmup,
                        bar_ns=np.full(len(rows), t, dtype=np.int64), newest=newest)

    # ------------------------------------------------------------------ waiting
    def _next_poll(self, now_ns: int) -> int:
        """When to poll next: a fixed period if given; else the first forming bar's close
        (or the next bar's, or the next open of a closed market) and the settle time."""
        from ..data.market_hours import bar_close_ns, is_open_ns, next_open

        if self.poll_seconds:
            return now_ns + int(self.poll_seconds * 1e9)
        due = []
        for j in range(self.n):
            if j in self.forming_close:
                due.append(self.forming_close[j])
            elif bool(is_open_ns(self.cal[j], [now_ns])[0]):
                start = now_ns - now_ns % self.step_ns
                due.append(int(bar_close_ns(self.cal[j], [start], self.interval_s)[0]))
            else:
                opens = next_open(self.cal[j], _ts(now_ns)).value
                due.append(int(bar_close_ns(self.cal[j], [opens], self.interval_s)[0]))
        return max(min(due), now_ns) + self.settle_ns

    def _say_closed(self, now_ns: int) -> None:
        """While every symbol's market is closed: say so once per closed period."""
        from ..data.market_hours import is_open_ns, next_open

        shut = [j for j in range(self.n) if not bool(is_open_ns(self.cal[j], [now_ns])[0])]
        if len(shut) < self.n:
            return
        opens = min(next_open(self.cal[j], _ts(now_ns)) for j in range(self.n))
        key = opens.isoformat()
        if key in self._closed_said:
            return
        self._closed_said.add(key)
        cals = sorted({self.cal[j] for j in range(self.n)})
        text = (f"{', '.join(cals)} closed at {_ts(now_ns).isoformat()}; next open "
                f"{opens.isoformat()}: waiting for it (or until --duration runs out)")
        self.notes.append(f"market closed: {text}")
        log_event(log, "market_closed_waiting", level=30, note=text,
                  symbols=self.symbols)

    def _wait_until(self, due_ns: int) -> bool:
        while not self.should_stop():
            left = due_ns / 1e9 - self.clock()
            if left <= 0:
                return True
            self.sleep(min(left, 0.2) if self.poll_seconds else min(left, 1.0))
        return False

    # ------------------------------------------------------------------ the loop
    def __iter__(self) -> Iterator[StepBars]:
        import pandas as pd

        first = True
        while not self.should_stop():
            now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
            now_ns = int(now.value)
            frames = self._poll(now)
            if frames is None:
                return
            self._check_failures(frames, first, now_ns)
            if first:  # one position cap per underlying, live as in a replay
                named = {self.symbols[j]: df for j, df in frames.items()}
                self._say_aliases(named, now)
                refuse_shared_underlying(list(named), {
                    s: str(df.attrs.get("served_as", s)) for s, df in named.items()})
                if not self.replicas:
                    refuse_identical_series(named)
            self._take(frames, now_ns, first)
            if first and self.pending:
                # the first poll's history warms the indicators: the last warmup_bars bar
                # times before its newest (as a replay warms with the warmup_bars before
                # its start, so the two decide alike); a resume: up to the last decided one
                if self.decided_ns is None:
                    warm = sorted(t for t in self.pending if t < max(self.pending))
                    for t in warm[:-self.warmup_bars]:
                        del self.pending[t]  # older history: taken, never used
                    warm = warm[-self.warmup_bars:]
                else:
                    warm = [t for t in self.pending if t <= self.decided_ns]
                for t in sorted(warm):
                    yield self._bars(t, warmup=True)
            first = False
            for t in self._ready(now_ns):
                bars = self._bars(t, warmup=False)
                bars.feed_events = self._flush(t)
                self.decided_ns = t
                self.decided += 1
                yield bars
                if self.should_stop():
                    return
            if not self.pending:
                self._say_closed(now_ns)
            if not self._wait_until(self._next_poll(int(self.clock() * 1e9))):
                return

    def _say_aliases(self, frames: dict[str, Any], now: Any) -> None:
        """A symbol the source serves under another name (``BTC-USD`` as ``BTC/USDT`` on
        ccxt:binance) is said on stderr, in the summary and in the ledger (SYMBOL_ALIAS)."""
        for sym, df in frames.items():
            note = str(df.attrs.get("proxy_note") or "")
            served = str(df.attrs.get("served_as", sym))
            if served == sym and not note:
                continue
            self.alias_notes[sym] = note or f"served as {served}"
            by = getattr(self.source, "name", "the source")
            text = f"{sym} is served as {served} by {by}" + (f" ({note})" if note else "")
            log_event(log, "live_symbol_alias", level=30, symbol=sym, note=text)
            self.events.append((now.isoformat(), sym, "SYMBOL_ALIAS", f"SYMBOL_ALIAS: {text}"))

    def _flush(self, t: int) -> list[tuple[str | None, str | None, str, str]]:
        out, self.events = self.events, []
        return out


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all((x == y) or (x != x and y != y) for x, y in zip(a, b, strict=True))


def _ohlc(bar: tuple[float, ...]) -> str:
    return "o={:.10g} h={:.10g} l={:.10g} c={:.10g} v={:.10g}".format(*bar)
