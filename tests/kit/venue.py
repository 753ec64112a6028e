"""A local fake of Alpaca's trading API (v2) on 127.0.0.1, for tests: the real alpaca-py
client talks HTTP to it, so the venue adapter's code runs whole, with no network.

It implements the endpoints the adapter uses (``GET /v2/account``, ``GET /v2/positions``,
``GET /v2/orders``, ``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``,
``POST /v2/orders``, ``DELETE /v2/orders/{id}``) with Alpaca's JSON shapes and error
bodies, checks the key headers, and keeps an account: cash, positions (qty, average
price), orders. Behaviour is scripted:

* ``fill_mode[symbol]``: what a new market order does: ``fill`` (at once, at
  ``prices[symbol]``), ``hold`` (stays ``new``), ``partial:F`` (fills F of it and stays
  ``partially_filled``), ``rejected`` (accepted, then status ``rejected``), ``refuse``
  (HTTP 403 insufficient buying power);
* ``script``: one-shot faults for the next matching requests: ``(METHOD, path prefix,
  fault)`` with fault ``429`` (with ``Retry-After``), ``500``, ``503``, ``timeout`` (the
  request is served, the answer comes after the client gave up), ``hang`` (no answer in
  time, nothing done), ``drop`` (served, then the connection closes with no answer),
  ``ok`` (served as usual: lets the faults after it hit a later request);
* ``finish(cid, status)``: a held order fills (the rest), is ``canceled`` or ``expired``;
* ``drift(symbol, qty, price)``: a position changes outside any order of ours;
* ``crypto_fee_bps`` (default 25, Alpaca's tier-1 taker fee): as at Alpaca, a crypto
  fill's fee is taken from what the trade credits (a buy's coin, a sell's dollars), and
  the order's ``filled_qty`` does not show it.

Every request is logged in ``requests`` (method, path, query, JSON body) and every
header set in ``headers_seen``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

KEY = "PKFAKEKEYID00000TEST"
SECRET = "fakeSECRETvalue0123456789abcdefTESTONLY"
CRYPTO = ("BTC", "ETH", "LTC")


def _key(symbol: str) -> str:
    return symbol.replace("/", "").replace("-", "").upper()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _s(x: float) -> str:
    return f"{x:.10g}"


class FakeAlpaca:
    def __init__(self, cash: float = 100_000.0, hang_seconds: float = 1.5,
                 crypto_fee_bps: float = 25.0) -> None:
        self.cash = cash
        # Alpaca's crypto fee (tier 1 taker: 0.25%) is taken from what the trade credits:
        # a buy receives qty x (1 - fee) of the coin, a sell receives qty x price x (1 - fee)
        # dollars; the order's filled_qty and filled_avg_price do not show it
        self.crypto_fee_bps = crypto_fee_bps
        self.positions: dict[str, list[float]] = {}  # key -> [qty, avg price]
        self.orders: dict[str, dict[str, Any]] = {}  # venue id -> order state
        self.by_cid: dict[str, str] = {}
        self.prices: dict[str, float] = {}  # fill price per symbol key (default 100)
        self.marks: dict[str, float] = {}  # the venue's current price per key (equity)
        self.fill_mode: dict[str, str] = {}
        self.default_mode = "fill"
        self.script: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.blocked = False
        self.hang_seconds = hang_seconds
        self.account_id = str(uuid.UUID(int=13))
        self.lock = threading.RLock()
        handler = type("Handler", (_Handler,), {"venue": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ test controls
    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _, _ in self.requests if m == method and p == path)

    def orders_for(self, cid: str) -> int:
        return sum(1 for o in self.orders.values() if o["client_order_id"] == cid)

    def drift(self, symbol: str, qty: float, price: float = 100.0) -> None:
        with self.lock:
            self._book(_key(symbol), qty, price)

    def finish(self, cid: str, status: str = "filled") -> None:
        with self.lock:
            o = self.orders[self.by_cid[cid]]
            if status == "filled":
                rest = o["qty"] - o["filled"]
                self._fill(o, rest)
            o["status"] = status

    def open_order_count(self) -> int:
        return sum(1 for o in self.orders.values() if o["status"] in ("new", "partially_filled",
                                                                      "accepted"))

    # ------------------------------------------------------------ the account
    def _book(self, key: str, qty: float, price: float) -> None:
        q0, avg = self.positions.get(key, [0.0, 0.0])
        q1 = round(q0 + qty, 10)
        if q0 == 0 or (q0 > 0) == (qty > 0):
            avg = (q0 * avg + qty * price) / q1 if q1 else 0.0
        elif q1 == 0:
            avg = 0.0
        elif (q1 > 0) != (q0 > 0):
            avg = price
        self.cash = round(self.cash - qty * price, 10)
        if q1 == 0:
            self.positions.pop(key, None)
        else:
            self.positions[key] = [q1, avg]

    def _fill(self, o: dict[str, Any], qty: float) -> None:
        if qty <= 0:
            return
        price = self.prices.get(o["key"], 100.0)
        sign = 1.0 if o["side"] == "buy" else -1.0
        fee = self.crypto_fee_bps / 1e4 if o["crypto"] else 0.0
        if sign > 0:  # the coin received is short by the fee; the dollars paid are not
            self._book(o["key"], qty * (1 - fee), price / (1 - fee))
        else:  # the dollars received are short by the fee
            self._book(o["key"], -qty, price * (1 - fee))
        done = o["filled"] + qty
        o["avg"] = ((o["avg"] or 0.0) * o["filled"] + price * qty) / done
        o["filled"] = done
        o["filled_at"] = _now()

    def order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": o["id"], "client_order_id": o["client_order_id"], "created_at": o["at"],
            "updated_at": _now(), "submitted_at": o["at"], "filled_at": o.get("filled_at"),
            "expired_at": None, "canceled_at": None, "failed_at": None, "replaced_at": None,
            "replaced_by": None, "replaces": None, "asset_id": str(uuid.uuid5(
                uuid.NAMESPACE_DNS, o["key"])), "symbol": o["symbol"],
            "asset_class": "crypto" if o["crypto"] else "us_equity", "notional": None,
            "qty": _s(o["qty"]), "filled_qty": _s(o["filled"]),
            "filled_avg_price": None if o["avg"] is None else _s(o["avg"]),
            "order_class": "simple", "order_type": "market", "type": "market",
            "side": o["side"], "time_in_force": o["tif"], "limit_price": None,
            "stop_price": None, "status": o["status"], "extended_hours": False, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None}

    def position_json(self, key: str, qty: float, avg: float) -> dict[str, Any]:
        mark = self.marks.get(key, self.prices.get(key, 100.0))
        crypto = key.startswith(CRYPTO)
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, key)), "symbol": key,
                "exchange": "CRYPTO" if crypto else "NASDAQ",
                "asset_class": "crypto" if crypto else "us_equity",
                "asset_marginable": not crypto, "avg_entry_price": _s(avg), "qty": _s(qty),
                "side": "long" if qty > 0 else "short", "market_value": _s(qty * mark),
                "cost_basis": _s(qty * avg), "unrealized_pl": _s(qty * (mark - avg)),
                "current_price": _s(mark), "qty_available": _s(qty)}

    def account_json(self) -> dict[str, Any]:
        value = sum(q * self.marks.get(k, self.prices.get(k, 100.0))
                    for k, (q, _) in self.positions.items())
        eq = self.cash + value
        return {"id": self.account_id, "account_number": "PA0000TEST", "status": "ACTIVE",
                "crypto_status": "ACTIVE", "currency": "USD", "cash": _s(self.cash),
                "buying_power": _s(max(self.cash, 0.0) * 2), "equity": _s(eq),
                "portfolio_value": _s(eq), "last_equity": _s(eq),
                "long_market_value": _s(value), "short_market_value": "0",
                "pattern_day_trader": False, "trading_blocked": self.blocked,
                "transfers_blocked": False, "account_blocked": False,
                "trade_suspended_by_user": False, "multiplier": "2", "shorting_enabled": True,
                "created_at": "2026-01-02T00:00:00Z"}

    # ------------------------------------------------------------ routes
    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any
              ) -> tuple[int, Any]:
        with self.lock:
            if method == "GET" and path == "/v2/account":
                return 200, self.account_json()
            if method == "GET" and path == "/v2/positions":
                return 200, [self.position_json(k, q, a) for k, (q, a) in
                             sorted(self.positions.items())]
            if method == "GET" and path == "/v2/orders:by_client_order_id":
                vid = self.by_cid.get((query.get("client_order_id") or [""])[0])
                if vid is None:
                    return 404, {"code": 40410000, "message": "order not found"}
                return 200, self.order_json(self.orders[vid])
            if method == "GET" and path == "/v2/orders":
                status = (query.get("status") or ["open"])[0]
                out = [self.order_json(o) for o in self.orders.values()
                       if status == "all" or (o["status"] in ("new", "partially_filled",
                                                             "accepted")) == (status == "open")]
                return 200, out
            if path.startswith("/v2/orders/"):
                o = self.orders.get(path.rsplit("/", 1)[1])
                if o is None:
                    return 404, {"code": 40410000, "message": "order not found"}
                if method == "GET":
                    return 200, self.order_json(o)
                if method == "DELETE":
                    if o["status"] not in ("new", "partially_filled", "accepted"):
                        return 422, {"code": 42210000, "message": "order is already in "
                                     f"\"{o['status']}\" state"}
                    o["status"] = "canceled"
                    return 204, None
            if method == "POST" and path == "/v2/orders":
                return self._submit(body)
        return 404, {"code": 40400000, "message": f"no route {method} {path}"}

    def _submit(self, body: dict[str, Any]) -> tuple[int, Any]:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if cid in self.by_cid:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        key = _key(body["symbol"])
        mode = self.fill_mode.get(key, self.default_mode)
        if mode == "refuse":
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        vid = str(uuid.uuid4())
        o = {"id": vid, "client_order_id": cid, "symbol": body["symbol"], "key": key,
             "crypto": "/" in body["symbol"], "qty": float(body["qty"]), "side": body["side"],
             "tif": body["time_in_force"], "status": "new", "filled": 0.0, "avg": None,
             "at": _now()}
        self.orders[vid] = o
        self.by_cid[cid] = vid
        if mode == "fill":
            self._fill(o, o["qty"])
            o["status"] = "filled"
        elif mode.startswith("partial:"):
            part = o["qty"] * float(mode.split(":", 1)[1])
            part = part if o["crypto"] else float(int(part))
            self._fill(o, part)
            o["status"] = "partially_filled" if part else "new"
        elif mode == "rejected":
            o["status"] = "rejected"
        return 200, self.order_json(o)

    def take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            for k, (m, prefix, fault) in enumerate(self.script):
                if m == method and path.startswith(prefix):
                    del self.script[k]
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    venue: FakeAlpaca
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        v = self.venue
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        body = json.loads(raw) if raw else None
        with v.lock:
            v.requests.append((method, parts.path, query, body))
            v.headers_seen.append(dict(self.headers))
        if (self.headers.get("APCA-API-KEY-ID") != KEY
                or self.headers.get("APCA-API-SECRET-KEY") != SECRET):
            return self._send(401, {"code": 40110000, "message": "request is not authorized"})
        fault = v.take_fault(method, parts.path)
        if fault in ("429", "500", "503"):
            headers = {"Retry-After": "0"} if fault == "429" else {}
            msg = "rate limit exceeded" if fault == "429" else "internal server error"
            return self._send(int(fault), {"code": int(fault) * 100000, "message": msg},
                              headers)
        if fault == "hang":  # nothing done; no answer before the client gives up
            time.sleep(v.hang_seconds)
            self.close_connection = True
            return None
        status, payload = v.route(method, parts.path, query, body)
        if fault == "timeout":  # done, but the answer comes too late
            time.sleep(v.hang_seconds)
        if fault == "drop":  # done, then the connection closes with no answer
            self.close_connection = True
            return None
        return self._send(status, payload)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for k, val in (headers or {}).items():
                self.send_header(k, val)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client already gave up
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")


@pytest.fixture
def venue(monkeypatch):
    """A fake Alpaca on 127.0.0.1 with the test keys in the environment (a fixture: import
    it into a test module by name)."""
    v = FakeAlpaca()
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    yield v
    v.close()
