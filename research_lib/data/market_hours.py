"""Market hours, to the minute: when each calendar trades, when a bar closes, how much trading
time lies between two bars, when a closed market opens, and how many bars make a year.

Three kinds of calendar (:mod:`.calendars` knows their days):

* an exchange (``XNYS``...): its sessions from ``exchange_calendars`` (open and close in UTC,
  early closes included);
* ``24/7`` (crypto): always open;
* ``FX``: a trading day D runs from 17:00 New York time on the day before to 17:00 on D,
  every weekday but 1 January and 25 December, so the week opens Sunday 17:00 and closes
  Friday 17:00 New York time (21:00/22:00 UTC), whatever the NYSE does.

A bar is stamped at its start (Yahoo, ccxt and Alpaca all do) and covers
``[start, start + interval)``, cut at its session's close (the 15:30 hourly bar of an NYSE
day closes at 16:00). Everything here is a pure function of the calendar and the times.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .calendars import CRYPTO, FX, FX_ROLL_HOUR, FX_TZ, _xcal, fx_sessions

NS = 1_000_000_000
_DAY = pd.Timedelta(days=1)
DAYS_PER_YEAR = {CRYPTO: 365.0, FX: 260.0}  # trading days a year; exchanges: 252
EXCHANGE_DAYS_PER_YEAR = 252.0


def _utc(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def session_table(calendar: str, start: Any, end: Any) -> tuple[np.ndarray, np.ndarray]:
    """Opens and closes (ns since 1970, UTC, sorted) of the sessions that overlap
    ``[start, end]`` (a margin of two days either side)."""
    s, e = _utc(start) - 2 * _DAY, _utc(end) + 2 * _DAY
    if calendar == CRYPTO:
        return (np.array([s.normalize().value], dtype=np.int64),
                np.array([(e.normalize() + _DAY).value], dtype=np.int64))
    if calendar == FX:
        days = fx_sessions(s, e + _DAY).tz_localize(None)
        roll = pd.Timedelta(hours=FX_ROLL_HOUR)
        closes = (days + roll).tz_localize(FX_TZ).tz_convert("UTC")
        opens = (days - _DAY + roll).tz_localize(FX_TZ).tz_convert("UTC")
        return (pd.DatetimeIndex(opens).as_unit("ns").asi8,
                pd.DatetimeIndex(closes).as_unit("ns").asi8)
    cal = _xcal(calendar)
    sched = cal.schedule
    lo, hi = s.tz_localize(None).normalize(), e.tz_localize(None).normalize()
    idx = pd.DatetimeIndex(sched.index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    part = sched[(idx >= lo) & (idx <= hi)]
    return (pd.DatetimeIndex(part["open"]).as_unit("ns").asi8,
            pd.DatetimeIndex(part["close"]).as_unit("ns").asi8)


def _table_for(calendar: str, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = int(np.min(ns)), int(np.max(ns))
    return session_table(calendar, pd.Timestamp(lo, unit="ns", tz="UTC"),
                         pd.Timestamp(hi, unit="ns", tz="UTC"))


def _session_index(opens: np.ndarray, closes: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Per time, the index of the session it falls in, or -1."""
    k = np.searchsorted(opens, ns, side="right") - 1
    inside = (k >= 0) & (ns < closes[np.clip(k, 0, max(len(closes) - 1, 0))]) if len(opens) \
        else np.zeros(len(ns), dtype=bool)
    return np.where(inside, k, -1)


def is_open_ns(calendar: str, ns: Any) -> np.ndarray:
    """Whether the market is open at each time (ns since 1970, UTC)."""
    ns = np.atleast_1d(np.asarray(ns, dtype=np.int64))
    if calendar == CRYPTO or not len(ns):
        return np.ones(len(ns), dtype=bool)
    opens, closes = _table_for(calendar, ns)
    return _session_index(opens, closes, ns) >= 0


def is_open_at(calendar: str, when: Any) -> bool:
    return bool(is_open_ns(calendar, [_utc(when).value])[0])


def open_seconds(calendar: str, a_ns: Any, b_ns: Any) -> np.ndarray:
    """Seconds the market is open in ``[a, b)`` for each pair (0 where ``b <= a``)."""
    a = np.atleast_1d(np.asarray(a_ns, dtype=np.int64))
    b = np.atleast_1d(np.asarray(b_ns, dtype=np.int64))
    if not len(a):
        return np.zeros(0)
    if calendar == CRYPTO:
        return np.maximum(b - a, 0) / NS
    opens, closes = _table_for(calendar, np.concatenate([a, b]))
    if not len(opens):
        return np.zeros(len(a))
    length = closes - opens
    before = np.concatenate([[0], np.cumsum(length)])  # open time before session k

    def upto(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(opens, t, side="right") - 1
        kk = np.clip(k, 0, len(opens) - 1)
        part = np.clip(t - opens[kk], 0, length[kk])
        return np.where(k >= 0, before[kk] + part, 0)

    return np.maximum(upto(b) - upto(a), 0) / NS


def next_open(calendar: str, when: Any) -> pd.Timestamp:
    """``when`` if the market is open then, else the next time it opens."""
    t = _utc(when)
    if calendar == CRYPTO:
        return t
    opens, closes = session_table(calendar, t, t + pd.Timedelta(days=14))
    k = _session_index(opens, closes, np.array([t.value]))[0]
    if k >= 0:
        return t
    later = opens[opens > t.value]
    if not len(later):  # beyond the calendar's known sessions: nothing to wait for
        return t
    return pd.Timestamp(int(later[0]), unit="ns", tz="UTC")


def bar_close_ns(calendar: str, bar_ns: Any, interval_s: float) -> np.ndarray:
    """When each bar (stamped at its start) closes: start + interval, cut at the close of
    the session it opened in. A daily bar of an exchange or FX closes at its day's
    session close; a bar outside any session runs its full length."""
    ns = np.atleast_1d(np.asarray(bar_ns, dtype=np.int64))
    step = int(round(interval_s * NS))
    end = ns + step
    if calendar == CRYPTO or not len(ns):
        return end
    opens, closes = _table_for(calendar, ns)
    if not len(opens):
        return end
    if interval_s >= 86400:  # a daily bar is stamped at 00:00 UTC of its session's day
        # the session's day: an exchange closes on its date (UTC), FX day D at D 17:00 NY
        days = pd.DatetimeIndex(pd.to_datetime(closes, utc=True)).tz_convert(
            FX_TZ if calendar == FX else "UTC").normalize().tz_localize(None)
        day_ns = pd.DatetimeIndex(days).as_unit("ns").asi8
        bar_day = pd.DatetimeIndex(pd.to_datetime(ns, utc=True)).tz_localize(None) \
            .normalize().as_unit("ns").asi8
        k = np.searchsorted(day_ns, bar_day)
        kk = np.clip(k, 0, len(day_ns) - 1)
        hit = (k < len(day_ns)) & (day_ns[kk] == bar_day)
        return np.where(hit, closes[kk], end)
    k = _session_index(opens, closes, ns)
    cut = np.where(k >= 0, np.minimum(end, closes[np.clip(k, 0, len(closes) - 1)]), end)
    return cut


def session_seconds(calendar: str) -> float:
    """Seconds of a regular session: 24 h for ``24/7`` and ``FX``; for an exchange the
    median session of 2019 (6.5 h for the NYSE)."""
    if calendar in (CRYPTO, FX):
        return 86400.0
    opens, closes = session_table(calendar, "2019-01-01", "2019-12-31")
    return float(np.median(closes - opens)) / NS if len(opens) else 86400.0


def days_per_year(calendar: str) -> float:
    return DAYS_PER_YEAR.get(calendar, EXCHANGE_DAYS_PER_YEAR)


def bars_per_year(calendar: str, interval_s: float) -> float:
    """Bars of ``interval_s`` seconds in a trading year of ``calendar``: the annualisation
    factor. Daily: 252 (an exchange), 260 (FX weekdays), 365 (24/7). Intraday: trading days
    times the bars of one session (an NYSE session of 6.5 h holds 7 hourly bars, the last
    cut at the close, and 390 one-minute bars): an hourly card never assumes 365 a year.
    Weekly and longer: 52 or 12 per year."""
    if interval_s >= 28 * 86400:
        return 12.0
    if interval_s >= 7 * 86400:
        return 52.0
    days = days_per_year(calendar)
    if interval_s >= 86400:
        return days
    return days * math.ceil(session_seconds(calendar) / interval_s - 1e-9)
