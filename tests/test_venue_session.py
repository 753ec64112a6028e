"""Paper sessions at Alpaca's paper trading API (``--broker alpaca``), against the local fake
venue (tests/kit/venue.py) through the real alpaca-py client: fills, partial fills,
rejections and cancels into the ledger with the venue's ids, reconciliation after every
step and at a resume, the HALT latch, kill switch, retries, and no key in any artefact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from research_lib.errors import ConfigError
from research_lib.ledger_read import deterministic_dump, read_run
from tests.kit.paper import NO_COSTS, FrameSource, edit_yaml, frame, ledger_rows, make_session
from tests.kit.paper import write_config
from tests.kit.venue import KEY, SECRET, FakeAlpaca

SYMS = ["SPY", "BTC-USD"]


@pytest.fixture
def venue(monkeypatch):
    v = FakeAlpaca()
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    yield v
    v.close()


class Clock:
    """A fake wall clock the live feed polls by (each sleep moves it on)."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.hooks: list[Any] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt
        for h in list(self.hooks):
            h(self.t)


def bars(n: int = 80) -> dict[str, Any]:
    return {"SPY": frame(list(np.linspace(100, 110, n)), start="2021-01-04 00:00", freq="h",
                         symbol="SPY"),
            "BTC-USD": frame(list(np.linspace(200, 190, n)), start="2021-01-04 00:00",
                             freq="h", symbol="BTC-USD")}


def growing(frames: dict[str, Any], clock: Clock) -> FrameSource:
    class Growing(FrameSource):
        def fetch(self, symbol, start=None, end=None, interval="1d"):
            df = super().fetch(symbol, start=start, interval=interval)
            return df[df.index.map(lambda x: x.timestamp()) <= clock.t]

    return Growing(frames)


def venue_config(tmp_path: Path, venue: FakeAlpaca, **venue_keys: Any) -> Path:
    cdir = write_config(tmp_path / "config", session={"warmup_bars": 55, **NO_COSTS})
    edit_yaml(cdir / "session.yaml", "venue", **{
        "broker": "alpaca", "alpaca_url": venue.url, "timeout_seconds": 0.3,
        "backoff_seconds": 0.0, "max_backoff_seconds": 0.0, "max_attempts": 3,
        **venue_keys})
    return cdir


def live(tmp_path: Path, venue: FakeAlpaca, clock: Clock | None = None, frames=None,
         **kw: Any):
    """A live session on hourly bars polled by a fake clock, trading at the fake venue."""
    frames = frames or bars()
    clock = clock or Clock(frames["SPY"].index[59].timestamp())
    if not (tmp_path / "config").exists():
        venue_config(tmp_path, venue)
    kw.setdefault("run_id", "lv")
    kw.setdefault("model", "baseline:buy_and_hold")
    if not kw.get("resume"):
        kw.setdefault("symbols", SYMS)
        kw.setdefault("mode", "live")
        kw.setdefault("interval", "1h")
    return make_session(tmp_path, source=growing(frames, clock), poll_seconds=3600,
                        clock=clock, sleep=clock.sleep, **kw)


def test_live_session_at_alpaca_when_orders_fill_then_the_ledger_books_the_venues_fills(
        tmp_path, venue):
    venue.prices.update({"SPY": 100.5, "BTCUSD": 199.0})
    res = live(tmp_path, venue, max_steps=4).run()
    assert res.exit_code == 0
    run = read_run(res.ledger_path)
    orders = run["orders"]
    assert set(orders["status"]) == {"filled"} and len(orders) == 2
    fills = run["fills"].set_index("symbol")
    assert fills.loc["SPY", "price"] == 100.5 and fills.loc["BTC-USD", "price"] == 199.0
    # one venue order per client order id, under our id
    for cid in orders["client_order_id"]:
        assert venue.orders_for(cid) == 1
    ev = run["venue_events"]
    sub = ev[ev["event"] == "SUBMITTED"]
    assert set(sub["client_order_id"]) == set(orders["client_order_id"])
    assert sub["venue_order_id"].str.len().eq(36).all()  # the venue's ids
    assert set(ev[ev["event"] == "FILLED"]["client_order_id"]) == set(orders["client_order_id"])
    # the venue's account equals the ledger's at the end (cash and positions)
    eq = run["equity"].iloc[-1]
    assert abs(eq["cash"] - venue.cash) < 1e-6
    pos = run["positions"][run["positions"]["step"] == run["positions"]["step"].max()]
    held = {r.symbol: r.qty for r in pos.itertuples() if r.qty}
    assert held == {"SPY": venue.positions["SPY"][0], "BTC-USD": venue.positions["BTCUSD"][0]}
    rec = run["reconciliations"]
    assert set(rec["verdict"]) == {"EXPLAINED"}  # filled at once, booked at the next step
    assert run["meta"]["venue"]["broker"] == "alpaca"
    assert run["meta"]["initial_cash"] == 100_000.0
