"""Exchange calendars: equities follow their exchange (sessions, holidays, half days);
crypto trades 24/7. Backed by ``exchange_calendars``; calendars are cached per process."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd

CRYPTO = "24/7"
_FIRST = "1990-01-02"


@cache
def _xcal(name: str) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start=_FIRST)


def _day(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return t.normalize()


def sessions(calendar: str, start: Any, end: Any) -> pd.DatetimeIndex:
    """Trading days between start and end (inclusive) as 00:00 UTC timestamps."""
    s, e = _day(start), _day(end)
    if calendar == CRYPTO:
        return pd.date_range(s, e, freq="D", tz="UTC")
    cal = _xcal(calendar)
    s = max(s, pd.Timestamp(cal.first_session))
    e = min(e, pd.Timestamp(cal.last_session))
    if s > e:
        return pd.DatetimeIndex([], tz="UTC")
    return pd.DatetimeIndex(cal.sessions_in_range(s, e)).tz_localize("UTC")


def is_session(calendar: str, day: Any) -> bool:
    """Whether ``day`` is a trading day; days outside the calendar's known range count as
    sessions (nothing to hold against them; the future-timestamp check covers those)."""
    if calendar == CRYPTO:
        return True
    cal = _xcal(calendar)
    d = _day(day)
    if d < pd.Timestamp(cal.first_session) or d > pd.Timestamp(cal.last_session):
        return True
    return bool(cal.is_session(d))


def next_session(calendar: str, day: Any) -> pd.Timestamp:
    """The first trading day strictly after ``day`` (00:00 UTC)."""
    d = _day(day)
    if calendar == CRYPTO:
        return (d + pd.Timedelta(days=1)).tz_localize("UTC")
    cal = _xcal(calendar)
    return pd.Timestamp(cal.date_to_session(d + pd.Timedelta(days=1), direction="next")).tz_localize("UTC")


def half_days(calendar: str, start: Any, end: Any) -> pd.DatetimeIndex:
    """Early-close sessions (e.g. the day after Thanksgiving) in the range."""
    if calendar == CRYPTO:
        return pd.DatetimeIndex([], tz="UTC")
    cal = _xcal(calendar)
    ec = pd.DatetimeIndex(cal.early_closes)
    ec = ec[(ec >= _day(start)) & (ec <= _day(end))]
    return ec.tz_localize("UTC") if ec.tz is None else ec.tz_convert("UTC")


def is_open(calendar: str, when: Any) -> bool:
    """Whether the market is open at ``when`` (a tz-aware timestamp); 24/7 always is."""
    if calendar == CRYPTO:
        return True
    cal = _xcal(calendar)
    t = pd.Timestamp(when)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    try:
        return bool(cal.is_open_on_minute(t))
    except ValueError:  # outside the calendar's known range
        return True
