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
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, EmptyDataError, RateLimitError, UnknownSymbolError
from ..paths import inside, safe_id
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


# ------------------------------------------------------------------- timestamps
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
    """``yfinance.exceptions.YFRateLimitError`` (yfinance >= 0.2.52), or an HTTP 429 from
    whichever HTTP client is underneath (curl_cffi or requests)."""
    try:
        from yfinance.exceptions import YFRateLimitError

        if isinstance(exc, YFRateLimitError):
            return True
    except ImportError:  # pragma: no cover - yfinance is a dependency
        pass
    if type(exc).__name__ == "YFRateLimitError":
        return True
    if getattr(getattr(exc, "response", None), "status_code", None) == 429:
        return True
    msg = str(exc).lower()
    return "too many requests" in msg or "rate limited" in msg


def flatten_yf_columns(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """One ticker's columns as ``open, high, low, close, [adj_close,] volume``.

    ``yf.download`` returns MultiIndex columns even for one ticker (since 0.2.48, default
    ``multi_level_index=True``): levels ``(Price, Ticker)``, or ``(Ticker, Price)`` with
    ``group_by="ticker"``. yfinance upper-cases tickers, so the match ignores case. A
    frame with several tickers and none of them ``symbol`` is an error, never a silent
    pick. ``Ticker.history`` frames (one level) only get their names lower-cased.
    """
    if isinstance(df.columns, pd.MultiIndex):
        names = list(df.columns.names)
        levels = [[str(v) for v in df.columns.get_level_values(i)]
                  for i in range(df.columns.nlevels)]
        want = symbol.upper()
        tick_level = names.index("Ticker") if "Ticker" in names else next(
            (i for i, lv in enumerate(levels) if want in (v.upper() for v in lv)), None)
        if tick_level is not None:
            tickers = sorted(set(levels[tick_level]))
            match = [t for t in tickers if t.upper() == want]
            if match:
                df = df.xs(match[0], axis=1, level=tick_level)
            elif len(tickers) == 1:
                df = df.droplevel(tick_level, axis=1)
            else:
                raise DataError(f"yfinance: frame has tickers {tickers}, not {symbol!r}")
        else:
            df = df.droplevel(list(range(1, df.columns.nlevels)), axis=1)
        if isinstance(df.columns, pd.MultiIndex):  # e.g. three levels: keep the first
            df = df.droplevel(list(range(1, df.columns.nlevels)), axis=1)
    df = df.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    df.columns.name = None
    return df


_DAILY_OR_LONGER = ("d", "wk", "mo")


class YFinanceSource:
    """Yahoo Finance through ``yfinance.Ticker(symbol).history`` with ``auto_adjust``
    passed explicitly, MultiIndex columns flattened, a UTC index (daily bars at the
    exchange-local session date, 00:00 UTC), bounded retry with back-off on rate limits,
    and a write to the parquet cache.

    Why ``Ticker.history`` and not ``yf.download``: ``download`` catches every exception
    per ticker (``multi._download_one``: ``except Exception``), logs "1 Failed download"
    and returns an empty frame, so a rate limit looks exactly like an unknown ticker and
    cannot be retried. In yfinance 0.2.x the swallowed error sat in ``yf.shared._ERRORS``;
    from 1.x it lives in a per-call context that ``download`` does not return (and
    ``yfinance.shared`` is no longer imported). ``history`` re-raises ``YFRateLimitError``
    whatever ``raise_errors`` / ``yf.config.debug.hide_exceptions`` say, from 0.2.52 on,
    and network failures (DNS, timeouts) propagate too. Soft failures (no such ticker,
    possibly delisted) come back as an empty frame, which is :class:`EmptyDataError` here.
    ``raise_errors=True`` is not passed: it is deprecated in 1.x.

    What we ask for explicitly: ``auto_adjust`` (``download``'s default flipped to True
    in 0.2.51, yfinance PR #2147; stating it keeps adjusted and raw series apart),
    ``actions=False`` (no Dividends/Stock Splits columns), ``repair=False`` and
    ``keepna=False`` (yfinance's defaults, stated: the loader does not repair 100x or
    split errors, the sanity checks report them; all-NaN rows carry no price and yfinance
    drops them, partly-NaN rows come through).
    """

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

    def _request_kwargs(self, start: Any, end: Any, interval: str) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "interval": interval,
            "auto_adjust": self.auto_adjust,
            "actions": False,
            "repair": False,
            "keepna": False,
            "prepost": False,
            "timeout": self.timeout,
        }
        # yfinance parses only "YYYY-MM-DD" strings (or datetimes) as the exchange's local
        # date, and its end is exclusive. Ask one day wider on each side and trim in UTC
        # afterwards, so start/end mean what they mean for every other source (inclusive).
        s, e = _ts(start, "start"), _ts(end, "end")
        if s is None:
            kw["period"] = "max"  # without start, history() would give one month only
        else:
            kw["start"] = (s - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        if e is not None:
            kw["end"] = (e + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        return kw

    def _download(self, symbol: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
        import yfinance as yf  # imported here: the network source is optional at run time

        kwargs = self._request_kwargs(start, end, interval)
        delays = iter(self.retry.delays())
        attempt = 0
        while True:
            attempt += 1
            ticker = None
            try:
                ticker = yf.Ticker(symbol)
                raw = ticker.history(**kwargs)
            except Exception as exc:
                if not _is_rate_limit(exc):
                    raise DataError(
                        f"yfinance: download of {symbol!r} failed: {type(exc).__name__}: {exc} "
                        "(no network? use --source cache or --source sample)"
                    ) from exc
                delay = next(delays, None)
                if delay is None:
                    raise RateLimitError(
                        f"yfinance: still rate-limited for {symbol!r} after {attempt} attempts; "
                        "wait and retry, or use --source cache"
                    ) from exc
                log_event(log, "yfinance_rate_limited", level=30, symbol=symbol,
                          attempt=attempt, retry_in_s=delay)
                self.sleep(delay)
                continue
            if raw is None or len(raw) == 0:
                # history() logs soft failures and keeps the reason on _price_history
                ph = getattr(ticker, "_price_history", None)
                reason = getattr(ph, "_last_error", None)
                detail = str(reason) if isinstance(reason, str) and reason else (
                    "Yahoo returned no rows: delisted, wrong ticker or nothing in range")
                raise EmptyDataError(symbol, self.name, detail)
            return raw

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        raw = self._download(symbol, start, end, interval)
        df = flatten_yf_columns(raw, symbol)
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"yfinance: frame for {symbol!r} lacks columns {missing}; "
                            f"got {list(df.columns)}")
        if "volume" not in df.columns:
            df["volume"] = np.nan
        try:
            idx = pd.DatetimeIndex(df.index)
        except (TypeError, ValueError) as exc:
            raise DataError(f"yfinance: index of {symbol!r} is not timestamps: {exc}") from exc
        if interval.lower().endswith(_DAILY_OR_LONGER):
            # Daily+ bars: history() stamps them at midnight in the *exchange's* timezone
            # (America/New_York for SPY, UTC for BTC-USD, Asia/Tokyo for ^N225); download()
            # gives the same wall time tz-naive. The session date is that wall date, so
            # drop the tz without converting (converting Tokyo midnight to UTC would land
            # on the previous day) and put the date at 00:00 UTC, like the sample.
            wall = idx.tz_localize(None) if idx.tz is not None else idx
            idx = pd.DatetimeIndex(wall.normalize()).tz_localize("UTC")
        else:
            # Intraday: history() and download() (>= 1.4) give exchange-tz-aware stamps;
            # older download() gave UTC. A naive stamp here can only be UTC.
            idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        df.index = idx
        # order, duplicates and NaN rows are kept as Yahoo sent them: sanity checks report
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, self.name, f"no bars between {start} and {end}")
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
_SYMBOL_NAMES = ("symbol", "ticker")


# what a data file may end with (pandas reads the compressed ones as they are)
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst")


def _csv_suffix(name: str) -> str | None:
    low = name.lower()
    return next((x for x in sorted(CSV_SUFFIXES, key=len, reverse=True) if low.endswith(x)), None)


def _stem(p: Path) -> str:
    """The symbol a file serves: its name without the CSV suffix, dots kept
    (``BRK.B.csv`` -> ``BRK.B``, ``SPX.csv.gz`` -> ``SPX``)."""
    suffix = _csv_suffix(p.name)
    return p.name[: -len(suffix)] if suffix else p.stem


class CsvSource:
    """A user's CSV: a one-symbol file named after the symbol (``SPY.csv``), a folder of
    such files, or one long file with a ``symbol`` (or ``ticker``) column. Column names
    are case-insensitive; timestamps daily or intraday, with or without a UTC offset;
    naive timestamps are taken as UTC. Rows are kept as they are (order, duplicates, NaN):
    the sanity checks report them."""

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            exists = self.path.exists()
        except OSError as exc:  # a folder on the way cannot be read
            raise DataError(f"csv: cannot read {self.path}: {exc.strerror}; check the "
                            "permissions of its folders") from None
        if not exists:
            raise DataError(f"csv: {self.path} does not exist; pass --source csv:PATH to a file or folder")

    def _files(self) -> dict[str, Path]:
        if self.path.is_dir():
            try:  # iterdir on an unreadable folder: a DataError naming it, not a traceback
                entries = sorted(self.path.iterdir())
            except OSError as exc:
                raise DataError(f"csv: cannot read folder {self.path}: {exc.strerror}; check "
                                "its permissions") from None
            # only data files: SPX.csv.bak, SPX.csv~ or .SPX.csv are not bars of SPX
            found = [p for p in entries
                     if _csv_suffix(p.name) and not p.name.startswith(".") and p.is_file()]
            files: dict[str, Path] = {}
            upper: dict[str, str] = {}
            for p in found:
                key = _stem(p)
                twin = upper.setdefault(key.upper(), key)
                if twin != key or key in files:
                    raise DataError(
                        f"csv: folder {self.path} has two files for symbol {key!r}: "
                        f"{files[twin].name} and {p.name}; keep one (move the other out)")
                files[key] = p
            if not files:
                raise DataError(f"csv: folder {self.path} has no *.csv files "
                                f"(accepted: {', '.join(CSV_SUFFIXES)})")
            return files
        return {_stem(self.path): self.path}

    @staticmethod
    def _read(p: Path) -> pd.DataFrame:
        try:
            df = pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"csv: cannot parse {p}: {exc}") from exc
        except OSError as exc:  # unreadable (permissions), a folder named *.csv, ...
            raise DataError(f"csv: cannot read {p}: {exc.strerror or exc}; check the file's "
                            "permissions") from None
        df.columns = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
        if {"date", "time"} <= set(df.columns) and not {"timestamp", "datetime"} & set(df.columns):
            # a date column and a time-of-day column: one bar time (not every bar at midnight)
            df.insert(0, "datetime", df.pop("date").astype(str) + " " + df.pop("time").astype(str))
        tcol = next((c for c in df.columns if c in _TIME_NAMES or c.startswith("unnamed")), None)
        if tcol is None and len(df) and str(df.iloc[0, 0]).strip().lower() == "ticker":
            raise DataError(
                f"csv: {p} has MultiIndex columns (a second header row {list(df.iloc[0])[:3]}"
                "...: a yfinance download saved with to_csv); save one level of column names "
                "(df.columns = df.columns.get_level_values('Price')) or read it with "
                "header=[0, 1] and research_lib.data.sources.flatten_yf_columns"
            )
        if tcol is None:
            raise DataError(f"csv: {p} has no timestamp column; name one of timestamp/datetime/date "
                            f"(has {list(df.columns)})")
        ts = parse_timestamps(df[tcol], f"csv: {p} column {tcol!r}")
        df = df.drop(columns=[tcol])
        df.index = pd.DatetimeIndex(ts, name="timestamp")
        for c in _SYMBOL_NAMES:
            if c in df.columns:
                df = df.rename(columns={c: "symbol"})
                break
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
            return sorted(map(str, long["symbol"].dropna().unique()))
        return sorted(self._files())

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        long = self._long()
        if long is not None:
            df = long[long["symbol"].astype(str) == symbol].drop(columns=["symbol"])
            if df.empty:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", self.symbols())
            where = f"{self.path} (rows of {symbol!r})"
        else:
            files = self._files()
            key = symbol if symbol in files else next(
                (k for k in files if k.upper() == symbol.upper()), None)
            if key is None:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", sorted(files))
            df = self._read(files[key])
            where = str(files[key])
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"csv: {where} lacks columns {missing}; has {list(df.columns)} "
                            "(names are case-insensitive; volume is optional)")
        for c in [c for c in COLUMNS if c in df.columns]:
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & df[c].notna()
            if bad.any():
                first = df.index[bad.to_numpy().argmax()]
                raise DataError(f"csv: {where} column {c!r} has non-numeric values, "
                                f"first at {first}: {df[c][bad].iloc[0]!r}")
            df[c] = num
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, f"csv:{self.path}", f"no rows between {start} and {end}")
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
        if not spec[4:].strip():  # "csv:$DATA" with DATA unset: never the working folder
            raise DataError(f"--source {spec!r} has no path; pass --source csv:PATH to a "
                            "file or folder (an empty path would read the working folder)")
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
