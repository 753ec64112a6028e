"""Alpaca's paper trading API as a venue, through ``alpaca-py``'s ``TradingClient``.

* **Keys** come from the environment (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``) and go
  to the client only: never logged, never in the ledger, ``events.jsonl`` or a report (a
  missing key is a :class:`~research_lib.errors.ConfigError` naming the variable).
* **Orders** are market orders under our client order id (``run-step-symbol``): equities
  ``day``, crypto ``gtc``. :meth:`AlpacaVenue.submit` looks the id up before every send, so
  a retried submit (a timeout or a dropped connection after the venue took the order, a
  429, a resumed step) never creates a second order; Alpaca refuses a reused id as well
  (HTTP 422), which is read the same way.
* **Bounded retries**: every call is tried at most ``venue.max_attempts`` times on 429, 5xx,
  timeouts and dropped connections, waiting ``backoff_seconds`` doubled each time (or the
  venue's ``Retry-After``), never more than ``max_backoff_seconds``; then
  :class:`~research_lib.venues.base.VenueUnavailable` (fail closed). alpaca-py's own 429
  loop (3 tries, 3 s apart, inside the library) is turned off so that this one is the
  only one, and every request has a timeout (alpaca-py sets none).
* **Crypto fees**: Alpaca takes its crypto fee from what a fill credits (a buy's coins, a
  sell's dollars), not in the order's numbers; :meth:`AlpacaVenue.fee_rate` says how much
  (``venue.crypto_fee_bps``), and the ledger books the fill net of it.
* **Symbols**: ``SPY`` is ``SPY``; crypto ``BTC-USD``, ``BTCUSD`` and ``BTCUSDT`` are
  ``BTC/USD``, ``BTC/USD`` and ``BTC/USDT`` (positions come back as ``BTCUSD``); an index
  (``^GSPC``) or an FX pair (``EURUSD=X``) cannot be traded there and is refused at start.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigError, VenueError
from ..telemetry import get_logger, log_event
from .base import VenueAccount, VenueOrder, VenueRejected, VenueSnapshot, VenueUnavailable
from .config import ALPACA_PAPER_URL, KEY_ENV, SECRET_ENV, VenueConfig

log = get_logger("venue")

CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")
_EQUITY = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


def venue_symbol(symbol: str, crypto: bool) -> str:
    """Our symbol as Alpaca names it in an order, or a ConfigError saying why it cannot
    trade there."""
    s = symbol.strip().upper()
    if crypto:
        if "/" in s:
            return s
        if "-" in s:
            base, _, quote = s.partition("-")
            return f"{base}/{quote}"
        for q in CRYPTO_QUOTES:
            if s.endswith(q) and len(s) > len(q):
                return f"{s[: -len(q)]}/{q}"
        raise ConfigError(f"--symbols {symbol}: not a crypto pair Alpaca can trade (e.g. "
                          "BTC-USD, BTCUSD, BTC/USDT)")
    if not _EQUITY.match(s):
        what = ("an index" if s.startswith("^") else "an FX pair" if s.endswith("=X")
                else "not a US equity ticker")
        raise ConfigError(f"--symbols {symbol}: {what}; Alpaca cannot trade it (trade an "
                          "ETF such as SPY for an index, or drop --broker alpaca)")
    return s


def symbol_key(symbol: str) -> str:
    """One spelling for comparing: ``BTC/USD``, ``BTC-USD`` and ``BTCUSD`` are ``BTCUSD``."""
    return symbol.replace("/", "").replace("-", "").upper()


def _num(v: Any) -> float:
    if v is None or v == "":
        return 0.0
    x = float(v)
    return x if math.isfinite(x) else 0.0


def _value(v: Any) -> str:
    return str(getattr(v, "value", v))


class AlpacaVenue:
    """The Alpaca paper account, seen in our symbols (:class:`~.base.Venue`)."""

    name = "alpaca"

    def __init__(self, cfg: VenueConfig, symbols: Iterable[str], crypto: Iterable[str],
                 env: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        env = os.environ if env is None else env
        missing = [k for k in (KEY_ENV, SECRET_ENV) if not (env.get(k) or "").strip()]
        if missing:
            raise ConfigError(
                f"--broker alpaca needs the Alpaca paper keys in the environment: "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                f"export {KEY_ENV}=... and {SECRET_ENV}=... (your paper account's keys; "
                "they are never written anywhere)")
        try:
            from alpaca.trading.client import TradingClient
        except ImportError:  # pragma: no cover - installed with the package's extras
            raise ConfigError("--broker alpaca needs alpaca-py: pip install "
                              "'research_lib[alpaca]' (pinned in constraints.txt)") from None
        self.cfg = cfg
        self.url = cfg.alpaca_url.rstrip("/")
        self._sleep = sleep
        crypto = set(crypto)
        self._order_symbol = {s: venue_symbol(s, s in crypto) for s in symbols}
        self._crypto = crypto
        self._ours = {symbol_key(v): s for s, v in self._order_symbol.items()}
        self._client = TradingClient(
            api_key=env[KEY_ENV].strip(), secret_key=env[SECRET_ENV].strip(), paper=True,
            url_override=None if self.url == ALPACA_PAPER_URL else self.url)
        # bounded retries live in _call (one loop, our back-off, fail closed); alpaca-py
        # would otherwise sleep 3 s and retry each 429 up to 3 times inside the library
        if not hasattr(self._client, "_retry") or not hasattr(self._client, "_session"):
            raise ConfigError("alpaca-py changed (no TradingClient._retry/_session): use the "
                              "version pinned in constraints.txt")
        self._client._retry = 0
        _with_timeout(self._client._session, cfg.timeout_seconds)

    def fee_rate(self, symbol: str) -> float:
        """The fee Alpaca takes from what a fill of ``symbol`` credits, as a fraction:
        ``venue.crypto_fee_bps`` for crypto (a buy receives qty x (1 - fee) coins, a sell
        qty x price x (1 - fee) dollars; the order's filled qty does not show it), 0 for
        equities (commission-free)."""
        return self.cfg.crypto_fee_bps / 1e4 if symbol in self._crypto else 0.0

    # ------------------------------------------------------------------ mapping
    def ours(self, venue_sym: str | None) -> str:
        """Our symbol for a venue symbol (the venue's own spelling when the run does not
        trade it)."""
        v = venue_sym or "?"
        return self._ours.get(symbol_key(v), v)

    def _order(self, o: Any) -> VenueOrder:
        sign = -1.0 if _value(o.side) == "sell" else 1.0
        avg = o.filled_avg_price
        return VenueOrder(
            client_order_id=str(o.client_order_id), venue_order_id=str(o.id),
            symbol=self.ours(o.symbol), qty=sign * _num(o.qty),
            filled_qty=sign * _num(o.filled_qty),
            filled_avg_price=None if avg in (None, "") else _num(avg), status=_value(o.status))

    # ------------------------------------------------------------------ retries
    def _wait(self, attempt: int, retry_after: str | None) -> float:
        c = self.cfg
        wait = c.backoff_seconds * 2 ** (attempt - 1)
        if retry_after:
            try:
                wait = max(wait, float(retry_after))
            except ValueError:
                when = email.utils.parsedate_to_datetime(retry_after)
                if when is not None:
                    wait = max(wait, when.timestamp() - time.time())
        return min(max(wait, 0.0), c.max_backoff_seconds)

    def _call(self, what: str, fn: Callable[[], Any],
              on_transient: Callable[[], None] | None = None) -> Any:
        """``fn()`` with bounded retries on 429, 5xx, timeouts and dropped connections."""
        import requests
        from alpaca.common.exceptions import APIError

        for attempt in range(1, self.cfg.max_attempts + 1):
            retry_after = None
            try:
                return fn()
            except VenueRejected:
                raise
            except APIError as exc:
                status = exc.status_code
                if status != 429 and (status is None or status < 500):
                    raise VenueError(
                        f"alpaca ({self.url}): {what} refused: HTTP {status}: {_message(exc)}"
                        + ("; check APCA_API_KEY_ID and APCA_API_SECRET_KEY (your paper "
                           "account's keys)" if status in (401, 403) else "")) from None
                why = f"HTTP {status}: {_message(exc)}"
                resp = exc.response
                retry_after = resp.headers.get("Retry-After") if resp is not None else None
            except (requests.Timeout, requests.ConnectionError,
                    requests.exceptions.ChunkedEncodingError) as exc:
                why = f"{type(exc).__name__}: {_no_query(str(exc))}"
            except Exception as exc:  # an answer alpaca-py cannot read: fail closed
                raise VenueError(f"alpaca ({self.url}): {what}: unexpected answer "
                                 f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
                                 ) from None
            if on_transient is not None:
                on_transient()
            if attempt == self.cfg.max_attempts:
                raise VenueUnavailable(
                    f"alpaca ({self.url}): {what} failed {attempt} times, the last with {why}; "
                    "stopping (fail closed): nothing of the step in progress is recorded; "
                    "`research-lib paper --resume RUN` reconciles with the venue first and "
                    "re-sends an order only if the venue does not already have its id")
            wait = self._wait(attempt, retry_after)
            log_event(log, "venue_retry", level=logging.WARNING, venue=self.name, what=what,
                      attempt=attempt, of=self.cfg.max_attempts, wait_s=round(wait, 3),
                      error=why)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ reads
    def account(self) -> VenueAccount:
        a = self._call("GET /v2/account", self._client.get_account)
        blocked = [k for k in ("trading_blocked", "account_blocked", "trade_suspended_by_user")
                   if getattr(a, k, None)]
        status = _value(a.status)
        if status != "ACTIVE":
            blocked.append(f"status={status}")
        return VenueAccount(account_id=str(a.id), status=status, cash=_num(a.cash),
                            equity=_num(a.equity or a.portfolio_value),
                            buying_power=_num(a.buying_power),
                            blocked=", ".join(blocked) or None)

    def positions(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self._call("GET /v2/positions", self._client.get_all_positions):
            q = _num(p.qty)
            if _value(p.side) == "short" and q > 0:
                q = -q
            sym = self.ours(p.symbol)
            out[sym] = out.get(sym, 0.0) + q
        return out

    def open_orders(self) -> list[VenueOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        return [self._order(o) for o in
                self._call("GET /v2/orders?status=open", lambda: self._client.get_orders(req))]

    def snapshot(self) -> VenueSnapshot:
        return VenueSnapshot(self.account(), self.positions(), self.open_orders())

    def _lookup(self, client_order_id: str) -> VenueOrder | None:
        """One GET /v2/orders:by_client_order_id (no retry here): None on 404."""
        from alpaca.common.exceptions import APIError

        try:
            return self._order(self._client.get_order_by_client_id(client_order_id))
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise

    def order(self, client_order_id: str) -> VenueOrder | None:
        return self._call(f"GET order {client_order_id}", lambda: self._lookup(client_order_id))

    # ------------------------------------------------------------------ commands
    def submit(self, order: Any) -> tuple[VenueOrder, bool]:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        cid = order.client_order_id
        req = MarketOrderRequest(
            symbol=self._order_symbol[order.symbol], qty=abs(order.qty),
            side=OrderSide.BUY if order.qty > 0 else OrderSide.SELL,
            time_in_force=TimeInForce.GTC if order.symbol in self._crypto else TimeInForce.DAY,
            client_order_id=cid)

        def once() -> tuple[VenueOrder, bool]:
            found = self._lookup(cid)  # before every send: a try may have reached the venue
            if found is not None:
                return found, True
            try:
                return self._order(self._client.submit_order(req)), False
            except APIError as exc:
                status = exc.status_code
                if status == 429 or status is None or status >= 500:
                    raise
                msg = _message(exc)
                if status == 422 and "client_order_id" in msg:  # the venue has this id
                    found = self._lookup(cid)
                    if found is not None:
                        return found, True
                raise VenueRejected(f"HTTP {status}: {msg}") from None

        vo, adopted = self._call(f"POST /v2/orders {cid}", once)
        log_event(log, "venue_order_adopted" if adopted else "venue_order_sent",
                  level=logging.WARNING if adopted else logging.INFO, client_order_id=cid,
                  venue_order_id=vo.venue_order_id, status=vo.status, qty=vo.qty)
        return vo, adopted

    def cancel(self, venue_order_id: str) -> None:
        from alpaca.common.exceptions import APIError

        def once() -> None:
            try:
                self._client.cancel_order_by_id(venue_order_id)
            except APIError as exc:
                if exc.status_code in (404, 422):  # already done (filled, cancelled): fine
                    return
                raise

        self._call(f"DELETE /v2/orders/{venue_order_id}", once)


def _message(exc: Any) -> str:
    """The venue's error message (its JSON ``message``, else the body), one line, short."""
    try:
        text = str(exc.message)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        text = str(exc)
    return " ".join(text.split())[:300]


def _no_query(text: str) -> str:
    return re.sub(r"\?[^ )'\"]*", "", text)[:300]


def _with_timeout(session: Any, seconds: float) -> None:
    """Every request of ``session`` (a requests.Session) gets ``seconds`` as its timeout
    unless it names one (alpaca-py names none: a silent venue would block forever)."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = seconds
            return super().send(request, **kwargs)

    for prefix in ("https://", "http://"):
        session.mount(prefix, TimeoutAdapter(max_retries=0))
