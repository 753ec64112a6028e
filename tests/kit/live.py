"""A fake clock and a scripted live source for the live feed's tests (research_lib.paper.live).

``ScriptedSource`` serves, at the clock's time, every bar of its series that has closed (a
bar stamped t covers [t, t + interval)) and the forming bar with *partial* values (its
close is the bar's open nudged, so a decision on it would show), over the window the feed
asks for (so consecutive polls repeat bars). A script adds what real feeds do: bars the
source never has (``missing``), bars it publishes late (``lag``: seconds after their
close), changed repeats (``revise``), fetch errors at given polls (``errors``), and slow
polls (``late``: seconds the clock jumps at a poll's first fetch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from research_lib.data.source_base import finish_frame
from research_lib.errors import DataError


@dataclass
class FakeClock:
    t: float

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(float(dt), 0.0)


@dataclass
class ScriptedSource:
    bars: dict[str, pd.DataFrame]
    clock: FakeClock
    interval: pd.Timedelta = pd.Timedelta(minutes=1)
    missing: set[tuple[str, pd.Timestamp]] = field(default_factory=set)
    lag: dict[tuple[str, pd.Timestamp], float] = field(default_factory=dict)
    revise: dict[tuple[str, pd.Timestamp], float] = field(default_factory=dict)
    errors: dict[int, set[str]] = field(default_factory=dict)  # poll -> symbols failing
    late: dict[int, float] = field(default_factory=dict)  # poll -> seconds the poll is late
    forming: bool = True
    name: str = "scripted"
    polls: int = 0
    calls: list[tuple[int, str, float]] = field(default_factory=list)
    _shown: set[tuple[str, pd.Timestamp]] = field(default_factory=set)

    def symbols(self) -> list[str]:
        return sorted(self.bars)

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1m"):
        first = sorted(self.bars)[0]
        if symbol == first:
            self.polls += 1
            self.clock.t += self.late.get(self.polls, 0.0)
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        self.calls.append((self.polls, symbol, self.clock()))
        if symbol in self.errors.get(self.polls, set()):
            raise DataError(f"{self.name}: download of {symbol!r} failed: ConnectionError: "
                            "connection reset by peer (scripted)")
        df = self.bars[symbol]
        if start is not None:
            df = df[df.index >= pd.Timestamp(start)]
        ends = df.index + self.interval
        closed = ends <= now
        keep = []
        for t, is_closed, end_t in zip(df.index, closed, ends, strict=True):
            if (symbol, t) in self.missing:
                continue
            if is_closed and now < end_t + pd.Timedelta(seconds=self.lag.get((symbol, t), 0)):
                continue
            if not is_closed and not (self.forming and t <= now):
                continue
            keep.append(t)
        out = df.loc[keep].copy()
        for t in keep:
            if t + self.interval > now:  # forming: partial values
                o = out.at[t, "open"]
                out.loc[t, ["high", "low", "close", "volume"]] = [o * 1.002, o * 0.998,
                                                                  o * 1.001, 1.0]
            elif (symbol, t) in self.revise and (symbol, t) in self._shown:
                out.loc[t, "close"] = self.revise[(symbol, t)]  # changed after first served
            else:
                self._shown.add((symbol, t))
        return finish_frame(out, symbol=symbol, source=self.name,
                            adjustment="as served", extra={"calendar": df.attrs.get("calendar")})


def served(src: ScriptedSource, until: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The bars the source ever serves as closed, up to ``until``: what a replay of the
    same feed reads (the missing ones never came)."""
    out = {}
    for s, df in src.bars.items():
        keep = [t for t in df.index if t <= until and (s, t) not in src.missing]
        out[s] = df.loc[keep]
    return out


def minutes(start: str, n: int) -> Iterable[pd.Timestamp]:
    return pd.date_range(start, periods=n, freq="min", tz="UTC")
