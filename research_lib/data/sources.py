"""Data sources: ``sample`` (shipped), ``yfinance`` (network), ``cache`` (parquet), ``csv:PATH``.

All return the same shape (see :mod:`research_lib.data`). A source never returns an empty
frame silently: no rows is :class:`~research_lib.errors.EmptyDataError`, an unknown symbol
is :class:`~research_lib.errors.UnknownSymbolError` listing what the source has.

This module holds the shipped ``sample`` and :func:`get_source`; the shape every source
returns is in :mod:`.source_base`, the other sources in :mod:`.yfinance_source`,
:mod:`.cache` and :mod:`.csv_source`, timestamp parsing in :mod:`.timestamps`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

from ..errors import DataError, EmptyDataError, UnknownSymbolError
from .cache import CacheSource
from .csv_source import CsvSource
from .source_base import COLUMNS, Source, _trim, finish_frame
from .yfinance_source import YFinanceSource

# Symbols the offline sample serves in place of the asked one.
SAMPLE_PROXIES: dict[str, tuple[str, str]] = {
    "SPY": ("^GSPC", "proxy: S&P 500 index ^GSPC, not the ETF (no dividends, no fees)"),
    "QQQ": ("^IXIC", "proxy: NASDAQ Composite ^IXIC, not the ETF (no dividends, no fees)"),
    "BTCUSDT": ("BTC-USD", "alias: BTC-USD (priced in USD, not USDT)"),
    "ETHUSDT": ("ETH-USD", "alias: ETH-USD (priced in USD, not USDT)"),
    "LTCUSDT": ("LTC-USD", "alias: LTC-USD (priced in USD, not USDT)"),
}


@cache
def _sample_long() -> pd.DataFrame:
    ref = resources.files("research_lib.data").joinpath("sample/prices.parquet")
    with resources.as_file(ref) as path:
        df = pd.read_parquet(path)
    df["timestamp"] = pd.DatetimeIndex(df["timestamp"]).tz_convert("UTC")
    return df


@cache
def sample_meta() -> dict[str, dict[str, Any]]:
    ref = resources.files("research_lib.data").joinpath("sample/symbols.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def sample_symbols() -> list[str]:
    return sorted(sample_meta())


class SampleSource:
    """Real daily prices shipped inside the package, and a few real intraday series
    (:mod:`.intraday_sample`; see ``data/PROVENANCE.md``)."""

    name = "sample"

    def symbols(self) -> list[str]:
        return sample_symbols() + sorted(SAMPLE_PROXIES)

    def resolve(self, symbol: str) -> tuple[str, str | None]:
        if symbol in sample_meta():
            return symbol, None
        if symbol in SAMPLE_PROXIES:
            return SAMPLE_PROXIES[symbol]
        raise UnknownSymbolError(symbol, self.name, self.symbols())

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        if interval not in ("1d", "1D", "d"):
            from .intraday_sample import fetch_intraday, intraday_symbols, listing
            from .sanity import interval_length

            step = interval_length(interval)
            if symbol not in intraday_symbols() or step is None or step >= pd.Timedelta(days=1):
                raise DataError(
                    f"sample: {symbol} at interval {interval!r} is not available; the shipped "
                    f"sample is daily, with intraday bars for {listing()} only (use "
                    "--interval 1d, or --source yfinance/ccxt:EXCHANGE/alpaca/csv:PATH)")
            return fetch_intraday(symbol, start, end, interval)
        served, note = self.resolve(symbol)
        long = _sample_long()
        rows = long[long["symbol"] == served]
        df = rows.set_index(pd.DatetimeIndex(rows["timestamp"], name="timestamp"))[COLUMNS]
        df = _trim(df, start, end)
        if df.empty:
            meta = sample_meta()[served]
            raise EmptyDataError(
                symbol, self.name,
                f"no bars between {start} and {end}; {served} spans {meta['first']} .. {meta['last']}",
            )
        meta = sample_meta()[served]
        extra = {"close_only": bool(meta.get("close_only", False)), "calendar": meta["calendar"]}
        return finish_frame(df, symbol=symbol, source=self.name, served_as=served, note=note,
                            adjustment=meta["adjustment"], extra=extra)


# ---------------------------------------------------------------------- factory
def get_source(spec: str | Source = "sample", **kwargs: Any) -> Source:
    """``sample`` | ``yfinance`` | ``ccxt:EXCHANGE`` | ``alpaca`` | ``cache`` | ``csv:PATH``
    (or a Source, returned as is)."""
    if not isinstance(spec, str):
        return spec
    if spec == "sample":
        return SampleSource()
    if spec == "yfinance":
        return YFinanceSource(**kwargs)
    if spec == "cache":
        return CacheSource(**kwargs)
    if spec.startswith("ccxt:") or spec == "ccxt":
        from .ccxt_source import CcxtSource

        return CcxtSource(spec[5:].strip().lower(), **kwargs)
    if spec == "alpaca":
        from .alpaca_source import AlpacaSource

        return AlpacaSource(**kwargs)
    if spec.startswith("csv:"):
        if not spec[4:].strip():  # "csv:$DATA" with DATA unset: never the working folder
            raise DataError(f"--source {spec!r} has no path; pass --source csv:PATH to a "
                            "file or folder (an empty path would read the working folder)")
        from ..project import resolve_path

        return CsvSource(resolve_path(spec[4:]))
    raise DataError(
        f"--source {spec!r} is not known; use one of: sample (default, offline), yfinance, "
        "ccxt:EXCHANGE (e.g. ccxt:binance), alpaca, cache, csv:PATH"
    )


def load(
    symbols: Iterable[str],
    source: str | Source = "sample",
    start: Any = None,
    end: Any = None,
    interval: str = "1d",
) -> dict[str, pd.DataFrame]:
    from .parallel import fetch_all

    src = get_source(source)
    return fetch_all(src, list(symbols),
                     lambda s: src.fetch(s, start=start, end=end, interval=interval))
