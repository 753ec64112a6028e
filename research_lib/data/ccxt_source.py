"""The ``ccxt:EXCHANGE`` source (network, keyless): crypto bars through ccxt's public
``fetch_ohlcv`` (``--source ccxt:binance``), the optional ``ccxt`` extra.

What it does, in ccxt's own terms: builds the exchange class ``ccxt.<EXCHANGE>`` with
``enableRateLimit`` (ccxt spaces its calls by the exchange's ``rateLimit``) and a timeout,
``load_markets()`` once (public; no keys are read or sent), maps the asked symbol to the
exchange's unified symbol, then pages ``fetch_ohlcv(symbol, timeframe, since, limit)``
forward from ``start`` until ``end`` or a short page. Bars are ccxt's
``[ms, open, high, low, close, volume]``, stamped at their start in UTC; the newest one may
still be forming (the live feed decides on closed bars only, :mod:`research_lib.paper.live`).

Symbols (shown in each frame's label, like the sample's proxies): the exchange's own market
id is native (``BTCUSDT`` on binance is ``BTC/USDT``); a unified symbol is used as is; a
Yahoo-style pair maps to the exchange's market, and where the exchange has no dollar market
the USDT one serves, labelled (``BTC-USD`` -> ``BTC/USDT``: priced in USDT, not USD).

Errors: an unknown market is :class:`UnknownSymbolError`; a rate limit (HTTP 429/418,
ccxt's ``RateLimitExceeded``/``DDoSProtection``) is retried with bounded back-off, then
:class:`RateLimitError`; a network failure or an exchange error is :class:`DataError`
with ccxt's reason, never an empty frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import DataError, EmptyDataError, RateLimitError, UnknownSymbolError
from ..telemetry import get_logger, log_event
from .source_base import _trim, _ts, finish_frame
from .yfinance_source import RetryPolicy

log = get_logger("data")

# exchange options: binance lists spot, USD-M and COIN-M futures at load_markets; the
# session needs spot bars only, so only the spot exchangeInfo is fetched
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
}
QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "BTC", "ETH")  # longest first
MAX_PAGES = 100  # pages of fetch_ohlcv per fetch (binance: 1,000 bars a page)


def split_pair(symbol: str) -> tuple[str, str] | None:
    """``BTC-USD``, ``BTC/USDT``, ``BTCUSDT``, ``ETH_BTC`` -> (base, quote); None when it is
    not a pair."""
    s = symbol.upper().split(":", 1)[0]
    for sep in ("/", "-", "_"):
        if sep in s:
            base, _, quote = s.partition(sep)
            return (base, quote) if base and quote else None
    for q in QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return s[: -len(q)], q
    return None


def resolve_market(symbol: str, markets: dict[str, Any], markets_by_id: dict[str, Any],
                   exchange: str) -> tuple[str, str | None]:
    """The exchange's unified symbol for ``symbol`` and the note that labels an alias."""
    if symbol in markets:
        return symbol, None
    by_id = markets_by_id.get(symbol)
    if by_id:
        spot = [m for m in by_id if m.get("spot")] or list(by_id)
        unified = spot[0]["symbol"]
        return unified, f"alias: {unified} on {exchange} (its market id {symbol})"
    pair = split_pair(symbol)
    if pair is None:
        raise UnknownSymbolError(symbol, f"ccxt:{exchange}", sorted(markets)[:50])
    base, quote = pair
    if f"{base}/{quote}" in markets:
        unified = f"{base}/{quote}"
        return unified, f"alias: {unified} on {exchange}"
    if quote == "USD":
        for stable in ("USDT", "USDC"):
            if f"{base}/{stable}" in markets:
                unified = f"{base}/{stable}"
                return unified, (f"alias: {unified} on {exchange} (priced in {stable}, not "
                                 "USD)")
    raise UnknownSymbolError(symbol, f"ccxt:{exchange}",
                             sorted(m for m in markets if m.startswith(f"{base}/"))
                             or sorted(markets)[:50])


class CcxtSource:
    """Bars from one exchange through ccxt (``CcxtSource("binance")``); ``exchange`` may be
    a ccxt exchange object already built (tests point its ``urls['api']`` at a local
    server)."""

    def __init__(self, exchange_id: str, exchange: Any = None, timeout: float = 10.0,
                 retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not exchange_id:
            raise DataError("--source ccxt: needs an exchange, e.g. --source ccxt:binance")
        self.exchange_id = exchange_id
        self.name = f"ccxt:{exchange_id}"
        self._ex = exchange
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep
        self._loaded = False

    def symbols(self) -> list[str]:
        return sorted(self._markets()[0])

    def _exchange(self) -> Any:
        if self._ex is None:
            try:
                import ccxt
            except ImportError:
                raise DataError("--source ccxt:... needs the ccxt package: pip install "
                                "'research_lib[ccxt]' (pinned in constraints.txt)") from None
            cls = getattr(ccxt, self.exchange_id, None)
            if cls is None or self.exchange_id not in getattr(ccxt, "exchanges", []):
                raise DataError(f"--source {self.name}: ccxt has no exchange "
                                f"{self.exchange_id!r}; e.g. ccxt:binance, ccxt:kraken, "
                                "ccxt:coinbase")
            self._ex = cls({"enableRateLimit": True, "timeout": int(self.timeout * 1000),
                            "options": dict(EXCHANGE_OPTIONS.get(self.exchange_id, {}))})
        return self._ex

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` with ccxt's errors said in this package's terms; rate limits retried."""
        import ccxt

        delays = iter(self.retry.delays())
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                delay = next(delays, None)
                if delay is None:
                    raise RateLimitError(f"{self.name}: still rate-limited for {what} after "
                                         f"{attempt} attempts ({type(exc).__name__}); wait "
                                         "and retry") from exc
                log_event(log, "ccxt_rate_limited", level=30, exchange=self.exchange_id,
                          what=what, attempt=attempt, retry_in_s=delay)
                self.sleep(delay)
            except ccxt.BadSymbol as exc:
                raise UnknownSymbolError(what, self.name, []) from exc
            except ccxt.NetworkError as exc:
                raise DataError(f"{self.name}: {what} failed: {type(exc).__name__}: "
                                f"{_short(exc)} (no network, or the exchange is down?)"
                                ) from exc
            except ccxt.BaseError as exc:
                raise DataError(f"{self.name}: {what} failed: {type(exc).__name__}: "
                                f"{_short(exc)}") from exc

    def _markets(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ex = self._exchange()
        if not self._loaded:
            self._call("load_markets", ex.load_markets)
            self._loaded = True
        return ex.markets or {}, ex.markets_by_id or {}

    def resolve(self, symbol: str) -> tuple[str, str | None]:
        markets, by_id = self._markets()
        return resolve_market(symbol, markets, by_id, self.exchange_id)

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        ex = self._exchange()
        unified, note = self.resolve(symbol)
        frames = getattr(ex, "timeframes", None) or {}
        if interval not in frames:
            raise DataError(f"{self.name}: no {interval!r} bars; it has "
                            f"{', '.join(sorted(frames)) or 'none listed'}")
        s, e = _ts(start, "start"), _ts(end, "end")
        since = None if s is None else int(s.value // 1_000_000)
        until = None if e is None else int(e.value // 1_000_000)
        limit = 1000
        rows: list[list[Any]] = []
        for _ in range(MAX_PAGES):
            page = self._call(f"fetch_ohlcv {unified} {interval}",
                              lambda since=since: ex.fetch_ohlcv(unified, interval, since, limit))
            page = [r for r in (page or []) if not rows or r[0] > rows[-1][0]]
            rows.extend(page)
            if since is None or not page:  # the latest page only, or nothing newer
                break
            if until is not None and rows[-1][0] >= until:
                break
            since = int(rows[-1][0]) + 1
        if not rows:
            raise EmptyDataError(symbol, self.name, f"{unified}: the exchange returned no "
                                 f"{interval} bars from {start}")
        df = pd.DataFrame([r[:6] for r in rows],
                          columns=["timestamp", "open", "high", "low", "close", "volume"])
        df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True))
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, self.name, f"no bars between {start} and {end}")
        return finish_frame(df, symbol=symbol, source=self.name,
                            served_as=unified if unified != symbol else None, note=note,
                            adjustment="spot pair (nothing to adjust)",
                            extra={"calendar": "24/7", "exchange": self.exchange_id})


def _short(exc: BaseException, n: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= n else text[:n] + "..."
