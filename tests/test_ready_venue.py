"""``ready``'s ``venue.reconciles`` against the local fake Alpaca venue (tests/kit/venue.py),
through the real alpaca-py client: the venue's account against the ledger of the project's
latest run on it, rebuilt read-only; an account with no run on it must be flat; a venue that
does not answer, or refuses the keys, fails closed; no key in any output."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from research_lib.cli import main
from research_lib.ready import FAIL, PASS, SKIP, run_ready
from research_lib.ready.verdict import Verdict
from tests.kit.paper import NO_COSTS, FrameSource, edit_yaml, frame, make_session, write_config
from tests.kit.venue import KEY, SECRET, FakeAlpaca

ROOT = Path(__file__).resolve().parents[1]
SYMS = ["SPY", "BTC-USD"]
CLAIM = "venue.reconciles"


def venue_keys(url: str) -> dict[str, Any]:
    return {"broker": "alpaca", "alpaca_url": url, "timeout_seconds": 0.5,
            "backoff_seconds": 0.0, "max_backoff_seconds": 0.0, "max_attempts": 2}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, venue: FakeAlpaca) -> Path:
    """A temporary project whose session.yaml trades at the fake venue; runs in home/runs."""
    h = tmp_path / "home"
    shutil.copytree(ROOT / "config", h / "config", ignore=shutil.ignore_patterns("checklists"))
    edit_yaml(h / "config" / "session.yaml", "venue", **venue_keys(venue.url))
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(h))
    monkeypatch.chdir(tmp_path)
    return h


def verdict() -> Verdict:
    return run_ready(offline=True, only=[CLAIM]).verdict(CLAIM)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def trade(tmp_path: Path, home: Path, venue: FakeAlpaca, max_steps: int = 4) -> Path:
    """A live session (buy and hold, hourly bars on a fake clock) at the fake venue, its run
    in the project's run folder; returns the ledger."""
    n = 80
    frames = {"SPY": frame(list(np.linspace(100, 110, n)), start="2021-01-04 00:00", freq="h",
                           symbol="SPY"),
              "BTC-USD": frame(list(np.linspace(200, 190, n)), start="2021-01-04 00:00",
                               freq="h", symbol="BTC-USD")}
    clock = Clock(frames["SPY"].index[59].timestamp())

    class Growing(FrameSource):
        def fetch(self, symbol, start=None, end=None, interval="1d"):
            df = super().fetch(symbol, start=start, interval=interval)
            return df[df.index.map(lambda x: x.timestamp()) <= clock.t]

    sess = tmp_path / "session"
    cdir = write_config(sess / "config", session={"warmup_bars": 55, **NO_COSTS})
    edit_yaml(cdir / "session.yaml", "venue", **venue_keys(venue.url))
    res = make_session(sess, run_dir=home / "runs", source=Growing(frames), poll_seconds=3600,
                       clock=clock, sleep=clock.sleep, run_id="lv", symbols=SYMS,
                       model="baseline:buy_and_hold", mode="live", interval="1h",
                       max_steps=max_steps).run()
    assert res.exit_code == 0
    return Path(res.ledger_path)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------- a run on it
def test_venue_when_the_account_agrees_with_the_latest_run_then_pass_with_the_numbers(
        tmp_path, home, venue):
    venue.prices.update({"SPY": 100.5, "BTCUSD": 199.0})
    ledger = trade(tmp_path, home, venue)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in ledger.parent.rglob("*")
              if p.is_file()}
    v = verdict()
    assert v.verdict == PASS, v.detail
    ev = v.evidence
    assert ev["run_id"] == "lv" and ev["venue"] == "alpaca" and ev["url"] == venue.url
    assert ev["differences"] == []
    spy = venue.positions["SPY"][0]
    assert spy > 0 and ev["positions"]["SPY"] == {"ledger": spy, "venue": spy}
    assert ev["positions"]["BTC-USD"]["venue"] == venue.positions["BTCUSD"][0]
    assert abs(ev["cash"]["venue"] - venue.cash) < 1e-9
    assert abs(ev["cash"]["ledger"] - venue.cash) < 1e-6
    assert ev["open_orders"] == {"ledger": [], "venue": []}
    assert "agrees with the ledger of run lv" in v.detail
    # the user's run is only read
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in ledger.parent.rglob("*")
             if p.is_file()}
    assert after == before


def test_venue_when_a_position_drifted_at_the_venue_then_fail_naming_symbol_and_numbers(
        tmp_path, home, venue):
    trade(tmp_path, home, venue)
    held = venue.positions["SPY"][0]
    venue.drift("SPY", 3.0)
    v = verdict()
    assert v.verdict == FAIL
    assert (f"POSITION_DIFFERENCE: symbol=SPY ledger={held:.10g} venue={held + 3:.10g}"
            in v.detail)
    # the fake books the drift's cost in cash too: that is the second difference
    assert v.detail.startswith("2 differences between alpaca account ")
    assert "CASH_DIFFERENCE: " in v.detail and "unexplained=-300.00" in v.detail
    assert v.evidence["positions"]["SPY"] == {"ledger": held, "venue": held + 3}


def test_venue_when_an_order_is_open_at_the_venue_unknown_to_the_ledger_then_fail(
        tmp_path, home, venue):
    trade(tmp_path, home, venue)
    venue.fill_mode["SPY"] = "hold"
    with venue.lock:
        venue._submit({"client_order_id": "by-hand-1", "symbol": "SPY", "qty": "2",
                       "side": "buy", "time_in_force": "day"})
    v = verdict()
    assert v.verdict == FAIL
    assert "UNKNOWN_VENUE_ORDER: client_order_id=by-hand-1" in v.detail
    assert "symbol=SPY qty=2" in v.detail
    assert v.evidence["open_orders"] == {"ledger": [], "venue": ["by-hand-1"]}


def test_venue_when_the_venue_filled_an_order_the_ledger_holds_open_then_pass_explained(
        tmp_path, home, venue):
    venue.fill_mode["SPY"] = "hold"
    trade(tmp_path, home, venue, max_steps=2)
    (cid,) = [o["client_order_id"] for o in venue.orders.values() if o["key"] == "SPY"]
    venue.finish(cid)  # filled at the venue; the ledger books it at its next fill stage
    v = verdict()
    assert v.verdict == PASS, v.detail
    assert v.evidence["open_orders"]["ledger"] == [cid]
    assert any(r.startswith("IN_FLIGHT_FILL: symbol=SPY") for r in v.evidence["explained"])
    assert "explained by in-flight fills: IN_FLIGHT_FILL: symbol=SPY" in v.detail


# ------------------------------------------------------------------------- no run
def test_venue_when_no_run_and_the_account_is_flat_then_pass(home, venue):
    v = verdict()
    assert v.verdict == PASS, v.detail
    assert "flat with no open order" in v.detail
    assert v.evidence["runs_on_venue"] == 0 and v.evidence["positions"] == {}


def test_venue_when_no_run_and_the_account_holds_a_position_then_fail_naming_it(
        home, venue):
    venue.drift("SPY", 5.0)
    v = verdict()
    assert v.verdict == FAIL
    assert "already has positions SPY 5" in v.detail and "a new run needs the account flat" \
        in v.detail
    assert v.evidence["positions"] == {"SPY": 5.0}


def test_venue_when_a_run_traded_another_venue_url_then_it_is_not_this_venues_run(
        tmp_path, home, venue):
    trade(tmp_path, home, venue)
    other = FakeAlpaca()  # another venue: its account is flat, no run traded there
    try:
        edit_yaml(home / "config" / "session.yaml", "venue", alpaca_url=other.url)
        v = verdict()
    finally:
        other.close()
    assert v.verdict == PASS and v.evidence["runs_on_venue"] == 0, v.detail


# -------------------------------------------------------------------- which venue
def test_venue_when_ready_names_it_and_session_trades_paper_then_checked_with_its_settings(
        home, venue):
    edit_yaml(home / "config" / "session.yaml", "venue", broker="paper")
    assert verdict().verdict == SKIP
    edit_yaml(home / "config" / "ready.yaml", "ready", live_venue="alpaca")
    v = verdict()
    assert v.verdict == PASS and v.evidence["url"] == venue.url
    assert v.evidence["configured_by"] == "config/ready.yaml ready.live_venue"


# ------------------------------------------------------------------ fail closed
def test_venue_when_unreachable_then_fail_closed_with_the_error(home, venue):
    url = f"http://127.0.0.1:{free_port()}"
    edit_yaml(home / "config" / "session.yaml", "venue", alpaca_url=url)
    v = verdict()
    assert v.verdict == FAIL
    assert f"the alpaca venue at {url} did not answer" in v.detail
    assert "failed 2 times, the last with ConnectionError" in v.detail


def test_venue_when_the_keys_are_refused_or_absent_then_fail_naming_the_variable(
        home, venue, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrongSECRETvalue0000")
    v = verdict()
    assert v.verdict == FAIL and "HTTP 401" in v.detail and "APCA_API_SECRET_KEY" in v.detail
    assert "wrongSECRETvalue0000" not in json.dumps(v.evidence) + v.detail
    monkeypatch.delenv("APCA_API_KEY_ID")
    v = verdict()
    assert v.verdict == FAIL and "APCA_API_KEY_ID is not set" in v.detail


@pytest.mark.parametrize("case", ["pass", "drift", "refused"])
def test_venue_keys_never_in_the_json_or_the_html_report(tmp_path, home, venue, monkeypatch,
                                                         capsys, case):
    if case == "drift":
        trade(tmp_path, home, venue)
        venue.drift("BTC-USD", 0.25, 150.0)
    if case == "refused":
        monkeypatch.setenv("APCA_API_KEY_ID", "PKREFUSEDKEY00000000")
    html = tmp_path / "ready.html"
    code = main(["ready", "--offline", "--json", "--only", CLAIM, "--html", str(html)])
    out = capsys.readouterr()
    row = json.loads(out.out.strip().splitlines()[-1])
    assert row["claim"] == CLAIM
    assert (code, row["verdict"]) == ((0, PASS) if case == "pass" else (1, FAIL))
    text = out.out + out.err + html.read_text(encoding="utf-8")
    assert CLAIM in html.read_text(encoding="utf-8")
    for secret in (KEY, SECRET, "PKREFUSEDKEY00000000"):
        assert secret not in text
