"""Data sources: ``sample`` (shipped), ``yfinance`` (network), ``cache`` (parquet), ``csv:PATH``.

All return the same shape (see :mod:`research_lib.data`). A source never returns an empty
frame silently: no rows is :class:`~research_lib.errors.EmptyDataError`, an unknown symbol
is :class:`~research_lib.errors.UnknownSymbolError` listing what the source has.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..errors import DataError, EmptyDataError, RateLimitError, UnknownSymbolError
from ..telemetry import get_logger, log_event

log = get_logger("data")

COLUMNS = ["open", "high", "low", "close", "volume"]

# Symbols the offline sample serves in place of the asked one.
SAMPLE_PROXIES: dict[str, tuple[str, str]] = {
    "SPY": ("^GSPC", "proxy: S&P 500 index ^GSPC, not the ETF (no dividends, no fees)"),
    "QQQ": ("^IXIC", "proxy: NASDAQ Composite ^IXIC, not the ETF (no dividends, no fees)"),
    "BTCUSDT": ("BTC-USD", "alias: BTC-USD (priced in USD, not USDT)"),
    "ETHUSDT": ("ETH-USD", "alias: ETH-USD (priced in USD, not USDT)"),
    "LTCUSDT": ("LTC-USD", "alias: LTC-USD (priced in USD, not USDT)"),
}


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _trim(df: pd.DataFrame, start: Any, end: Any) -> pd.DataFrame:
    s, e = _ts(start), _ts(end)
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


# ------------------------------------------------------------------------ sample
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
    """Real daily prices shipped inside the package (see ``data/PROVENANCE.md``)."""

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
            raise DataError(
                f"sample: interval {interval!r} is not available; the shipped sample is daily "
                "(use --interval 1d, or --source yfinance/csv:PATH for intraday bars)"
            )
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


# ------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    env = os.environ.get("RESEARCH_LIB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "research_lib"


_SAFE = re.compile(r"[^A-Za-z0-9._=-]")


class CacheSource:
    """Read-through parquet cache written by :class:`YFinanceSource`; needs no network.

    One file per (symbol, interval, adjustment): ``<dir>/<interval>/<symbol>.<adj>.parquet``.
    """

    name = "cache"

    def __init__(self, directory: str | Path | None = None, auto_adjust: bool = True) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self.auto_adjust = auto_adjust

    def path(self, symbol: str, interval: str) -> Path:
        adj = "adj" if self.auto_adjust else "raw"
        return self.directory / _SAFE.sub("_", interval) / f"{_SAFE.sub('_', symbol)}.{adj}.parquet"

    def symbols(self) -> list[str]:
        if not self.directory.exists():
            return []
        adj = "adj" if self.auto_adjust else "raw"
        return sorted({p.name.rsplit(".", 2)[0] for p in self.directory.glob(f"*/*.{adj}.parquet")})

    def write(self, symbol: str, interval: str, df: pd.DataFrame) -> Path:
        p = self.path(symbol, interval)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        df[COLUMNS].to_parquet(tmp)
        os.replace(tmp, p)  # atomic: a reader never sees half a file
        return p

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        p = self.path(symbol, interval)
        if not p.exists():
            raise UnknownSymbolError(
                symbol, f"cache ({self.directory})",
                self.symbols() or ["<empty: run once with --source yfinance to fill it>"],
            )
        df = pd.read_parquet(p)
        df.index = pd.DatetimeIndex(df.index).tz_convert("UTC")
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, self.name, f"cached file {p} has no bars in range")
        return finish_frame(df, symbol=symbol, source=self.name,
                            adjustment="auto_adjust=True" if self.auto_adjust else "raw")


# --------------------------------------------------------------------- yfinance
@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delays(self) -> Iterable[float]:
        for i in range(self.attempts - 1):
            yield min(self.max_delay, self.base_delay * (2**i))


def _is_rate_limit(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "YFRateLimitError" or "rate limit" in str(exc).lower() or "429" in str(exc)


def flatten_yf_columns(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """yfinance >= 0.2.48 returns MultiIndex columns (Price, Ticker); keep one ticker's."""
    if isinstance(df.columns, pd.MultiIndex):
        levels = [list(map(str, df.columns.get_level_values(i))) for i in range(df.columns.nlevels)]
        tick_level = next((i for i, lv in enumerate(levels) if symbol in lv), None)
        if tick_level is not None:
            df = df.xs(symbol, axis=1, level=tick_level)
        else:
            df = df.droplevel(list(range(1, df.columns.nlevels)), axis=1)
    df = df.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    return df


class YFinanceSource:
    """Yahoo Finance through ``yfinance.download`` with ``auto_adjust`` passed explicitly,
    MultiIndex columns flattened, a UTC index, bounded retry with back-off on rate limits,
    and writes to the parquet cache."""

    name = "yfinance"

    def __init__(
        self,
        auto_adjust: bool = True,
        cache: CacheSource | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
    ) -> None:
        self.auto_adjust = auto_adjust
        self.cache = cache if cache is not None else CacheSource(auto_adjust=auto_adjust)
        self.retry = retry
        self.sleep = sleep
        self.timeout = timeout

    def symbols(self) -> list[str]:
        return []  # anything Yahoo knows; unknown tickers come back empty

    def _download(self, symbol: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
        import yfinance as yf  # imported here: the network source is optional at run time

        delays = iter(self.retry.delays())
        attempt = 0
        while True:
            attempt += 1
            try:
                return yf.download(
                    symbol,
                    start=start,
                    end=end,
                    interval=interval,
                    auto_adjust=self.auto_adjust,
                    actions=False,
                    progress=False,
                    threads=False,
                    timeout=self.timeout,
                )
            except Exception as exc:
                if not _is_rate_limit(exc):
                    raise DataError(f"yfinance: download of {symbol!r} failed: {exc}") from exc
                delay = next(delays, None)
                if delay is None:
                    raise RateLimitError(
                        f"yfinance: still rate-limited for {symbol!r} after {attempt} attempts; "
                        "wait and retry, or use --source cache"
                    ) from exc
                log_event(log, "yfinance_rate_limited", level=30, symbol=symbol,
                          attempt=attempt, retry_in_s=delay)
                self.sleep(delay)

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        raw = self._download(symbol, start, end, interval)
        if raw is None or len(raw) == 0:
            raise EmptyDataError(symbol, self.name,
                                 "Yahoo returned no rows: delisted, wrong ticker or no network")
        df = flatten_yf_columns(raw, symbol)
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"yfinance: frame for {symbol!r} lacks columns {missing}; "
                            f"got {list(df.columns)}")
        if "volume" not in df.columns:
            df["volume"] = np.nan
        idx = pd.DatetimeIndex(df.index)
        if interval.endswith("d") or interval.endswith("wk") or interval.endswith("mo"):
            # daily bars: the exchange-local session date at 00:00 UTC
            local = idx.tz_convert("America/New_York") if idx.tz is not None else idx
            idx = pd.DatetimeIndex(local.tz_localize(None).normalize()).tz_localize("UTC")
        else:
            idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        df.index = idx
        df = df.sort_index()
        out = finish_frame(df, symbol=symbol, source=self.name,
                           adjustment="auto_adjust=True" if self.auto_adjust else "raw")
        if self.cache is not None:
            try:
                self.cache.write(symbol, interval, out)
            except OSError as exc:
                log_event(log, "cache_write_failed", level=30, symbol=symbol, error=str(exc))
        return out


# --------------------------------------------------------------------------- csv
_TIME_NAMES = ("timestamp", "datetime", "date", "time", "")


class CsvSource:
    """A user's CSV: a one-symbol file named after the symbol (``SPY.csv``), a folder of
    such files, or one long file with a ``symbol`` column. Column names are
    case-insensitive; timestamps daily or intraday; naive timestamps are taken as UTC."""

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"csv: {self.path} does not exist; pass --source csv:PATH to a file or folder")

    def _files(self) -> dict[str, Path]:
        if self.path.is_dir():
            return {p.stem: p for p in sorted(self.path.glob("*.csv*"))}
        return {self.path.name.split(".")[0]: self.path}

    @staticmethod
    def _read(p: Path) -> pd.DataFrame:
        df = pd.read_csv(p)
        df.columns = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
        tcol = next((c for c in df.columns if c in _TIME_NAMES or c.startswith("unnamed")), None)
        if tcol is None:
            raise DataError(f"csv: {p} has no timestamp column; name one of timestamp/datetime/date")
        ts = pd.to_datetime(df[tcol], utc=True, format="mixed")
        df = df.drop(columns=[tcol])
        df.index = pd.DatetimeIndex(ts, name="timestamp")
        if "adj_close" in df.columns and "close" not in df.columns:
            df["close"] = df["adj_close"]
        return df

    def _long(self) -> pd.DataFrame | None:
        files = self._files()
        if len(files) == 1:
            df = self._read(next(iter(files.values())))
            if "symbol" in df.columns:
                return df
        return None

    def symbols(self) -> list[str]:
        long = self._long()
        if long is not None:
            return sorted(map(str, long["symbol"].unique()))
        return sorted(self._files())

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        long = self._long()
        if long is not None:
            df = long[long["symbol"].astype(str) == symbol].drop(columns=["symbol"])
            if df.empty:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", self.symbols())
        else:
            files = self._files()
            if symbol not in files:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", sorted(files))
            df = self._read(files[symbol])
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"csv: {self.path} lacks columns {missing} for {symbol!r}; "
                            f"has {list(df.columns)} (names are case-insensitive)")
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, f"csv:{self.path}", f"no rows between {start} and {end}")
        # keep the file's order and duplicates as they are: sanity checks report them
        return finish_frame(df, symbol=symbol, source=f"csv:{self.path}", adjustment="unknown")


# ---------------------------------------------------------------------- factory
def get_source(spec: str | Source = "sample", **kwargs: Any) -> Source:
    """``sample`` | ``yfinance`` | ``cache`` | ``csv:PATH`` (or a Source, returned as is)."""
    if not isinstance(spec, str):
        return spec
    if spec == "sample":
        return SampleSource()
    if spec == "yfinance":
        return YFinanceSource(**kwargs)
    if spec == "cache":
        return CacheSource(**kwargs)
    if spec.startswith("csv:"):
        return CsvSource(spec[4:])
    raise DataError(
        f"--source {spec!r} is not known; use one of: sample (default, offline), yfinance, "
        "cache, csv:PATH"
    )


def load(
    symbols: Iterable[str],
    source: str | Source = "sample",
    start: Any = None,
    end: Any = None,
    interval: str = "1d",
) -> dict[str, pd.DataFrame]:
    src = get_source(source)
    return {s: src.fetch(s, start=start, end=end, interval=interval) for s in symbols}
