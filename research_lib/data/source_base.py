"""What every data source returns: the frame shape (:data:`COLUMNS`, stamped by
:func:`finish_frame`), the :class:`Source` interface, and the date window (:func:`parse_when`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..errors import ConfigError

COLUMNS = ["open", "high", "low", "close", "volume"]


def parse_when(value: Any, field: str = "date") -> pd.Timestamp | None:
    """A date or timestamp (naive = UTC) as a UTC Timestamp; ``None``/``""`` -> ``None``.
    Anything else that is not a date is a ConfigError naming ``field`` and the value."""
    if value is None or value == "":
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{field} {value!r} is not a date ({exc}); use YYYY-MM-DD or an "
                          "ISO timestamp, e.g. 2016-01-01 or 2016-01-01T14:30:00Z") from None
    if pd.isna(t):
        raise ConfigError(f"{field} {value!r} is not a date; use YYYY-MM-DD, e.g. 2016-01-01")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _ts(value: Any, field: str = "date") -> pd.Timestamp | None:
    return parse_when(value, field)


def _trim(df: pd.DataFrame, start: Any, end: Any) -> pd.DataFrame:
    s, e = _ts(start, "start"), _ts(end, "end")
    if s is not None:
        df = df[df.index >= s]
    if e is not None:
        df = df[df.index <= e]
    return df


def _label(symbol: str, served_as: str, note: str | None) -> str:
    return f"{symbol} ({note})" if note else symbol


def finish_frame(
    df: pd.DataFrame,
    *,
    symbol: str,
    source: str,
    served_as: str | None = None,
    note: str | None = None,
    adjustment: str = "unknown",
    extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Normalise to the package's frame shape and stamp ``attrs``; does not fix bad rows
    (sanity checks find them)."""
    out = df.copy()
    out = out[[c for c in COLUMNS if c in out.columns]].astype("float64")
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    out = out[COLUMNS]
    out.index.name = "timestamp"
    served = served_as or symbol
    out.attrs = {
        "symbol": symbol,
        "served_as": served,
        "proxy": served != symbol,
        "proxy_note": note or "",
        "label": _label(symbol, served, note),
        "source": source,
        "adjustment": adjustment,
        **(extra or {}),
    }
    return out


class Source(Protocol):
    """What every data source offers."""

    name: str

    def symbols(self) -> list[str]: ...

    def fetch(
        self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"
    ) -> pd.DataFrame: ...


def source_label(source: Any) -> str:
    """How a run records its source: the text it was given (``sample``, ``csv:PATH``), or
    for a source object its own ``repr`` when it defines one (``frames:SPY,QQQ``), else its
    ``name``, never ``object.__repr__``: an object's address
    would make two runs of the same inputs write different ledgers."""
    if isinstance(source, str):
        return source
    if type(source).__repr__ is not object.__repr__:  # a source that says what it is
        return repr(source)
    name = getattr(source, "name", None)
    return f"<{name if isinstance(name, str) and name else type(source).__name__}>"
