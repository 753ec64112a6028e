"""Fake market-data servers on 127.0.0.1 for the live-data adapters' tests: the real ccxt and
alpaca-py code talks HTTP to them (ccxt's ``urls['api']`` and alpaca-py's ``url_override``
point here), so what is tested is the adapter over the wire, not a mock of our interface.

``FakeBinance`` speaks the two public spot endpoints ccxt's binance class uses for bars:
``GET /api/v3/exchangeInfo`` (the documented response shape, trimmed to the fields ccxt
reads) and ``GET /api/v3/klines`` (``symbol, interval, startTime, endTime, limit``; rows of
``[open_ms, "o", "h", "l", "c", "v", close_ms, ...]`` as Binance sends them).
``FakeAlpaca`` speaks ``GET /v2/stocks/bars`` and ``GET /v1beta3/crypto/us/bars`` with
``next_page_token`` paging and checks the key headers. Both record every request and take
scripted faults: an HTTP status (429, 503, 403...), a delay longer than the client's
timeout, or a body that is not JSON.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd


@dataclass
class Fault:
    status: int = 0  # an HTTP error status to answer with
    delay: float = 0.0  # seconds to sleep before answering (a timeout)
    body: str | None = None  # a raw body (e.g. not JSON)


@dataclass
class FakeServer:
    """Routes ``GET`` paths to handlers; ``faults`` are consumed one per matching request
    (path prefix -> list of Fault)."""

    routes: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(
        default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    url: str = ""

    def fault(self, prefix: str, *faults: Fault) -> None:
        self.faults.setdefault(prefix, []).extend(faults)

    def paths(self, prefix: str = "") -> list[str]:
        return [p for p, _, _ in self.requests if p.startswith(prefix)]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        u = urlparse(handler.path)
        query = parse_qs(u.query)
        self.requests.append((u.path, query, dict(handler.headers.items())))
        for prefix, queue in self.faults.items():
            if u.path.startswith(prefix) and queue:
                f = queue.pop(0)
                if f.delay:
                    time.sleep(f.delay)
                if f.status or f.body is not None:
                    body = (f.body if f.body is not None
                            else json.dumps({"code": f.status, "message": f"fake {f.status}"}))
                    self._send(handler, f.status or 200, body)
                    return
        route = self.routes.get(u.path)
        if route is None:
            self._send(handler, 404, json.dumps({"code": 404, "message": "no such path"}))
            return
        status, payload = route(query, dict(handler.headers.items()))
        self._send(handler, status, payload if isinstance(payload, str) else json.dumps(payload))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: str) -> None:
        data = body.encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


@contextmanager
def serve(server: FakeServer) -> Iterator[FakeServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            server._answer(self)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------------- binance
def _market(symbol: str, base: str, quote: str) -> dict[str, Any]:
    """One ``symbols`` entry of Binance's spot exchangeInfo (the fields ccxt reads)."""
    return {
        "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False, "permissions": ["SPOT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000100",
             "maxPrice": "1000000.00000000", "tickSize": "0.00000100"},
            {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "100000.00000000",
             "stepSize": "0.00010000"},
        ],
    }


_BINANCE_STEP = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000,
                 "1d": 86_400_000}


def fake_binance(bars: dict[str, pd.DataFrame], pairs: dict[str, tuple[str, str]],
                 max_limit: int = 1000) -> FakeServer:
    """A Binance spot API serving ``bars`` (market id -> frame of ``interval`` bars)."""
    server = FakeServer()

    def exchange_info(query: dict, headers: dict) -> tuple[int, Any]:
        return 200, {"timezone": "UTC", "serverTime": int(time.time() * 1000),
                     "rateLimits": [], "exchangeFilters": [],
                     "symbols": [_market(s, *pairs[s]) for s in sorted(pairs)]}

    def klines(query: dict, headers: dict) -> tuple[int, Any]:
        sym = query.get("symbol", [""])[0]
        if sym not in bars:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        df = bars[sym]
        step = _BINANCE_STEP[query.get("interval", ["1m"])[0]]
        ms = df.index.as_unit("ms").asi8
        keep = pd.Series(True, index=df.index)
        if "startTime" in query:
            keep &= ms >= int(query["startTime"][0])
        if "endTime" in query:
            keep &= ms <= int(query["endTime"][0])
        limit = min(int(query.get("limit", ["500"])[0]), max_limit)
        part = df[keep.to_numpy()]
        part = part.iloc[:limit] if "startTime" in query else part.iloc[-limit:]
        rows = [[int(t.value // 1_000_000), f"{r.open:.8f}", f"{r.high:.8f}", f"{r.low:.8f}",
                 f"{r.close:.8f}", f"{r.volume:.8f}", int(t.value // 1_000_000) + step - 1,
                 "0", 0, "0", "0", "0"] for t, r in part.iterrows()]
        return 200, rows

    server.routes = {"/api/v3/exchangeInfo": exchange_info, "/api/v3/klines": klines}
    return server


def point_binance_at(exchange: Any, url: str) -> Any:
    """ccxt's binance object with its public spot API at ``url`` (nothing else is called
    for bars without keys)."""
    exchange.urls["api"]["public"] = url + "/api/v3"
    return exchange


# -------------------------------------------------------------------------- alpaca
def fake_alpaca(stocks: dict[str, pd.DataFrame], crypto: dict[str, pd.DataFrame],
                key: str, secret: str, page: int = 1000) -> FakeServer:
    server = FakeServer()

    def bars_route(book: dict[str, pd.DataFrame], need_keys: bool):
        def route(query: dict, headers: dict) -> tuple[int, Any]:
            got_key = headers.get("APCA-API-KEY-ID")
            got_secret = headers.get("APCA-API-SECRET-KEY")
            if need_keys and (got_key != key or got_secret != secret):
                return 401, {"code": 40110000, "message": "request is not authorized"}
            sym = query.get("symbols", [""])[0]
            df = book.get(sym)
            if df is None:
                return 200, {"bars": {}, "next_page_token": None}
            keep = pd.Series(True, index=df.index)
            if "start" in query:
                keep &= df.index >= pd.Timestamp(query["start"][0])
            if "end" in query:
                keep &= df.index <= pd.Timestamp(query["end"][0])
            part = df[keep.to_numpy()]
            offset = int(query.get("page_token", ["0"])[0] or 0)
            size = min(int(query.get("limit", [str(page)])[0]), page)
            chunk = part.iloc[offset: offset + size]
            rows = [{"t": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": r.open, "h": r.high,
                     "l": r.low, "c": r.close, "v": r.volume, "n": 1, "vw": r.close}
                    for t, r in chunk.iterrows()]
            nxt = str(offset + size) if offset + size < len(part) else None
            return 200, {"bars": {sym: rows} if rows else {}, "next_page_token": nxt}
        return route

    server.routes = {"/v2/stocks/bars": bars_route(stocks, True),
                     "/v1beta3/crypto/us/bars": bars_route(crypto, False)}
    return server
