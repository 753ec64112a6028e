"""The ``alpaca`` source (network, keys): bars from Alpaca's market-data API through
alpaca-py (the optional ``alpaca`` extra): ``StockHistoricalDataClient.get_stock_bars`` for
equities (the free IEX feed unless ``APCA_DATA_FEED=sip``), ``CryptoHistoricalDataClient
.get_crypto_bars`` for crypto pairs (``BTC/USD``).

Keys come from the environment only: ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``
(Alpaca's own names). They are handed to alpaca-py's client, which sends them as request
headers; they are never logged, never put in an error message, a frame's attrs, the
ledger or a report (a missing key is named by its variable, never by a value).

Symbols: equities as asked (``SPY``); a crypto pair in Alpaca's ``BASE/QUOTE`` form, mapped
and labelled from other spellings (``BTC-USD``, ``BTCUSD`` -> ``BTC/USD``; ``BTCUSDT`` ->
``BTC/USDT``). Bars are stamped at their start (UTC); daily bars at the New York session
date, 00:00 UTC, like every other source. alpaca-py retries HTTP 429/504 itself (3 times,
3 s apart); what still fails is a :class:`DataError` with the API's reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError, EmptyDataError, UnknownSymbolError
from .ccxt_source import split_pair
from .sanity import interval_length
from .source_base import _trim, _ts, finish_frame

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
FEED_ENV = "APCA_DATA_FEED"  # iex (default, free) or sip
URL_ENV = "APCA_API_DATA_URL"  # Alpaca's own override of the data host (tests, proxies)
CRYPTO_QUOTES = ("USD", "USDT", "USDC", "BTC")


def alpaca_symbol(symbol: str, crypto: bool) -> tuple[str, str | None]:
    """Alpaca's name for ``symbol`` and the note that labels an alias."""
    if not crypto:
        return symbol.upper(), None
    pair = split_pair(symbol)
    if pair is None or pair[1] not in CRYPTO_QUOTES:
        raise UnknownSymbolError(symbol, "alpaca", ["BTC/USD", "ETH/USD", "BTC/USDT", "..."])
    name = f"{pair[0]}/{pair[1]}"
    return name, (None if name == symbol else f"alias: {name} on Alpaca")


def _timeframe(interval: str) -> Any:
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    step = interval_length(interval)
    if step is None:
        raise DataError(f"alpaca: --interval {interval!r} is not a bar interval")
    sec = int(step.total_seconds())
    for unit, size, most in ((TimeFrameUnit.Day, 86400, 1), (TimeFrameUnit.Hour, 3600, 23),
                             (TimeFrameUnit.Minute, 60, 59)):
        if sec % size == 0 and 1 <= sec // size <= most:
            return TimeFrame(sec // size, unit)
    raise DataError(f"alpaca: no {interval} bars; use 1m, 5m, 15m, 1h or 1d")


class AlpacaSource:
    """Alpaca market data. ``env`` is where keys are read (default ``os.environ``);
    ``url_override`` points alpaca-py's clients at another host (tests: a local server)."""

    name = "alpaca"

    def __init__(self, env: Mapping[str, str] | None = None, url_override: str | None = None,
                 feed: str | None = None, is_crypto: Any = None) -> None:
        env = os.environ if env is None else env
        self._key = env.get(KEY_ENV) or None
        self._secret = env.get(SECRET_ENV) or None
        self._url = url_override or env.get(URL_ENV) or None
        self.feed = (feed or env.get(FEED_ENV) or "iex").lower()
        if self.feed not in ("iex", "sip"):
            raise ConfigError(f"{FEED_ENV}={self.feed!r}: use iex (free) or sip")
        self._is_crypto = is_crypto
        self._clients: dict[str, Any] = {}

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaSource(feed={self.feed!r}, keys={'set' if self._key else 'unset'})"

    def symbols(self) -> list[str]:
        return []

    def _crypto(self, symbol: str) -> bool:
        if self._is_crypto is not None:
            return bool(self._is_crypto(symbol))
        from ..config import load_assets

        try:
            return load_assets().classify(symbol) == "crypto"
        except ConfigError:
            return split_pair(symbol) is not None

    def _client(self, kind: str) -> Any:
        if kind in self._clients:
            return self._clients[kind]
        try:
            from alpaca.data.historical import (
                CryptoHistoricalDataClient,
                StockHistoricalDataClient,
            )
        except ImportError:
            raise DataError("--source alpaca needs alpaca-py: pip install "
                            "'research_lib[alpaca]' (pinned in constraints.txt)") from None
        if kind == "stock":
            if not (self._key and self._secret):
                missing = [n for n, v in ((KEY_ENV, self._key), (SECRET_ENV, self._secret))
                           if not v]
                raise ConfigError(f"--source alpaca: {' and '.join(missing)} not set; "
                                  "export your Alpaca keys (paper keys work) in the "
                                  "environment, never in a file under the project")
            client = StockHistoricalDataClient(self._key, self._secret,
                                               url_override=self._url)
        else:  # crypto bars need no keys; sent when given (higher rate limits)
            client = CryptoHistoricalDataClient(self._key, self._secret,
                                                url_override=self._url)
        self._clients[kind] = client
        return client

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
        from requests import RequestException

        crypto = self._crypto(symbol)
        name, note = alpaca_symbol(symbol, crypto)
        tf = _timeframe(interval)
        s, e = _ts(start, "start"), _ts(end, "end")
        args: dict[str, Any] = {"symbol_or_symbols": name, "timeframe": tf,
                                "start": None if s is None else s.floor("us").to_pydatetime(),
                                "end": None if e is None else e.ceil("us").to_pydatetime()}
        try:
            if crypto:
                bars = self._client("crypto").get_crypto_bars(CryptoBarsRequest(**args))
            else:
                req = StockBarsRequest(**args, adjustment=Adjustment.ALL,
                                       feed=DataFeed.SIP if self.feed == "sip" else DataFeed.IEX)
                bars = self._client("stock").get_stock_bars(req)
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            raise DataError(f"alpaca: bars for {name} refused (HTTP {status}): "
                            f"{_reason(exc)}") from None
        except (RequestException, OSError) as exc:
            raise DataError(f"alpaca: bars for {name} failed: {type(exc).__name__} (no "
                            "network, or Alpaca is down?)") from None
        rows = (getattr(bars, "data", None) or {}).get(name) or []
        if not rows:
            raise EmptyDataError(symbol, self.name, f"{name}: Alpaca returned no {interval} "
                                 f"bars between {start} and {end}")
        df = pd.DataFrame({"open": [b.open for b in rows], "high": [b.high for b in rows],
                           "low": [b.low for b in rows], "close": [b.close for b in rows],
                           "volume": [b.volume for b in rows]},
                          index=pd.DatetimeIndex([pd.Timestamp(b.timestamp) for b in rows]))
        idx = df.index.tz_localize("UTC") if df.index.tz is None else df.index.tz_convert("UTC")
        if interval_length(interval) >= pd.Timedelta(days=1) and not crypto:
            # a daily stock bar is stamped at midnight New York: its session date, 00:00 UTC
            idx = idx.tz_convert("America/New_York").tz_localize(None).normalize() \
                .tz_localize("UTC")
        df.index = idx.rename("timestamp")
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, self.name, f"no bars between {start} and {end}")
        return finish_frame(df, symbol=symbol, source=self.name,
                            served_as=name if name != symbol else None, note=note,
                            adjustment="split and dividend adjusted (Adjustment.ALL)"
                            if not crypto else "spot pair (nothing to adjust)",
                            extra={"calendar": "24/7" if crypto else "XNYS",
                                   "feed": "crypto" if crypto else self.feed})


def _reason(exc: BaseException) -> str:
    """The API's own message (a JSON ``message`` when it sent one), cut short; Alpaca's
    error bodies carry no credentials."""
    try:
        text = str(exc.message)  # type: ignore[attr-defined]
    except (AttributeError, ValueError, KeyError, TypeError):
        text = str(exc)
    return text.replace("\n", " ")[:300]
