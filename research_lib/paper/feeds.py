"""Feeds: the bars each step sees, from history (replay) or a polled source (live)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    DataError,
    EmptyDataError,
    FeedError,
)
from ..risk import refuse_identical_series, refuse_shared_underlying
from ..telemetry import (
    get_logger,
    log_event,
)
from .spec import interval_seconds

log = get_logger("session")


# ---------------------------------------------------------------------------- feeds
@dataclass
class StepBars:
    """The bars one step sees: ``rows`` index the session's symbols that have a new bar;
    ``fill_prices`` (one per symbol, NaN where none) are what open orders fill at."""

    ts: str
    day: str
    rows: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    dow: np.ndarray
    fill_prices: np.ndarray
    warmup: bool = False
    bar_ns: np.ndarray | None = None  # each row's bar timestamp (ns since epoch, UTC)

    def select(self, keep: np.ndarray) -> StepBars:
        """The same step with only the rows where ``keep`` (a mask over ``rows``) is True."""
        return dataclasses.replace(
            self, rows=self.rows[keep], open=self.open[keep], high=self.high[keep],
            low=self.low[keep], close=self.close[keep], volume=self.volume[keep],
            dow=self.dow[keep], bar_ns=None if self.bar_ns is None else self.bar_ns[keep])


def _utc(value: Any, field: str = "date") -> Any:
    from ..data.source_base import parse_when

    return parse_when(value, field)  # a ConfigError naming field and value if not a date


def _fetch_window(src: Any, sym: str, fetch_start: Any, end: Any, interval: str,
                  start_arg: Any, end_arg: Any, warm: int) -> Any:
    """``src.fetch`` from the warm-up start; a source finding nothing is reported with the
    user's --start/--end (the warm-up start is internal), and the source's own reason."""
    try:
        return src.fetch(sym, start=fetch_start, end=end, interval=interval)
    except EmptyDataError as exc:
        if fetch_start is None:
            raise
        raise EmptyDataError(
            sym, exc.source,
            f"nothing for --start {start_arg} --end {end_arg or '(latest)'} (fetched from "
            f"{fetch_start.date()} for {warm} warm-up bars): {exc}; pass --start/--end inside "
            "its data") from None


def _check_frame(sym: str, df: Any) -> Any:
    """Refuse a frame the loop cannot step through: empty, not the package's shape
    (MultiIndex or missing columns, no tz-aware DatetimeIndex), duplicate or unordered
    timestamps. Bad *values* (NaN, spikes, ...) stay in: the bar gate refuses them one by
    one, with a recorded reason, when their step comes."""
    from ..data.sanity import ERROR, check_schema

    if df is None or len(df) == 0:
        raise DataError(f"{sym}: the source returned an empty frame; refusing to start "
                        "(check the symbol, the date range and the source)")
    schema = [f for f in check_schema(df, sym) if f.severity == ERROR]
    if schema:
        raise DataError(f"{sym}: " + "; ".join(f"{f.code}: {f.message}" for f in schema)
                        + "; refusing to trade on it")
    idx = df.index
    if idx.has_duplicates:
        dup = idx[idx.duplicated()][0]
        raise DataError(f"{sym}: duplicate bar timestamps (first {dup}); refusing to trade on "
                        "them; run `research-lib data check` and fix the source")
    if not idx.is_monotonic_increasing:
        raise DataError(f"{sym}: bar timestamps are not in order; refusing to trade on them; "
                        "run `research-lib data check` and fix the source")
    return df


def replay_end_note(frames: dict[str, Any]) -> str | None:
    """Without ``--end`` a replay stops at the last bar every symbol has (a position is
    never carried on past a symbol's last bar at a stale price unless asked for). When the
    symbols end on different dates, the sentence that says so, naming the first to end and
    the last, and the ``--end`` that replays further; None when they end together."""
    ends = {s: f.index[-1] for s, f in frames.items()}
    first = min(ends, key=lambda s: ends[s])
    last = max(ends, key=lambda s: ends[s])
    if ends[first] == ends[last]:
        return None
    later = sorted((s for s in ends if ends[s] > ends[first]), key=lambda s: (ends[s], s))
    return (f"{first} ends on {ends[first].date()}, before {', '.join(later)} (last bar "
            f"{ends[last].date()}); the replay stops there (pass --end {ends[last].date()} "
            f"to replay on, {first} then marked at its last close, or drop {first})")


def stamps(clock: Any) -> tuple[list[str], list[str]]:
    """Each UTC timestamp of ``clock`` as ``Timestamp.isoformat()`` writes it and its date
    (``%Y-%m-%d``): in numpy when every stamp is on a whole second (the usual bar), else
    one Timestamp at a time (``tests/test_batch_inference.py`` checks both agree)."""
    ns = clock.as_unit("ns").asi8
    if len(ns) and not (ns % 1_000_000_000).any() and str(clock.tz) == "UTC":
        t64 = ns.view("datetime64[ns]")
        secs = np.datetime_as_string(t64.astype("datetime64[s]"), unit="s")
        return ([x + "+00:00" for x in secs.tolist()],
                np.datetime_as_string(t64.astype("datetime64[D]"), unit="D").tolist())
    return [t.isoformat() for t in clock], [t.strftime("%Y-%m-%d") for t in clock]


class ReplayFeed:
    """Steps through history on the union of the symbols' timestamps."""

    def __init__(self, frames: dict[str, Any], symbols: Sequence[str], start: Any) -> None:
        import pandas as pd

        from ..features import _dayofweek

        self.symbols = list(symbols)
        clock = frames[symbols[0]].index
        for s in symbols[1:]:
            clock = clock.union(frames[s].index)
        clock = pd.DatetimeIndex(clock)
        self.clock = clock
        n, t = len(symbols), len(clock)
        arrays = {c: np.full((t, n), np.nan) for c in ("open", "high", "low", "close", "volume")}
        self.has = np.zeros((t, n), dtype=bool)  # a bar exists (NaN values included: gated)
        for j, s in enumerate(symbols):
            f = frames[s].reindex(clock)
            for c in arrays:
                arrays[c][:, j] = f[c].to_numpy(np.float64)
            self.has[:, j] = clock.isin(frames[s].index)
        self.O, self.H, self.L = arrays["open"], arrays["high"], arrays["low"]
        self.C, self.V = arrays["close"], arrays["volume"]
        self.ns = clock.as_unit("ns").asi8
        fill = np.where(np.isfinite(self.O) & (self.O > 0), self.O, self.C)
        self.fill = np.where(self.has, fill, np.nan)
        self.dow = _dayofweek(clock)
        self.ts, self.days = stamps(clock)
        self.n_warmup = int(clock.searchsorted(_utc(start), side="left"))

    def __len__(self) -> int:
        return len(self.clock)

    def bars_at(self, t: int, every: bool | None = None) -> StepBars:
        """The bars of clock step ``t`` (``every``: every symbol has a bar, if known)."""
        if every is None:
            every = bool(self.has[t].all())
        ohlcv = (self.O, self.H, self.L, self.C, self.V)
        if every:  # plain row copies: cheaper than fancy indexing
            rows = np.arange(len(self.symbols))
            o, h, lo, c, v = (a[t].copy() for a in ohlcv)
        else:
            rows = np.flatnonzero(self.has[t])
            o, h, lo, c, v = (a[t, rows] for a in ohlcv)
        return StepBars(
            ts=self.ts[t], day=self.days[t], rows=rows,
            open=o, high=h, low=lo, close=c, volume=v,
            dow=np.full(len(rows), self.dow[t], dtype=np.int64),
            fill_prices=self.fill[t], warmup=t < self.n_warmup,
            bar_ns=np.full(len(rows), self.ns[t], dtype=np.int64),
        )

    def __iter__(self) -> Iterator[StepBars]:
        every = self.has.all(axis=1).tolist()  # steps where every symbol has a bar
        for t in range(len(self.clock)):
            yield self.bars_at(t, every[t])


LIVE_MAX_FAILED_POLLS = 3  # polls in a row that fetch nothing before a live session stops
# sources that never get a new bar: polling them live would wait forever (a csv file or the
# cache may be appended to by another process, so they stay allowed)
REPLAY_ONLY_SOURCES = ("sample",)


class LiveFeed:
    """Polls ``source`` every ``poll_seconds``: the first poll's history warms the
    indicators (its newest bar is the first decision), later polls bring new bars.
    Open orders fill at the next observed price (the newest close seen at a later poll)."""

    def __init__(self, source: Any, symbols: Sequence[str], interval: str, poll_seconds: float,
                 lookback_bars: int, should_stop: Callable[[], bool],
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 should_abort: Callable[[], bool] = lambda: False,
                 is_stale: Callable[[int, Any, Any], bool] = lambda j, ts, now: False,
                 replicas: bool = False) -> None:
        self.source = source
        self.replicas = replicas  # identical series are deliberate copies (RunSpec.replicas)
        # is_stale(row, bar_ts, now): a bar too old to fill at (the session's stale rule)
        self.is_stale = is_stale
        # a second Ctrl+C: stop fetching at once (nothing of this poll is decided yet)
        self.should_abort = should_abort
        self.aborted = False
        self.symbols = list(symbols)
        self.interval = interval
        self.poll_seconds = poll_seconds
        self.lookback_s = lookback_bars * interval_seconds(interval) * 2 + 10 * 86400
        self.should_stop = should_stop
        self.clock = clock
        self.sleep = sleep
        self.last_seen: dict[str, Any] = {}
        self.n_warmup = 0
        self.failed_polls = 0  # consecutive polls that fetched no symbol at all
        self.errors: dict[str, str] = {}  # each symbol's last fetch error of this poll
        self.symbol_fails: dict[str, int] = {}  # consecutive polls each symbol failed

    def _poll(self) -> dict[str, Any] | None:
        """Fetch every symbol; ``None`` when a second interrupt abandons the poll."""
        import pandas as pd

        from ..data.sanity import refuse_bad_timeline

        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        out = {}
        for s in self.symbols:
            if self.should_abort():
                self.aborted = True
                log_event(log, "live_poll_abandoned", level=30, at_symbol=s,
                          reason="second interrupt: nothing of this poll was decided")
                return None
            try:
                df = self.source.fetch(s, start=now - pd.Timedelta(seconds=self.lookback_s),
                                       interval=self.interval)
            except DataError as exc:
                log_event(log, "live_fetch_failed", level=30, symbol=s, error=str(exc))
                self.errors[s] = str(exc)
                continue
            out[s] = _check_frame(s, df)
            refuse_bad_timeline({s: df}, self.interval)  # live bars of another interval
        return out

    def _check_failures(self, frames: dict[str, Any], first: bool) -> None:
        """No symbol fetched at the first poll, or at LIVE_MAX_FAILED_POLLS polls in a row:
        a FeedError with each symbol's reason (a live session never polls on silently)."""
        for sym in self.symbols:  # one symbol down while others work: bounded too
            self.symbol_fails[sym] = 0 if sym in frames else self.symbol_fails.get(sym, 0) + 1
        down = [sym for sym, k in self.symbol_fails.items() if k >= LIVE_MAX_FAILED_POLLS]
        if frames and down:
            why = "; ".join(f"{sym}: {self.errors.get(sym, 'no data')}" for sym in down)
            raise FeedError(f"live: {', '.join(down)} could not be fetched at "
                            f"{LIVE_MAX_FAILED_POLLS} polls in a row ({why}); its position "
                            "would be marked at its last close while the others trade; check "
                            "the symbol and the network, then resume")
        if frames:
            self.failed_polls = 0
            self.errors.clear()
            return
        self.failed_polls += 1
        if first or self.failed_polls >= LIVE_MAX_FAILED_POLLS:
            why = "; ".join(f"{s}: {e}" for s, e in self.errors.items()) or "no data"
            when = ("at the first poll" if first else
                    f"at {self.failed_polls} polls in a row")
            raise FeedError(f"live: no symbol could be fetched {when} ({why}); check the "
                            "network and the symbols, or replay history with --mode replay "
                            "--source cache/sample/csv:PATH")

    def _wait(self) -> bool:
        end = self.clock() + self.poll_seconds
        while not self.should_stop():
            left = end - self.clock()
            if left <= 0:
                return True
            self.sleep(min(left, 0.2))
        return False

    def __iter__(self) -> Iterator[StepBars]:
        import pandas as pd

        from ..features import _dayofweek

        n = len(self.symbols)
        first = True
        while not self.should_stop():
            frames = self._poll()
            if frames is None:
                return
            self._check_failures(frames, first)
            if first:  # one position cap per underlying, live as in a replay
                refuse_shared_underlying(list(frames), {
                    s: str(df.attrs.get("served_as", s)) for s, df in frames.items()})
                if not self.replicas:
                    refuse_identical_series(frames)
            now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
            fill = np.full(n, np.nan)
            news: dict[int, Any] = {}
            for j, s in enumerate(self.symbols):
                df = frames.get(s)
                if df is None or df.empty:
                    continue
                if not self.is_stale(j, df.index[-1], now):  # a stale close is no price
                    fill[j] = float(df["close"].iloc[-1])
                seen = self.last_seen.get(s)
                new = df if seen is None else df[df.index > seen]
                if len(new):
                    news[j] = new
                    self.last_seen[s] = new.index[-1]
            # older new bars only warm the indicators; the newest per symbol is decided on
            for j, new in news.items():
                for k in range(len(new) - 1):
                    ts = new.index[k]
                    yield self._bars(ts.isoformat(), ts.strftime("%Y-%m-%d"), [j],
                                     new.iloc[k : k + 1], _dayofweek(new.index[k : k + 1]),
                                     np.full(n, np.nan), warmup=True)
            rows = sorted(news)
            if rows or not first:
                last = pd.concat([news[j].iloc[-1:] for j in rows]) if rows else None
                dow = (_dayofweek(pd.DatetimeIndex([news[j].index[-1] for j in rows]))
                       if rows else np.zeros(0, np.int64))
                yield self._bars(now.isoformat(), now.strftime("%Y-%m-%d"), rows, last, dow,
                                 np.full(n, np.nan) if first else fill, warmup=False)
            first = False
            if not self._wait():
                return

    @staticmethod
    def _bars(ts: str, day: str, rows: list[int], df: Any, dow: np.ndarray,
              fill: np.ndarray, warmup: bool) -> StepBars:
        def col(c: str) -> np.ndarray:
            return (df[c].to_numpy(np.float64) if df is not None and len(rows)
                    else np.zeros(0))

        return StepBars(ts=ts, day=day, rows=np.asarray(rows, dtype=np.int64),
                        open=col("open"), high=col("high"), low=col("low"),
                        close=col("close"), volume=col("volume"),
                        dow=np.asarray(dow, np.int64), fill_prices=fill, warmup=warmup,
                        bar_ns=(np.asarray(df.index.as_unit("ns").asi8, dtype=np.int64)
                                if df is not None and len(rows) else np.zeros(0, np.int64)))

