"""Exchange calendars: equities follow their exchange (sessions, holidays, half days);
crypto trades 24/7; FX (``FX``) trades 24 hours Sunday to Friday: a trading day D runs from
17:00 New York time on the day before to 17:00 on D, every weekday but 1 January and 25
December (its hours: :mod:`research_lib.data.market_hours`). Backed by
``exchange_calendars``; calendars are cached per process.

Building a calendar costs about a second (importing exchange_calendars and working out
its holiday rules), which a paper session would pay at every start for its sanity checks.
So :func:`sessions` and :func:`is_session` answer from the calendar's session days kept in
``<cache>/calendars/<NAME>.json`` (the data cache folder, see
:func:`research_lib.data.cache.default_cache_dir`), written when the calendar is built
and rebuilt when exchange_calendars changes version, or when a date after the last session
it knows is asked on a later day than it was built. An unreadable or unwritable cache only
means building the calendar as before.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CRYPTO = "24/7"
FX = "FX"
FX_TZ = "America/New_York"  # the FX day rolls at 17:00 New York time
FX_ROLL_HOUR = 17
FX_CLOSED_DAYS = ((1, 1), (12, 25))  # (month, day): no FX trading day
_FIRST = "1990-01-02"
_NS_PER_DAY = 86_400 * 10**9
_CACHE_FORMAT = 1


@cache
def _xcal(name: str) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start=_FIRST)


@dataclass(frozen=True)
class _SessionDays:
    """All sessions of one calendar as days since 1970-01-01, with its first and last."""

    days: np.ndarray  # int64, sorted
    first: int
    last: int
    built_on: str  # UTC date the calendar was built
    version: str  # of exchange_calendars


_DAYS: dict[str, _SessionDays] = {}


def _xcals_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("exchange_calendars")
    except metadata.PackageNotFoundError:
        return "unknown"


def _day_number(t: pd.Timestamp) -> int:
    return int(t.value // _NS_PER_DAY)


def _cache_file(name: str) -> Path:
    from urllib.parse import quote

    from .cache import default_cache_dir

    return default_cache_dir() / "calendars" / f"{quote(name, safe='-_.')}.json"


def _read_days(name: str, version: str) -> _SessionDays | None:
    try:
        doc = json.loads(_cache_file(name).read_text(encoding="utf-8"))
        if doc.get("format") != _CACHE_FORMAT or doc.get("calendar") != name \
                or doc.get("exchange_calendars") != version:
            return None
        days = np.asarray(doc["days"], dtype=np.int64)
        first, last = int(doc["first"]), int(doc["last"])
        if days.ndim != 1 or not len(days) or days[0] < first or days[-1] > last \
                or (np.diff(days) <= 0).any():
            return None
        return _SessionDays(days, first, last, str(doc["built_on"]), version)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_days(name: str, d: _SessionDays) -> None:
    path = _cache_file(name)
    doc = {"format": _CACHE_FORMAT, "calendar": name, "exchange_calendars": d.version,
           "built_on": d.built_on, "first": d.first, "last": d.last, "days": d.days.tolist()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, path)  # readers see the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # no cache: the next start builds the calendar again


def _session_days(name: str, until: pd.Timestamp) -> _SessionDays:
    """The session days of ``name``, good for questions up to ``until``."""
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    d = _DAYS.get(name)
    if d is None:
        d = _read_days(name, _xcals_version())
    if d is not None and (_day_number(until) <= d.last or d.built_on == today):
        _DAYS[name] = d
        return d
    cal = _xcal(name)
    sess = pd.DatetimeIndex(cal.sessions).as_unit("ns")
    d = _SessionDays(sess.asi8 // _NS_PER_DAY,
                     _day_number(pd.Timestamp(cal.first_session)),
                     _day_number(pd.Timestamp(cal.last_session)), today, _xcals_version())
    _write_days(name, d)
    _DAYS[name] = d
    return d


def fx_sessions(start: Any, end: Any) -> pd.DatetimeIndex:
    """FX trading days between start and end (inclusive): weekdays but 1 Jan and 25 Dec."""
    days = pd.date_range(_day(start), _day(end), freq="D", tz="UTC")
    keep = (days.day_of_week < 5) & ~pd.Index(list(zip(days.month, days.day, strict=True))
                                           ).isin(FX_CLOSED_DAYS) if len(days) else []
    return (days[keep] if len(days) else days).as_unit("ns")


def fx_day_of(when: Any) -> pd.Timestamp:
    """The FX trading day ``when`` belongs to (00:00 UTC of D): the New York date, moved
    on by a day from 17:00 New York time (Sunday 18:00 New York is Monday's day)."""
    t = pd.Timestamp(when)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    local = t.tz_convert(FX_TZ)
    day = local.tz_localize(None).normalize()
    if local.hour >= FX_ROLL_HOUR:
        day += pd.Timedelta(days=1)
    return day.tz_localize("UTC")


def fx_is_open(when: Any) -> bool:
    """Whether FX trades at ``when``: inside an FX trading day (Sunday 17:00 to Friday
    17:00 New York time, 1 January and 25 December closed)."""
    day = fx_day_of(when)
    return len(fx_sessions(day, day)) == 1


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
    if calendar == FX:
        return fx_sessions(s, e)
    d = _session_days(calendar, e)
    lo, hi = max(_day_number(s), d.first), min(_day_number(e), d.last)
    if lo > hi:
        return pd.DatetimeIndex([], tz="UTC")
    days = d.days[np.searchsorted(d.days, lo, "left"):np.searchsorted(d.days, hi, "right")]
    return pd.DatetimeIndex((days * _NS_PER_DAY).astype("datetime64[ns]")).tz_localize("UTC")


def is_session(calendar: str, day: Any) -> bool:
    """Whether ``day`` is a trading day; days outside the calendar's known range count as
    sessions (nothing to hold against them; the future-timestamp check covers those)."""
    if calendar == CRYPTO:
        return True
    t = _day(day)
    if calendar == FX:
        return len(fx_sessions(t, t)) == 1
    d = _session_days(calendar, t)
    n = _day_number(t)
    if n < d.first or n > d.last:
        return True
    k = int(np.searchsorted(d.days, n))
    return k < len(d.days) and int(d.days[k]) == n


def next_session(calendar: str, day: Any) -> pd.Timestamp:
    """The first trading day strictly after ``day`` (00:00 UTC)."""
    d = _day(day)
    if calendar == CRYPTO:
        return (d + pd.Timedelta(days=1)).tz_localize("UTC")
    if calendar == FX:
        return fx_sessions(d + pd.Timedelta(days=1), d + pd.Timedelta(days=8))[0]
    cal = _xcal(calendar)
    return pd.Timestamp(cal.date_to_session(d + pd.Timedelta(days=1), direction="next")).tz_localize("UTC")


def half_days(calendar: str, start: Any, end: Any) -> pd.DatetimeIndex:
    """Early-close sessions (e.g. the day after Thanksgiving) in the range."""
    if calendar in (CRYPTO, FX):
        return pd.DatetimeIndex([], tz="UTC")
    cal = _xcal(calendar)
    ec = pd.DatetimeIndex(cal.early_closes)
    ec = ec[(ec >= _day(start)) & (ec <= _day(end))]
    return ec.tz_localize("UTC") if ec.tz is None else ec.tz_convert("UTC")


def is_open(calendar: str, when: Any) -> bool:
    """Whether the market is open at ``when`` (a tz-aware timestamp); 24/7 always is."""
    if calendar == CRYPTO:
        return True
    if calendar == FX:
        return fx_is_open(when)
    cal = _xcal(calendar)
    t = pd.Timestamp(when)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    try:
        return bool(cal.is_open_on_minute(t))
    except ValueError:  # outside the calendar's known range
        return True
