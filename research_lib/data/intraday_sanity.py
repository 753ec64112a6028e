"""Intraday bars against the calendar's hours (:mod:`.market_hours`): bars that lie outside
every session (``NON_SESSION_BAR``: pre- or after-market prints, a closing print stamped at
the close, a bar on a holiday) and trading time between two bars long enough to hold a
whole bar (``MISSING_BARS``: gaps are flagged with their size, never filled). Daily bars
are checked by session days in :func:`research_lib.data.sanity.check_calendar`.

Returns plain ``(code, row, message)`` tuples, all warnings; :mod:`.sanity` makes them
findings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .calendars import CRYPTO
from .market_hours import open_seconds

MAX_PER_CODE = 50  # findings per code and frame; the rest are counted in the last one


def intraday_problems(index: pd.DatetimeIndex, calendar: str, step: pd.Timedelta,
                      label: str = "") -> list[tuple[str, int, str]]:
    """``NON_SESSION_BAR`` and ``MISSING_BARS`` of one frame's bars of length ``step``."""
    if step >= pd.Timedelta(days=1) or len(index) < 2 or index.tz is None:
        return []
    ns = index.as_unit("ns").asi8
    size = step.value
    out: list[tuple[str, int, str]] = []
    if calendar != CRYPTO:
        inside = open_seconds(calendar, ns, ns + size) > 0
        rows = np.flatnonzero(~inside)
        for k, i in enumerate(rows):
            if k == MAX_PER_CODE:
                out.append(("NON_SESSION_BAR", int(i),
                            f"{len(rows) - MAX_PER_CODE} more bar(s) outside {calendar} "
                            "hours not listed"))
                break
            out.append(("NON_SESSION_BAR", int(i),
                        f"bar {index[i].isoformat()} lies outside {calendar} trading hours "
                        "(a pre- or after-market or closing print, or a holiday)"))
    order = np.flatnonzero(np.diff(ns) > 0)  # duplicates and disorder are other findings
    a, b = ns[order] + size, ns[order + 1]
    traded = open_seconds(calendar, a, b)
    missing = np.floor(traded / (size / 1e9) + 1e-9).astype(np.int64)
    gaps = np.flatnonzero(missing >= 1)
    for k, g in enumerate(gaps):
        i = int(order[g]) + 1
        if k == MAX_PER_CODE:
            out.append(("MISSING_BARS", i, f"{len(gaps) - MAX_PER_CODE} more gap(s) not listed "
                        f"({int(missing[gaps[k:]].sum())} bars)"))
            break
        out.append(("MISSING_BARS", i,
                    f"{int(missing[g])} {label or step} bar(s) missing between "
                    f"{index[int(order[g])].isoformat()} and {index[i].isoformat()} "
                    f"({traded[g] / 60:.0f} min of {calendar} trading); gaps are flagged, "
                    "not filled"))
    return out
