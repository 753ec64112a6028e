"""The intraday half of the shipped ``sample`` source: four small series of real intraday
bars (``sample/intraday.parquet``, built by ``tools/build_intraday_sample.py``; provenance in
``data/PROVENANCE.md``), so intraday training, replay and tests run offline.

Each series has one native interval. A coarser interval that is a whole multiple of it is
served resampled (open of the first bar, high max, low min, close of the last, volume
summed; buckets from the session's open for an exchange, from the clock for 24/7 and FX)
and says so in its label; a finer one is refused.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, EmptyDataError, UnknownSymbolError
from .calendars import CRYPTO, FX
from .market_hours import session_table
from .sanity import interval_length
from .source_base import COLUMNS, _trim, finish_frame

# asked name -> (served series, note): the same aliases as the daily sample, per series here
INTRADAY_ALIASES: dict[str, tuple[str, str]] = {
    "SPY": ("^GSPC", "proxy: S&P 500 index ^GSPC, not the ETF (no dividends, no fees)"),
    "EURUSD": ("EURUSD=X", "alias: EURUSD=X (Yahoo's name for EUR/USD spot)"),
    "EUR/USD": ("EURUSD=X", "alias: EURUSD=X (Yahoo's name for EUR/USD spot)"),
    "ETHBTC": ("ETH-BTC", "alias: ETH-BTC (Binance ETH/BTC)"),
    "ETH/BTC": ("ETH-BTC", "alias: ETH-BTC (Binance ETH/BTC)"),
    "XRPETH": ("XRP-ETH", "alias: XRP-ETH (Binance XRP/ETH)"),
    "XRP/ETH": ("XRP-ETH", "alias: XRP-ETH (Binance XRP/ETH)"),
}


@cache
def intraday_meta() -> dict[str, dict[str, Any]]:
    ref = resources.files("research_lib.data").joinpath("sample/intraday.json")
    return json.loads(ref.read_text(encoding="utf-8"))


@cache
def _long() -> pd.DataFrame:
    ref = resources.files("research_lib.data").joinpath("sample/intraday.parquet")
    with resources.as_file(ref) as path:
        df = pd.read_parquet(path)
    df["timestamp"] = pd.DatetimeIndex(df["timestamp"]).tz_convert("UTC")
    return df


def intraday_symbols() -> list[str]:
    return sorted(intraday_meta()) + sorted(INTRADAY_ALIASES)


def listing() -> str:
    """``^GSPC (1m), EURUSD=X (1h), ...``: what the intraday sample has."""
    return ", ".join(f"{s} ({m['interval']})" for s, m in sorted(intraday_meta().items()))


def resolve(symbol: str) -> tuple[str, str | None]:
    if symbol in intraday_meta():
        return symbol, None
    if symbol in INTRADAY_ALIASES:
        return INTRADAY_ALIASES[symbol]
    raise UnknownSymbolError(symbol, "sample (intraday)", intraday_symbols())


def resample(df: pd.DataFrame, calendar: str, step: pd.Timedelta) -> pd.DataFrame:
    """Bars of ``df`` merged into bars of ``step``: buckets start at the session's open on
    an exchange (09:30, 10:30 ... for hourly NYSE bars, as Yahoo stamps them) and on the
    clock for 24/7 and FX; a bucket never crosses a session's close (a bar outside the
    session, such as a 16:00 closing print, stays a bar of its own)."""
    ns = df.index.as_unit("ns").asi8
    size = step.value
    if calendar in (CRYPTO, FX):
        start = ns - ns % size
    else:
        opens, closes = session_table(calendar, df.index[0], df.index[-1])
        k = np.clip(np.searchsorted(opens, ns, side="right") - 1, 0, len(opens) - 1)
        base = opens[k]
        inside = (ns >= base) & (ns < closes[k])  # a print after the close stays its own bar
        start = np.where(inside, base + (ns - base) // size * size, ns - ns % size)
    key = pd.DatetimeIndex(pd.to_datetime(start, utc=True), name="timestamp")
    g = df.groupby(key, sort=True)
    return pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(),
                         "low": g["low"].min(), "close": g["close"].last(),
                         "volume": g["volume"].sum()})


def fetch_intraday(symbol: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
    served, note = resolve(symbol)
    meta = intraday_meta()[served]
    native = str(meta["interval"])
    want, have = interval_length(interval), interval_length(native)
    if want is None:
        raise DataError(f"sample: --interval {interval!r} is not a bar interval; use e.g. "
                        "1m, 5m, 15m, 1h, 1d")
    if want < have or want.value % have.value:
        raise DataError(
            f"sample: {served} ships {native} bars; --interval {interval} is not {native} or a "
            f"whole multiple of it (the intraday sample: {listing()})")
    long = _long()
    rows = long[long["symbol"] == served]
    df = rows.set_index(pd.DatetimeIndex(rows["timestamp"], name="timestamp"))[COLUMNS]
    resampled = want != have
    if resampled:
        df = resample(df, str(meta["calendar"]), want)
    df = _trim(df, start, end)
    if df.empty:
        raise EmptyDataError(symbol, "sample",
                             f"no {interval} bars between {start} and {end}; {served} spans "
                             f"{meta['first']} .. {meta['last']}")
    how = f"resampled from the sample's {native} bars" if resampled else None
    note = "; ".join(x for x in (note, how) if x) or None
    extra = {"calendar": meta["calendar"], "close_only": False,
             "no_volume": bool(meta.get("no_volume", False)),
             "resampled_from": native if resampled else None}
    return finish_frame(df, symbol=symbol, source="sample", served_as=served, note=note,
                        adjustment=str(meta["adjustment"]), extra=extra)
