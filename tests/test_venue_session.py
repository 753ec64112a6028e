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
from tests.kit.paper import (
    NO_COSTS,
    FrameSource,
    edit_yaml,
    frame,
    ledger_rows,
    make_session,
    write_config,
)
from tests.kit.venue import KEY, SECRET, FakeAlpaca

SYMS = ["SPY", "BTC-USD"]


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
    if not kw.get("resume"):
        kw.setdefault("run_id", "lv")
        if "router" not in kw:
            kw.setdefault("model", "baseline:buy_and_hold")
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


def _cid(sym: str, step: int, run: str = "lv") -> str:
    return f"{run}-{step}-{sym}"


def test_partial_fill_then_the_rest_cancelled_at_the_venue_then_the_part_is_booked(
        tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    venue.fill_mode["SPY"] = "partial:0.5"
    res = live(tmp_path, venue, clock, max_steps=2).run()
    assert res.exit_code == 0
    cid = _cid("SPY", 0)
    ev = ledger_rows(res.ledger_path, "SELECT event, reason FROM order_events WHERE "
                     "client_order_id=? ORDER BY seq", cid)
    assert [e for e, _ in ev] == ["OrderSubmitted", "OrderPartiallyFilled"]
    vid = venue.by_cid[cid]
    assert f"venue_order_id={vid}" in ev[1][1]
    part = venue.orders[vid]["filled"]
    assert 0 < part < venue.orders[vid]["qty"]
    assert ledger_rows(res.ledger_path, "SELECT COUNT(*) FROM fills WHERE client_order_id=?",
                       cid) == [(0,)]  # booked once done, not before
    venue.finish(cid, "canceled")  # the venue cancels the rest
    res2 = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    fill = ledger_rows(res2.ledger_path, "SELECT qty, price FROM fills WHERE client_order_id=?",
                       cid)
    assert fill == [(part, 100.0)]
    last = ledger_rows(res2.ledger_path, "SELECT event, reason FROM order_events WHERE "
                       "client_order_id=? ORDER BY seq DESC LIMIT 1", cid)[0]
    assert last[0] == "OrderFilled" and last[1].startswith("VENUE_PARTIAL_FILL: filled=")
    venue_ev = ledger_rows(res2.ledger_path, "SELECT event, venue_order_id, filled_qty FROM "
                           "venue_events WHERE client_order_id=? ORDER BY seq", cid)
    assert [e for e, _, _ in venue_ev] == ["SUBMITTED", "PARTIALLY_FILLED", "CANCELED"]
    assert {v for _, v, _ in venue_ev} == {vid}
    assert ledger_rows(res2.ledger_path, "SELECT COUNT(*) FROM reconciliations WHERE "
                       "verdict='DIFFERENCE'") == [(0,)]
    assert res2.summary["state"] == "ACTIVE"


def test_venue_refuses_an_order_then_it_is_rejected_in_the_ledger_with_the_venues_reason(
        tmp_path, venue):
    venue.fill_mode["SPY"] = "refuse"
    res = live(tmp_path, venue, max_steps=1).run()
    run = read_run(res.ledger_path)
    o = run["orders"].set_index("symbol")
    assert o.loc["SPY", "status"] == "rejected"
    assert o.loc["SPY", "reason"] == ("VENUE_REJECTED: HTTP 403: insufficient buying power "
                                      "symbol=SPY")
    assert o.loc["BTC-USD", "status"] == "open"  # filled at the venue, booked next step
    d = run["decisions"].set_index("symbol")
    assert d.loc["SPY", "verdict"] == "REJECTED"
    r = run["risk_events"]
    assert list(r[r["kind"] == "rejection"]["code"]) == ["VENUE_REJECTED"]


@pytest.mark.parametrize(("status", "code"), [("expired", "VENUE_EXPIRED"),
                                            ("canceled", "VENUE_CANCELED")])
def test_an_order_the_venue_rejects_or_expires_later_then_recorded_with_the_venues_id(
        tmp_path, venue, status, code):
    """``canceled``: cancelled at the venue by someone else (not our kill switch), nothing
    filled: cancelled in the ledger with the venue's id, never booked."""
    clock = Clock(bars()["SPY"].index[59].timestamp())
    venue.fill_mode.update({"SPY": "rejected", "BTCUSD": "hold"})
    res = live(tmp_path, venue, clock, max_steps=1).run()
    venue.finish(_cid("BTC-USD", 0), status)
    res = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    run = read_run(res.ledger_path)
    o = run["orders"].set_index("client_order_id")
    spy, btc = _cid("SPY", 0), _cid("BTC-USD", 0)
    assert o.loc[spy, "status"] == "rejected"
    assert o.loc[spy, "reason"].startswith(f"VENUE_REJECTED: status=rejected venue_order_id="
                                           f"{venue.by_cid[spy]}")
    assert o.loc[btc, "status"] == "cancelled"
    assert o.loc[btc, "reason"] == (f"{code}: venue_order_id={venue.by_cid[btc]} "
                                    "symbol=BTC-USD")
    assert run["fills"].empty
    ev = run["venue_events"]
    assert status.upper() in set(ev[ev["client_order_id"] == btc]["event"])
    assert not ledger_rows(res.ledger_path, "SELECT reason FROM reconciliations WHERE "
                           "verdict='DIFFERENCE'")  # the ledger and the venue agree


def test_a_position_drifting_outside_the_ledger_then_a_difference_latches_halted_until_reset(
        tmp_path, venue):
    from research_lib.halt import reset_halt

    clock = Clock(bars()["SPY"].index[59].timestamp())
    res = live(tmp_path, venue, clock, max_steps=2).run()
    assert res.summary["state"] == "ACTIVE"
    spy = venue.positions["SPY"][0]
    clock.hooks.append(lambda t, done=[]: done or (venue.drift("SPY", 7), done.append(1)))
    res = live(tmp_path, venue, clock, resume="lv", max_steps=3).run()
    path = res.ledger_path
    diff = ledger_rows(path, "SELECT step, kind, symbol, ledger, venue, in_flight, reason FROM "
                       "reconciliations WHERE verdict='DIFFERENCE'")
    first = diff[0]
    at = first[0]  # the first step after the drift
    assert at >= 2 and first[1:6] == ("position", "SPY", spy, spy + 7, 0.0)
    assert first[6] == (f"POSITION_DIFFERENCE: symbol=SPY ledger={spy:.10g} venue="
                        f"{spy + 7:.10g} in_flight=0 unexplained=7 tolerance=1e-06")
    st = ledger_rows(path, "SELECT step, from_state, to_state, reason FROM state_changes "
                     "WHERE scope='account'")
    assert st[0][:3] == (at, "ACTIVE", "HALTED")
    assert st[0][3].startswith("RECONCILIATION_DIFFERENCE: POSITION_DIFFERENCE: symbol=SPY")
    assert ledger_rows(path, "SELECT state FROM equity WHERE step=?", at) == [("HALTED",)]
    # HALTED by a difference sends nothing, not even a flattening order
    denied = ledger_rows(path, "SELECT step, reason FROM risk_events WHERE kind='denial'")
    assert denied and all(r.startswith("VENUE_UNRECONCILED") and k > at for k, r in denied)
    assert venue.count("POST", "/v2/orders") == 2
    # a resume stays HALTED (latched) even once the venue agrees again ...
    venue.drift("SPY", -7)
    res = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    assert res.summary["state"] == "HALTED"
    assert venue.count("POST", "/v2/orders") == 2
    # ... until a person resets it
    assert reset_halt("lv", "venue position fixed", run_dir=tmp_path / "runs").reset
    res = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    assert res.summary["state"] == "ACTIVE"


def test_a_difference_found_at_a_resume_then_recorded_before_the_first_decision(
        tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    live(tmp_path, venue, clock, max_steps=2).run()
    venue.drift("QQQ", 3)  # a position in a symbol the run does not trade
    venue.cash -= 500.0  # and cash: 500 plus the 3 QQQ at 100 bought outside the run
    res = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    rows = ledger_rows(res.ledger_path, "SELECT step, kind, symbol, verdict, reason FROM "
                       "reconciliations ORDER BY seq")
    start = [r for r in rows if r[0] is None]
    assert {(k, s) for _, k, s, v, _ in start if v == "DIFFERENCE"} == {
        ("position", "QQQ"), ("cash", None)}
    cash = next(r for r in start if r[1] == "cash")[4]
    assert cash.startswith("CASH_DIFFERENCE: ledger=") and "unexplained=-800.00" in cash
    sc = ledger_rows(res.ledger_path, "SELECT step, to_state, reason FROM state_changes WHERE "
                     "scope='account'")
    assert sc[0][0] == 1 and sc[0][1] == "HALTED"  # after the last committed step
    assert ledger_rows(res.ledger_path, "SELECT state FROM equity WHERE step=2") == [("HALTED",)]


def test_a_restart_with_orders_open_at_the_venue_then_reconciled_and_booked_not_resent(
        tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    venue.default_mode = "hold"
    res = live(tmp_path, venue, clock, max_steps=1).run()
    assert venue.open_order_count() == 2
    for sym in SYMS:  # filled while the session was down
        venue.finish(_cid(sym, 0))
    venue.default_mode = "fill"
    res = live(tmp_path, venue, clock, resume="lv", max_steps=2).run()
    run = read_run(res.ledger_path)
    assert set(run["fills"]["client_order_id"]) == {_cid(s, 0) for s in SYMS}
    assert venue.count("POST", "/v2/orders") == 2  # nothing sent twice
    rec = run["reconciliations"]
    assert set(rec[rec["step"].isna()]["verdict"]) == {"EXPLAINED"}  # at start: in flight
    assert (rec["verdict"] == "DIFFERENCE").sum() == 0
    assert run["equity"]["cash"].iloc[-1] == pytest.approx(venue.cash, abs=1e-6)


def test_429_timeouts_and_dropped_connections_mid_submit_then_one_order_per_client_id(
        tmp_path, venue):
    venue.script += [("POST", "/v2/orders", "429"), ("POST", "/v2/orders", "timeout"),
                     ("POST", "/v2/orders", "drop")]
    res = live(tmp_path, venue, max_steps=3).run()
    assert res.exit_code == 0
    run = read_run(res.ledger_path)
    for cid in run["orders"]["client_order_id"]:
        assert venue.orders_for(cid) == 1
    ev = run["venue_events"]
    assert set(ev[ev["event"] == "ADOPTED"]["client_order_id"]) == {_cid("SPY", 0),
                                                                    _cid("BTC-USD", 0)}
    assert set(run["orders"]["status"]) == {"filled"}
    assert (run["reconciliations"]["verdict"] == "DIFFERENCE").sum() == 0


def test_venue_down_mid_step_then_nothing_of_the_step_recorded_and_a_resume_adopts_the_order(
        tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    # the first order goes through; every try of the second fails (503)
    venue.script += [("POST", "/v2/orders", "ok")] + [("POST", "/v2/orders", "503")] * 3
    res = live(tmp_path, venue, clock, max_steps=2).run()
    assert res.exit_code == 4 and res.summary["stopped"] == "venue_error"
    path = res.ledger_path
    assert ledger_rows(path, "SELECT COUNT(*) FROM steps") == [(0,)]
    assert ledger_rows(path, "SELECT COUNT(*) FROM orders") == [(0,)]
    code = ledger_rows(path, "SELECT code, reason FROM risk_events")
    assert code[0][0] == "VENUE_UNAVAILABLE" and "failed 3 times" in code[0][1]
    assert venue.orders_for(_cid("SPY", 0)) == 1 and venue.orders_for(_cid("BTC-USD", 0)) == 0
    res = live(tmp_path, venue, clock, resume="lv", max_steps=2).run()
    assert res.exit_code == 0 and res.summary["state"] == "ACTIVE"
    assert venue.orders_for(_cid("SPY", 0)) == 1  # adopted, not sent again
    run = read_run(res.ledger_path)
    ev = run["venue_events"]
    assert list(ev[ev["client_order_id"] == _cid("SPY", 0)]["event"])[:1] == ["ADOPTED"]
    assert set(run["fills"]["client_order_id"]) == {_cid("SPY", 0), _cid("BTC-USD", 0)}
    rec = run["reconciliations"]
    assert (rec["verdict"] == "DIFFERENCE").sum() == 0
    assert "IN_FLIGHT_FILL: symbol=SPY" in " ".join(rec[rec["step"].isna()]["reason"])


def test_kill_switch_with_orders_open_at_the_venue_then_cancelled_there(tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    venue.default_mode = "hold"
    live(tmp_path, venue, clock, max_steps=1).run()
    (tmp_path / "kill.flag").touch()  # the session's kill file (tests/kit quiet_switch)
    res = live(tmp_path, venue, clock, resume="lv", max_steps=1).run()
    assert venue.count("DELETE", f"/v2/orders/{venue.by_cid[_cid('SPY', 0)]}") == 1
    assert {o["status"] for o in venue.orders.values()} == {"canceled"}
    run = read_run(res.ledger_path)
    o = run["orders"]
    first = o[o["step"] == 0]
    assert set(first["status"]) == {"cancelled"} and len(first) == 2
    assert first["reason"].str.startswith("KILL_SWITCH: KILL_FILE").all()
    assert set(o[o["step"] == 1]["status"]) == {"denied"}  # and nothing new is sent
    ev = run["venue_events"]
    assert set(ev[ev["event"] == "CANCEL_REQUESTED"]["client_order_id"]) == {
        _cid(s, 0) for s in SYMS}
    assert venue.count("POST", "/v2/orders") == 2


def test_risk_limits_checked_against_the_venues_view_as_well(tmp_path, venue):
    from tests.kit.paper import ScriptedModel

    clock = Clock(bars()["SPY"].index[59].timestamp())
    cdir = venue_config(tmp_path, venue)
    edit_yaml(cdir / "session.yaml", "signal", target_weight=0.14)
    # SPY buys at once; BTC-USD only from its third decision
    model = ScriptedModel(SYMS, prob=lambda s, n, c: 1.0 if s == "SPY" or n > 62 else 0.5)
    live(tmp_path, venue, clock, router=model, max_steps=2).run()
    venue.marks["SPY"] = 0.01  # the venue values the SPY position at nothing: lower equity
    res = live(tmp_path, venue, clock, router=model, resume="lv", max_steps=2).run()
    d = read_run(res.ledger_path)["decisions"]
    btc = d[(d["symbol"] == "BTC-USD") & (d["verdict"] == "DENIED")]
    assert len(btc) >= 1
    reason = btc["reason"].iloc[0]
    assert reason.startswith("VENUE_VIEW: MAX_POSITION_EXCEEDED: limit=0.15") and \
        "venue equity=" in reason
    assert venue.orders_for(_cid("BTC-USD", 2)) == 0


def test_dry_run_at_alpaca_then_nothing_is_sent_and_the_account_is_still_reconciled(
        tmp_path, venue):
    res = live(tmp_path, venue, max_steps=2, dry_run=True).run()
    assert venue.count("POST", "/v2/orders") == 0
    assert venue.count("GET", "/v2/account") >= 3  # at start and after each step
    run = read_run(res.ledger_path)
    assert set(run["orders"]["status"]) == {"dry_run"}
    assert "reconciliations" not in run  # everything agreed


def test_keys_never_reach_the_ledger_events_logs_or_summary(tmp_path, venue, capfd):
    from research_lib.telemetry import configure

    configure(level="DEBUG")
    try:
        venue.fill_mode["SPY"] = "refuse"
        venue.script += [("GET", "/v2/account", "429"), ("POST", "/v2/orders", "timeout")]
        res = live(tmp_path, venue, max_steps=3, log_file=True).run()
    finally:
        configure(level="WARNING")
    out = capfd.readouterr()
    assert any(h.get("APCA-API-SECRET-KEY") == SECRET for h in venue.headers_seen)
    texts = {"stdout": out.out, "stderr": out.err, "summary": json.dumps(res.summary),
             "dump": json.dumps(deterministic_dump(res.ledger_path), default=str),
             "read_run meta": json.dumps(read_run(res.ledger_path)["meta"], default=str)}
    for f in (tmp_path / "runs").rglob("*"):
        if f.is_file():
            texts[str(f)] = f.read_bytes().decode("latin-1")
    assert "venue_retry" in out.err and any("events.jsonl" in k for k in texts)
    for name, text in texts.items():
        assert KEY not in text and SECRET not in text, name


# ------------------------------------------------------------------ refused at start
def test_a_new_run_on_an_account_that_already_holds_positions_then_refused_nothing_written(
        tmp_path, venue):
    venue.drift("SPY", 5)
    with pytest.raises(ConfigError, match="already has positions SPY 5, which a new run"):
        live(tmp_path, venue).run()
    assert not (tmp_path / "runs" / "lv").exists()


def test_broker_alpaca_in_a_replay_then_refused(tmp_path, venue):
    venue_config(tmp_path, venue)
    with pytest.raises(ConfigError, match="runs a live session only"):
        make_session(tmp_path, symbols=["SPY"], source=FrameSource(bars()), start="2021-01-06",
                     model="baseline:buy_and_hold", interval="1h").run()
    assert venue.requests == []


def test_missing_keys_then_config_error_naming_the_variable_and_no_run(
        tmp_path, venue, monkeypatch):
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(ConfigError, match="APCA_API_SECRET_KEY is not set"):
        live(tmp_path, venue).run()
    assert not (tmp_path / "runs" / "lv").exists() and venue.requests == []


def test_resume_with_another_broker_then_refused(tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    live(tmp_path, venue, clock, max_steps=1).run()
    with pytest.raises(ConfigError, match="--broker paper cannot be used with --resume lv"):
        live(tmp_path, venue, clock, resume="lv", broker="paper").run()


def test_paper_broker_run_writes_no_venue_table_and_no_venue_meta(tmp_path):
    write_config(tmp_path / "config", session={"warmup_bars": 5})
    res = make_session(tmp_path, symbols=["SPY"], source=FrameSource(bars()),
                       start="2021-01-06", model="baseline:buy_and_hold", interval="1h",
                       max_steps=5).run()
    dump = deterministic_dump(res.ledger_path)
    assert "venue_events" not in dump and "reconciliations" not in dump
    assert not any(k == "venue" for k, _ in dump["meta"])


def test_venue_account_blocked_mid_run_then_orders_denied_with_the_venues_reason(
        tmp_path, venue):
    from tests.kit.paper import ScriptedModel

    clock = Clock(bars()["SPY"].index[59].timestamp())
    first: dict[str, int] = {}  # BTC turns long from its second decision (after the block)
    model = ScriptedModel(SYMS, prob=lambda s, n, c: 1.0 if s == "SPY"
                          or n > first.setdefault(s, n) else 0.5)
    clock.hooks.append(lambda t: setattr(venue, "blocked", True))  # from the first wait on
    res = live(tmp_path, venue, clock, router=model, max_steps=3).run()
    d = read_run(res.ledger_path)["decisions"]
    btc = d[(d["symbol"] == "BTC-USD") & (d["verdict"] == "DENIED")]
    # the venue's view is taken after each step: the first step after the block still sees
    # the view before it (denied there on the venue's own numbers), the next one the block
    assert "VENUE_BLOCKED: trading_blocked symbol=BTC-USD" in list(btc["reason"])
    assert venue.count("POST", "/v2/orders") == 1  # SPY, before the block: nothing after


def test_an_edit_of_the_venue_section_mid_run_then_refused_and_recorded(tmp_path, venue):
    clock = Clock(bars()["SPY"].index[59].timestamp())
    cdir = venue_config(tmp_path, venue)
    clock.hooks.append(lambda t, done=[]: done or (
        edit_yaml(cdir / "session.yaml", "venue", max_attempts=9), done.append(1)))
    res = live(tmp_path, venue, clock, max_steps=3).run()
    rows = ledger_rows(res.ledger_path, "SELECT to_state, reason FROM state_changes WHERE "
                       "scope='config'")
    assert rows == [("REJECTED", "session.yaml: changes a key read only at start "
                                 "(venue.max_attempts: 3 -> 9); restart the session to apply "
                                 "it; kept previous")]


def test_cli_paper_broker_alpaca_on_a_replay_then_exit_2_saying_live_only(tmp_path, venue,
                                                                          capsys):
    from research_lib.cli import main

    venue_config(tmp_path, venue)
    code = main(["paper", "--symbols", "SPY", "--broker", "alpaca", "--config-dir",
                 str(tmp_path / "config"), "--run-dir", str(tmp_path / "runs")])
    assert code == 2
    assert "--broker alpaca sends orders to a venue, so it runs a live session only" in \
        capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and venue.requests == []
