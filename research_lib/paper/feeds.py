"""Feeds: the bars each step sees, from history (replay) or a polled source (live)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    DataError,
    EmptyDataError,
)
from ..telemetry import (
    get_logger,
)

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
    # live (research_lib.paper.live): which rows are their symbol's newest closed bar (only
    # those can be stale), and what the feed learned since the last step (recorded as risk
    # events: (ts, symbol, code, reason))
    newest: np.ndarray | None = None
    feed_events: list[tuple[str | None, str | None, str, str]] | None = None

    def select(self, keep: np.ndarray) -> StepBars:
        """The same step with only the rows where ``keep`` (a mask over ``rows``) is True."""
        return dataclasses.replace(
            self, rows=self.rows[keep], open=self.open[keep], high=self.high[keep],
            low=self.low[keep], close=self.close[keep], volume=self.volume[keep],
            dow=self.dow[keep], bar_ns=None if self.bar_ns is None else self.bar_ns[keep],
            newest=None if self.newest is None else self.newest[keep])


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


# sources that never get a new bar: polling them live would wait forever (a csv file or the
# cache may be appended to by another process, so they stay allowed)
REPLAY_ONLY_SOURCES = ("sample",)
