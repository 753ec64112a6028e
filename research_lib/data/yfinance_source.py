"""The ``yfinance`` source (network): Yahoo Finance with bounded retry on rate limits, its
frames flattened (:func:`flatten_yf_columns`) and written to the parquet cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, EmptyDataError, RateLimitError
from ..telemetry import get_logger, log_event
from .cache import CacheSource
from .source_base import _trim, _ts, finish_frame

log = get_logger("data")


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
# How far back Yahoo serves intraday bars (and, for 1m, how much one request may span):
# 1m within the last 30 days, at most 8 days a request; 2m..90m the last 60 days; 1h 730.
# A start further back is moved up to the window (said in the log and the frame's attrs).
INTRADAY_WINDOW = {"1m": pd.Timedelta(days=6), "2m": pd.Timedelta(days=59),
                   "5m": pd.Timedelta(days=59), "15m": pd.Timedelta(days=59),
                   "30m": pd.Timedelta(days=59), "90m": pd.Timedelta(days=59),
                   "60m": pd.Timedelta(days=729), "1h": pd.Timedelta(days=729)}


def intraday_start(interval: str, start: pd.Timestamp | None, now: pd.Timestamp
                   ) -> tuple[pd.Timestamp | None, str | None]:
    """``start`` moved up into Yahoo's window for ``interval`` bars, and the note saying
    so (None when it was inside)."""
    window = INTRADAY_WINDOW.get(interval.lower())
    if window is None or start is None or start >= now - window:
        return start, None
    first = (now - window).ceil("h")
    return first, (f"yfinance serves {interval} bars for the last {window.days} days only: "
                   f"asked from {start.isoformat()}, fetched from {first.isoformat()}")


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

    def _request_kwargs(self, start: Any, end: Any, interval: str,
                        symbol: str = "?") -> dict[str, Any]:
        kw: dict[str, Any] = {
            "interval": interval,  # 1m 5m 15m 1h 1d: Yahoo's names are this package's
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
        s, self._window_note = intraday_start(interval, s, pd.Timestamp.now(tz="UTC"))
        if self._window_note is not None:
            log_event(log, "yfinance_window", level=30, interval=interval,
                      note=self._window_note)
            if e is not None and e < s:
                raise EmptyDataError(symbol, self.name, self._window_note + "; --end "
                                     f"{e.isoformat()} is before that: nothing to fetch")
        if s is None:
            kw["period"] = "max"  # without start, history() would give one month only
        else:
            kw["start"] = (s - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        if e is not None:
            kw["end"] = (e + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        return kw

    def _download(self, symbol: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
        import yfinance as yf  # imported here: the network source is optional at run time

        kwargs = self._request_kwargs(start, end, interval, symbol)
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
        if getattr(self, "_window_note", None):
            out.attrs["window_note"] = self._window_note
        if self.cache is not None:
            try:
                self.cache.write(symbol, interval, out)
            except OSError as exc:
                log_event(log, "cache_write_failed", level=30, symbol=symbol, error=str(exc))
        return out
