"""Timestamps read from a file (a CSV's time column, a cached frame's index): ISO text,
epoch numbers in an unambiguous unit, ``YYYYMMDD`` integers, day-first or month-first dates
refused when they cannot be told apart (:func:`parse_timestamps`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

# Epoch integers are read in the unit their magnitude allows, and only when that is
# unambiguous: 1e8 s is 1973-03-03 and 1e10 s is 2286, so [1e8, 1e10) can only be seconds,
# [1e11, 1e13) milliseconds, [1e14, 1e16) microseconds and [1e17, 1e19) nanoseconds.
# Anything else (a value in a gap, mixed units, a small integer) is refused: pandas would
# read any integer as nanoseconds since 1970 (20200102 -> 1970-01-01 00:00:00.020200102).
_EPOCH_UNITS = (("s", 1e8, 1e10), ("ms", 1e11, 1e13), ("us", 1e14, 1e16), ("ns", 1e17, 1e19))
_TIME_FIX = ("write dates as text (2020-01-02 or 2020-01-02T14:30:00Z), as YYYYMMDD "
             "integers, or as epoch seconds/milliseconds after 1973")


# digits that spell a date: YYYYMMDD, YYYYMMDDHHMM, YYYYMMDDHHMMSS (years 1900..2199)
_DIGIT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def _digit_dates(v: np.ndarray) -> pd.DatetimeIndex | None:
    """``v`` read as dates written in digits (every value the same length, each a real
    date and time), or None. Checked before epoch units: YYYYMMDDHHMM integers would
    otherwise pass for milliseconds in 1976."""
    if not len(v) or not np.all(v == np.floor(v)) or not np.all(v > 0):
        return None
    text = pd.Series(v.astype(np.int64).astype(str))
    n = text.str.len().unique()
    if len(n) != 1 or int(n[0]) not in _DIGIT_FORMATS or not text.str.match(r"^(19|20|21)").all():
        return None
    ts = pd.to_datetime(text, format=_DIGIT_FORMATS[int(n[0])], utc=True, errors="coerce")
    return None if ts.isna().any() else pd.DatetimeIndex(ts)


def parse_timestamps(values: Any, where: str) -> pd.DatetimeIndex:
    """A column (or index) of bar times as a UTC ``DatetimeIndex``, read as what it is.

    Text goes through ``pd.to_datetime`` (naive stamps are UTC). Numbers are never read as
    nanoseconds by default: YYYYMMDD integers are dates, epoch seconds / milliseconds /
    micro- / nanoseconds are read in the one unit their size allows (see
    ``_EPOCH_UNITS``); anything else is a :class:`DataError` naming ``where``, sample
    values and the fix. Datetime values are taken as they are (naive: UTC)."""
    if isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values):
        idx = pd.DatetimeIndex(values)
        return idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    s = pd.Series(values).reset_index(drop=True) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_bool_dtype(s):
        raise DataError(f"{where} holds booleans, not timestamps; {_TIME_FIX}")
    if s.dtype == object and len(s) and s.astype(str).str.fullmatch(r"\s*\d+(\.\d+)?\s*").all():
        s = pd.to_numeric(s)  # digits only, e.g. quoted: the same reading as numbers
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64)
        sample = [x for x in s.head(3).tolist()]
        if np.isnan(v).any():
            raise DataError(f"{where} has an empty or NaN time in row "
                            f"{int(np.flatnonzero(np.isnan(v))[0])}; every bar needs a time")
        digits = _digit_dates(v)
        if digits is not None:
            return pd.DatetimeIndex(digits, name=getattr(values, "name", None))
        a = np.abs(v)
        for unit, lo, hi in _EPOCH_UNITS:
            if len(a) and np.all((a >= lo) & (a < hi)) and np.all(v > 0):
                ts = pd.to_datetime(v if unit != "ns" else v.astype(np.int64), unit=unit, utc=True)
                return pd.DatetimeIndex(ts, name=getattr(values, "name", None))
        raise DataError(
            f"{where} holds numbers (e.g. {sample}), which are neither YYYYMMDD[HHMM[SS]] dates nor "
            "epoch times in one clear unit (seconds 1e8..1e10, milliseconds 1e11..1e13, "
            f"micro- or nanoseconds); refusing to guess (they would read as nanoseconds since "
            f"1970); {_TIME_FIX}")
    dayfirst = _day_first(s, where)
    try:
        ts = pd.to_datetime(s, utc=True, format="mixed", dayfirst=dayfirst)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where} has values that are not timestamps: {exc}; {_TIME_FIX}") from exc
    return pd.DatetimeIndex(ts, name=getattr(values, "name", None))


_DMY = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")


def _day_first(s: pd.Series, where: str) -> bool:
    """Dates written ``NN/NN/YYYY``: day first (31/12/2020) or month first (12/31/2020),
    decided for the whole column by a field above 12; a column where neither field ever
    passes 12, or both do, is refused (pandas would read each value as it fits best,
    mixing the two orders in one column)."""
    parts = s.astype(str).str.extract(_DMY)
    if not len(s) or parts[0].isna().any():
        return False  # not (all) in that form: ISO dates and friends
    a, b = parts[0].astype(int), parts[1].astype(int)
    if (a > 12).any() and not (b > 12).any():
        return True
    if (b > 12).any() and not (a > 12).any():
        return False
    raise DataError(f"{where} has dates like {s.iloc[0]!r} whose day and month order cannot be "
                    f"told apart (e.g. {s.iloc[-1]!r}); write them as YYYY-MM-DD")
