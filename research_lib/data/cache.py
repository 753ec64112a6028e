"""The ``cache`` source: parquet files research-lib wrote under :func:`default_cache_dir`
(the yfinance source writes them; :class:`CacheSource` reads them back offline).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd

from ..errors import ConfigError, DataError, EmptyDataError, UnknownSymbolError
from ..paths import inside, safe_id
from .source_base import COLUMNS, _trim, finish_frame
from .timestamps import parse_timestamps


def default_cache_dir() -> Path:
    env = os.environ.get("RESEARCH_LIB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "research_lib"


def _fname(text: str) -> str:
    """A reversible, filesystem-safe name: ``^GSPC`` -> ``%5EGSPC`` (percent-encoding)."""
    return quote(text, safe="-_.=")


_CACHE_INTERVAL = re.compile(r"[0-9]{1,4}[A-Za-z]{1,3}")


def _foreign_check(p: Path, df: pd.DataFrame) -> pd.DatetimeIndex:
    """The index of a cached frame as timestamps, after checking it is one this package
    wrote (timestamp index, numeric OHLC); anything else is a DataError naming the file."""
    fix = "delete it (the cache holds only files research-lib wrote) and re-download"
    first = df.index[0] if len(df.index) else None
    if isinstance(df.index, pd.MultiIndex):
        raise DataError(f"cache: {p} is not a price file: its index has {df.index.nlevels} "
                        f"levels (first {first!r}), not timestamps; {fix}")
    try:  # epoch numbers and YYYYMMDD are read as what they are, as in a CSV
        idx = parse_timestamps(df.index, f"cache: {p} index")
    except DataError as exc:
        raise DataError(f"cache: {p} is not a price file: its index is {df.index.dtype} "
                        f"(first {first!r}), not timestamps ({exc}); {fix}") from None
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise DataError(f"cache: {p} lacks columns {missing} (has {list(map(str, df.columns))}); {fix}")
    bad = [c for c in COLUMNS if c in df.columns and not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"cache: {p} column {bad[0]!r} is {df[bad[0]].dtype}, not numbers; {fix}")
    return idx


class CacheSource:
    """Read-through parquet cache written by :class:`YFinanceSource`; needs no network.

    One file per (symbol, interval, adjustment): ``<dir>/<interval>/<symbol>.<adj>.parquet``
    with the symbol percent-encoded (``^GSPC`` -> ``%5EGSPC``). A file holds the most
    recent download as it came (duplicates and NaN rows included). A later download of the
    same key replaces it rather than splicing: auto-adjusted prices are re-based by every
    new dividend, so old and new adjusted rows do not belong in one series.
    """

    name = "cache"
    per_symbol_files = True  # one file per symbol: many load in threads (data.parallel)

    def __init__(self, directory: str | Path | None = None, auto_adjust: bool = True) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self.auto_adjust = auto_adjust

    @property
    def _adj(self) -> str:
        return "adj" if self.auto_adjust else "raw"

    def path(self, symbol: str, interval: str) -> Path:
        """The file of (symbol, interval); the interval must look like one (``1d``, ``5m``,
        ``1wk``) and the path must stay inside the cache folder."""
        safe_id(interval, "--interval", _CACHE_INTERVAL,
                "a bar interval such as 1m, 5m, 1h, 1d, 1wk or 1mo")
        if not isinstance(symbol, str) or not symbol.strip():
            raise ConfigError(f"--symbols {symbol!r} is not a symbol; use a ticker such as SPY")
        p = self.directory / _fname(interval) / f"{_fname(symbol)}.{self._adj}.parquet"
        inside(self.directory, p, f"cache file of {symbol!r} ({interval})")
        return p

    def symbols(self) -> list[str]:
        try:
            if not self.directory.exists():
                return []
        except OSError as exc:
            raise DataError(f"cache: cannot read folder {self.directory}: {exc.strerror}; "
                            "check its permissions or set RESEARCH_LIB_CACHE") from None
        return sorted({unquote(p.name.rsplit(".", 2)[0])
                       for p in self.directory.glob(f"*/*.{self._adj}.parquet")})

    def write(self, symbol: str, interval: str, df: pd.DataFrame) -> Path:
        p = self.path(symbol, interval)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            df[COLUMNS].to_parquet(tmp)
            os.replace(tmp, p)  # atomic: a reader never sees half a file
        finally:
            tmp.unlink(missing_ok=True)
        return p

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        p = self.path(symbol, interval)
        try:
            exists = p.exists()
        except OSError as exc:  # an unreadable cache folder
            raise DataError(f"cache: cannot read {p.parent}: {exc.strerror}; check the "
                            "folder's permissions or set RESEARCH_LIB_CACHE") from None
        if not exists:
            raise UnknownSymbolError(
                symbol, f"cache ({self.directory}, interval {interval}, {self._adj})",
                self.symbols() or ["<empty: run once with --source yfinance to fill it>"],
            )
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # a truncated or foreign file: say which
            raise DataError(f"cache: cannot read {p}: {exc}; delete it and re-download") from exc
        df.index = _foreign_check(p, df)
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, self.name, f"cached file {p} has no bars in range")
        return finish_frame(df, symbol=symbol, source=self.name,
                            adjustment="auto_adjust=True" if self.auto_adjust else "raw")
