"""The session loop: kill switches per order, dry run, hot reload, latched halts across
restarts, fail-closed signals, sizing from decision prices, clocks, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.flags import KillSwitch
from research_lib.ledger import Ledger
from research_lib.ledger_read import deterministic_dump, read_run
from research_lib.session import parse_duration, signal_target
from tests.kit.paper import (
    NO_COSTS,
    FakeRouter,
    FlipEnv,
    FrameSource,
    ScriptedModel,
    edit_yaml,
    frame,
    ledger_rows,
    make_session,
    quiet_switch,
    random_walk,
    write_config,
)

FLAT = [100.0] * 12


def two_symbols(n: int = 40) -> FrameSource:
    return FrameSource({"AAA": random_walk(n, seed=3, symbol="AAA"),
                        "BBB": random_walk(n, seed=4, price=40.0, symbol="BBB")})


# ------------------------------------------------------------------ kill switches
def test_kill_switch_is_asked_before_each_order_not_once_per_step(tmp_path):
    env = FlipEnv(after=2)  # read 1: session start; read 2: first order; then halted
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=two_symbols(),
                     start="2021-01-20", model="baseline:buy_and_hold", run_id="ks",
                     kill_switch=quiet_switch(tmp_path, env))
    s.run()
    run = read_run(s.ledger.path)
    first = run["decisions"][run["decisions"]["step"] == 0].set_index("symbol")
    assert first.loc["AAA", "verdict"] == "SUBMITTED"
    assert first.loc["BBB", "verdict"] == "DENIED"
    assert first.loc["BBB", "reason"] == "KILL_SWITCH: FLAG_TRADING_HALTED=1 symbol=BBB"
    # issue 10: AAA's open order does not fill while the flag is on; it is cancelled at the
    # fill stage of step 1 (one more read there, the only step with an open order)
    assert run["fills"].empty
    assert run["orders"].set_index("symbol").loc["AAA"].iloc[0]["status"] == "cancelled"
    assert env.reads == 1 + len(run["orders"]) + 1  # at start, once per order, at the fill


def test_kill_file_present_at_start_lets_no_order_through(tmp_path):
    ks = quiet_switch(tmp_path)
    ks.kill_file.touch()
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=two_symbols(),
                     start="2021-01-20", model="baseline:buy_and_hold", kill_switch=ks)
    res = s.run()
    assert res.summary["fills"] == 0 and res.summary["orders"] == 0
    assert res.summary["denied"] > 0
    assert list(res.summary["denials_by_reason"]) == ["KILL_SWITCH"]
    reasons = {r[0] for r in ledger_rows(res.ledger_path,
                                         "SELECT reason FROM risk_events WHERE kind='denial'")}
    assert reasons and all(r.startswith(f"KILL_SWITCH: KILL_FILE: {ks.kill_file}") for r in reasons)


def test_flag_trading_halted_blocks_every_order(tmp_path):
    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     model="baseline:buy_and_hold",
                     kill_switch=quiet_switch(tmp_path, {"FLAG_TRADING_HALTED": "1"}))
    res = s.run()
    assert res.summary["fills"] == 0 and res.summary["denials_by_reason"]["KILL_SWITCH"] > 0


# ------------------------------------------------------------------------ dry run
def test_dry_run_records_intended_orders_and_fills_nothing(tmp_path):
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=two_symbols(),
                     start="2021-01-20", model="baseline:buy_and_hold", dry_run=True)
    res = s.run()
    run = read_run(res.ledger_path)
    assert len(run["orders"]) > 0 and (run["orders"]["status"] == "dry_run").all()
    assert run["fills"].empty
    assert (run["equity"]["equity"] == 100_000.0).all()
    assert set(run["decisions"]["verdict"]) == {"DRY_RUN"}


# --------------------------------------------------------------------- hot reload
def _reload_session(tmp_path, new_limit):
    # target 0.10 under the 0.15 limit: the drift of a 2% random walk never trims
    cfg = write_config(tmp_path / "config", signal={"target_weight": 0.10})

    def hook(call: int) -> None:
        if call == 3:  # during step 2: applies from step 3
            edit_yaml(cfg / "risk.yaml", "risk", max_position_pct=new_limit)
            st = os.stat(cfg / "risk.yaml")
            os.utime(cfg / "risk.yaml", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    model = ScriptedModel(["AAA"], hook=hook)
    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     router=model, run_id="reload")
    s.run()
    return s, read_run(s.ledger.path)


def test_valid_risk_edit_applies_at_the_next_step(tmp_path):
    s, run = _reload_session(tmp_path, 0.051)
    sc = run["state_changes"]
    [row] = sc[sc["scope"] == "config"].itertuples()
    assert row.step == 3 and row.to_state == "RELOADED"
    assert row.reason == "risk.yaml: risk.max_position_pct: 0.15 -> 0.051"
    clips = run["risk_events"][run["risk_events"]["code"] == "TARGET_CLIPPED"]
    assert clips["step"].min() == 3
    assert s.engine.limits.max_position_pct == 0.051
    sells = run["orders"][run["orders"]["side"] == "SELL"]
    assert sells["step"].min() == 3  # cut from 15% to 5.1% at once


def test_invalid_risk_edit_keeps_previous_limits_and_is_recorded(tmp_path):
    s, run = _reload_session(tmp_path, 1.5)
    sc = run["state_changes"]
    [row] = sc[sc["scope"] == "config"].itertuples()
    assert row.step == 3 and row.to_state == "REJECTED"
    assert "max_position_pct must be in (0, 1], got 1.5" in row.reason
    assert s.engine.limits.max_position_pct == 0.15
    assert run["risk_events"].query("kind != 'data'").empty  # no denial, clip or breach


def test_invalid_assets_edit_keeps_previous_routing_and_is_recorded(tmp_path):
    cfg = write_config(tmp_path / "config")

    def hook(call: int) -> None:
        if call == 2:
            text = (cfg / "assets.yaml").read_text().replace("model: crypto_v1", "model: nope_v9")
            (cfg / "assets.yaml").write_text(text)
            st = os.stat(cfg / "assets.yaml")
            os.utime(cfg / "assets.yaml", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     router=ScriptedModel(["AAA"], hook=hook))
    s.run()
    sc = read_run(s.ledger.path)["state_changes"]
    [row] = sc[sc["scope"] == "config"].itertuples()
    assert row.step == 2 and row.to_state == "REJECTED"
    assert "classes.crypto.model 'nope_v9' is not under models" in row.reason
    assert s.assets.asset_class("crypto").model == "crypto_v1"


# -------------------------------------------------- latched states across restart
def _hourly(closes, opens=None):
    return FrameSource({"AAA": frame(closes, start="2021-01-04 00:00", freq="h", opens=opens,
                                     symbol="AAA")})


def test_daily_loss_latches_reducing_survives_restart_same_day_clears_next_day(tmp_path):
    # hours 0-4 warm up; buy at hour 5; a 10% drop at hour 7 -> 5% loss on the day
    closes = [100.0] * 7 + [90.0] * 30
    src = _hourly(closes)
    write_config(tmp_path / "config", risk={"max_position_pct": 1.0},
                 session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS},
                 signal={"target_weight": 0.5})
    kw = dict(symbols=["AAA"], source=src, start="2021-01-04 05:00",
              model="baseline:buy_and_hold", run_id="dl", interval="1h")
    first = make_session(tmp_path, max_steps=3, **kw).run()
    assert first.summary["state"] == "REDUCING"
    resumed = make_session(tmp_path, resume="dl", source=src).run()
    run = read_run(resumed.ledger_path)
    eq = run["equity"].set_index("step")
    assert eq.loc[2, "state"] == "REDUCING"
    assert (eq.loc[3:18, "state"] == "REDUCING").all()  # same day after the restart
    assert eq.loc[19, "day"] == "2021-01-05" and eq.loc[19, "state"] == "ACTIVE"
    buys = run["orders"][run["orders"]["side"] == "BUY"]
    assert list(buys["step"]) == [0, 19]  # no buy while REDUCING; topped up the next day
    clipped = run["risk_events"][run["risk_events"]["code"] == "REDUCING_ONLY_CLIPPED"]
    assert set(clipped["step"]) == set(range(2, 19))
    sc = run["state_changes"]
    assert sc[sc["to_state"] == "ACTIVE"]["reason"].iloc[0].startswith("NEW_SESSION_DAY")


def test_drawdown_halts_flattens_survives_restart_until_reset_halt(tmp_path, capsys):
    closes = [100.0] * 6 + [95.0, 90.0, 85.0, 79.0] + [80.0] * 10
    src = FrameSource({"AAA": frame(closes, symbol="AAA")})
    cfg = write_config(tmp_path / "config",
                       risk={"max_position_pct": 1.0, "cash_buffer_pct": 0.0,
                             "daily_loss_stop_pct": 0.5},
                       session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS},
                       signal={"target_weight": 1.0})
    kw = dict(symbols=["AAA"], source=src, start="2021-01-09", model="baseline:buy_and_hold",
              run_id="dd")
    # step 0 buys 1000 @100; closes 95, 90, 85, 79 -> 21% below the peak at step 4
    first = make_session(tmp_path, max_steps=6, **kw).run()
    assert first.summary["state"] == "HALTED"
    run = read_run(first.ledger_path)
    flat = run["orders"][run["orders"]["kind"] == "flatten"]
    assert list(flat["step"]) == [4] and list(flat["qty"]) == [-1000.0]
    assert run["positions"].set_index("step").loc[5, "qty"] == 0.0

    resumed = make_session(tmp_path, resume="dd", source=src, max_steps=3).run()
    assert resumed.summary["state"] == "HALTED"
    run = read_run(resumed.ledger_path)
    assert (run["orders"]["step"] <= 4).all()  # nothing new while halted
    assert set(run["decisions"][run["decisions"]["step"] > 5]["verdict"]) == {"HALTED"}

    assert main(["reset-halt", "dd", "--run-dir", str(tmp_path / "runs"),
                 "--reason", "reviewed in test"]) == 0
    assert "HALTED -> ACTIVE" in capsys.readouterr().out
    after = make_session(tmp_path, resume="dd", source=src, config_dir=cfg).run()
    assert after.summary["state"] == "ACTIVE"
    run = read_run(after.ledger_path)
    assert run["orders"]["step"].max() == 9  # buys again at the first step after the reset
    resets = run["state_changes"][run["state_changes"]["reason"].str.startswith("RESET_HALT")]
    assert len(resets) == 1 and resets["peak"].iloc[0] == pytest.approx(resets["equity"].iloc[0])


def test_reset_halt_on_an_active_run_changes_nothing(tmp_path, capsys):
    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     model="baseline:buy_and_hold", run_id="ok")
    s.run()
    before = deterministic_dump(s.ledger.path)
    assert main(["reset-halt", "ok", "--run-dir", str(tmp_path / "runs")]) == 0
    assert "nothing to reset" in capsys.readouterr().out
    assert deterministic_dump(s.ledger.path) == before


def test_stopping_and_resuming_gives_the_same_ledger_as_one_run(tmp_path):
    kw = dict(symbols=["SPY", "BTC-USD"], source="sample", start="2018-01-01", end="2018-12-31",
              run_id="same")
    one = make_session(tmp_path / "a", router=FakeRouter(), **kw)
    one.run()
    part = make_session(tmp_path / "b", router=FakeRouter(), max_steps=100, **kw).run()
    assert part.summary["steps"] == 100
    make_session(tmp_path / "b", router=FakeRouter(), max_steps=77, resume="same").run()
    rest = make_session(tmp_path / "b", router=FakeRouter(), resume="same").run()
    assert rest.summary["stopped"] == "end_of_data"
    a, b = deterministic_dump(one.ledger.path), deterministic_dump(rest.ledger_path)
    assert a["fills"] and a == b


def test_a_step_the_ledger_cannot_write_is_rolled_back_and_the_session_stops(tmp_path):
    box = {}

    def hook(call: int) -> None:
        if call == 5:  # during step 4: the disk "fills up" before its commit
            box["s"].ledger.conn.execute("PRAGMA query_only=1")

    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     router=ScriptedModel(["AAA"], hook=hook), run_id="full")
    box["s"] = s
    res = s.run()
    assert res.exit_code == 3 and res.summary["stopped"] == "ledger_error"
    assert "step 4 could not be committed" in res.summary["error"]
    with Ledger.open(res.ledger_path) as led:
        st = led.load_state()  # the previous state, intact and consistent
    assert st.last_step == 3


# ------------------------------------------------------------------ fail closed
def test_probability_none_means_no_trade_and_is_recorded(tmp_path):
    model = ScriptedModel(["AAA"], prob=lambda s, n, c: None)
    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       router=model).run()
    run = read_run(res.ledger_path)
    assert run["orders"].empty
    assert set(run["decisions"]["verdict"]) == {"NO_SIGNAL"}


def test_a_model_that_raises_fails_closed_and_the_session_goes_on(tmp_path):
    class Broken(ScriptedModel):
        def predict(self, symbols, X):
            raise RuntimeError("onnx exploded")

    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       router=Broken(["AAA"])).run()
    run = read_run(res.ledger_path)
    assert res.summary["stopped"] == "end_of_data" and run["orders"].empty
    assert run["decisions"]["reason"].str.startswith("MODEL_ERROR: RuntimeError").all()


def test_nan_probability_is_no_signal(tmp_path):
    model = ScriptedModel(["AAA"], prob=lambda s, n, c: float("nan"))
    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       router=model).run()
    assert res.summary["orders"] == 0


def test_price_outside_band_denies_the_order_and_halts_the_symbol_for_the_step(tmp_path):
    # a crypto symbol: +40% is inside its data-sanity jump threshold (60%), so the bar is
    # used and the risk band (25%) acts; for an equity the bar gate refuses it first
    # (tests/test_bad_data.py)
    closes = [100.0] * 8 + [140.0] + [141.0] * 3
    src = FrameSource({"BTC-USD": frame(closes, symbol="BTC-USD")})
    write_config(tmp_path / "config", session={"warmup_bars": 5})
    model = ScriptedModel(["BTC-USD"], prob=lambda s, n, c: 1.0 if c > 120 else 0.0)
    res = make_session(tmp_path, symbols=["BTC-USD"], source=src, start="2021-01-07",
                       router=model).run()
    run = read_run(res.ledger_path)
    d = run["decisions"].set_index("step")
    assert d.loc[5, "verdict"] == "DENIED"
    assert d.loc[5, "reason"].startswith("PRICE_BAND_BREACHED: band=0.25 move=0.4 price=140")
    assert d.loc[6, "verdict"] == "SUBMITTED"
    sc = run["state_changes"][run["state_changes"]["scope"] == "BTC-USD"]
    assert list(zip(sc["step"], sc["to_state"], strict=True)) == [(5, "HALTED"), (6, "ACTIVE")]


# ------------------------------------------------------------------------ sizing
@pytest.mark.parametrize("later, kind", [(1.0, "signal"), (0.5, "trim"), (None, "trim")],
                         ids=["signal_long", "signal_hold", "no_signal"])
def test_a_position_above_the_limit_is_trimmed_at_once_whatever_the_band_or_signal(
        tmp_path, later, kind):
    # buy 150 @100 (15%); at 112 it is 16.8k of 101.8k equity = 16.5%: within the old
    # 5% rebalance band above the limit, so it used to be held; now it is cut to 136 at once
    closes = [100.0] * 7 + [112.0] * 3
    src = FrameSource({"AAA": frame(closes, symbol="AAA")})
    write_config(tmp_path / "config", session={"warmup_bars": 5, **NO_COSTS})
    model = ScriptedModel(["AAA"], prob=lambda s, n, c: 1.0 if n < 8 else later)
    res = make_session(tmp_path, symbols=["AAA"], source=src, start="2021-01-09",
                       router=model).run()
    run = read_run(res.ledger_path)
    o = run["orders"].set_index("step")
    assert o.loc[2, "qty"] == -14.0 and o.loc[2, "kind"] == kind
    assert o.loc[2, "decision_price"] == 112.0
    eq = run["equity"].set_index("step")
    assert 136 * 112.0 / eq.loc[2, "equity"] <= 0.15 < 150 * 112.0 / eq.loc[2, "equity"]
    if kind == "trim":
        trims = run["risk_events"][run["risk_events"]["code"] == "POSITION_TRIMMED"]
        assert list(trims["step"]) == [2]
        assert trims["reason"].iloc[0] == "POSITION_TRIMMED: limit=0.15 weight=0.1650 symbol=AAA"


def test_a_position_above_the_limit_is_trimmed_while_its_market_is_closed(tmp_path):
    # AAA trades on weekdays (March 2021: no holiday), BTC every day; BTC falls 20% on
    # Saturday 2021-03-13, equity falls to 97k and AAA (150 @100) becomes 15.46%: the trim
    # is decided on Saturday at AAA's last close and fills at Monday's open
    aaa = frame([100.0] * 15, start="2021-03-01", freq="B", symbol="AAA")
    btc = frame([10.0] * 12 + [8.0] * 9, start="2021-03-01", symbol="BTC-USD")
    write_config(tmp_path / "config", risk={"daily_loss_stop_pct": 0.5},
                 session={"warmup_bars": 5, **NO_COSTS})
    res = make_session(tmp_path, symbols=["AAA", "BTC-USD"],
                       source=FrameSource({"AAA": aaa, "BTC-USD": btc}), start="2021-03-08",
                       model="baseline:buy_and_hold").run()
    run = read_run(res.ledger_path)
    sat = run["decisions"][run["decisions"]["ts"].dt.strftime("%Y-%m-%d") == "2021-03-13"]
    aaa_sat = sat.set_index("symbol").loc["AAA"]
    assert aaa_sat["verdict"] == "SUBMITTED" and pd.isna(aaa_sat["probability"])
    [trim] = run["orders"][run["orders"]["kind"] == "trim"].itertuples()
    assert (trim.symbol, trim.qty, trim.decision_price) == ("AAA", -5.0, 100.0)
    assert str(trim.ts.date()) == "2021-03-13" and str(trim.fill_ts.date()) == "2021-03-15"


def test_orders_are_sized_from_the_decision_close_and_fill_at_the_next_open(tmp_path):
    closes = [100.0] * 6 + [123.0] * 4
    opens = [100.0] * 6 + [123.0] + [135.0] * 3  # a gap up the order must not be sized on
    src = FrameSource({"AAA": frame(closes, opens=opens, symbol="AAA")})
    write_config(tmp_path / "config", session={"warmup_bars": 5, **NO_COSTS})
    res = make_session(tmp_path, symbols=["AAA"], source=src, start="2021-01-10",
                       model="baseline:buy_and_hold").run()
    o = read_run(res.ledger_path)["orders"].iloc[0]
    assert o["decision_price"] == 123.0
    assert o["qty"] == float(np.floor(0.15 * 100_000 / 123.0))
    assert o["fill_price"] == 135.0


def test_crypto_quantities_are_multiples_of_the_lot_and_equities_whole(tmp_path):
    src = FrameSource({"BTC-USD": frame([7777.77] * 8, symbol="BTC-USD"),
                       "AAA": frame([333.3] * 8, symbol="AAA")})
    write_config(tmp_path / "config", session={"warmup_bars": 5, **NO_COSTS})
    res = make_session(tmp_path, symbols=["BTC-USD", "AAA"], source=src, start="2021-01-08",
                       model="baseline:buy_and_hold").run()
    o = read_run(res.ledger_path)["orders"].set_index("symbol")["qty"]
    assert o["BTC-USD"] == pytest.approx(1.9285)  # floor(15000 / 7777.77 / 1e-4) * 1e-4
    assert o["AAA"] == 45.0


def test_mixed_clock_is_the_union_and_a_symbol_without_a_bar_is_not_decided(tmp_path):
    eq = frame([100.0] * 30, freq="B", symbol="AAA")  # weekdays
    cr = frame([10.0] * 42, symbol="BTC-USD")  # every day
    src = FrameSource({"AAA": eq, "BTC-USD": cr})
    write_config(tmp_path / "config", session={"warmup_bars": 5})
    res = make_session(tmp_path, symbols=["AAA", "BTC-USD"], source=src, start="2021-01-18",
                       end="2021-02-05", model="baseline:buy_and_hold").run()
    run = read_run(res.ledger_path)
    steps = run["steps"]
    assert len(steps) == 19  # every calendar day
    d = run["decisions"]
    weekend = pd.to_datetime(d["ts"]).dt.day_of_week >= 5
    assert set(d[weekend]["symbol"]) == {"BTC-USD"}
    assert d[~weekend].groupby("step").size().eq(2).all()


# ---------------------------------------------------------------------- live
def test_live_mode_decides_closed_bars_and_fills_at_the_next_bars_open(tmp_path):
    """Issue 13: a live step is a closed bar (the bar stamped at the first poll is still
    forming: the one before it is decided), and an order fills at the next bar's open, as
    in a replay (it filled at 'the next observed price', the newest close at a later poll,
    which made a live ledger differ from the same bars replayed)."""
    bars = frame(list(np.linspace(100, 130, 80)), start="2021-01-04 00:00", freq="h",
                 symbol="AAA-USD")  # 24/7: the hours are open
    t0 = bars.index[59].timestamp() + 60  # a minute into bar 59
    now = {"t": t0}

    class Growing(FrameSource):
        def fetch(self, symbol, start=None, end=None, interval="1d"):
            df = super().fetch(symbol, start=start, interval=interval)
            return df[df.index.map(lambda x: x.timestamp()) <= now["t"]]

    def sleep(dt):
        now["t"] += dt

    write_config(tmp_path / "config", session={"warmup_bars": 55, **NO_COSTS})
    res = make_session(tmp_path, symbols=["AAA-USD"], source=Growing({"AAA-USD": bars}),
                       mode="live", interval="1h", poll_seconds=3600, clock=lambda: now["t"],
                       sleep=sleep, max_steps=4, model="baseline:buy_and_hold").run()
    assert res.summary["mode"] == "live" and res.summary["steps"] == 4
    run = read_run(res.ledger_path)
    assert list(run["steps"]["ts"]) == list(bars.index[58:62])
    o = run["orders"].iloc[0]
    assert o["decision_price"] == bars["close"].iloc[58]
    assert o["fill_price"] == bars["open"].iloc[59]  # the next bar's open


def test_duration_caps_wall_time_and_stops_cleanly(tmp_path):
    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       model="baseline:buy_and_hold", duration=0).run()
    assert res.summary["stopped"] == "duration" and res.summary["steps"] == 0
    assert res.exit_code == 0


# ------------------------------------------------------------------------ misc
@pytest.mark.parametrize("text, seconds", [("5min", 300), ("60min", 3600), ("30s", 30),
                                           ("2h", 7200), ("1.5m", 90), (None, None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense():
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("five minutes")


def test_signal_to_target_thresholds():
    assert signal_target(0.53, 0.52, 0.48, 0.15, False) == 0.15
    assert signal_target(0.52, 0.52, 0.48, 0.15, False) is None  # at the threshold: hold
    assert signal_target(0.47, 0.52, 0.48, 0.15, False) == 0.0
    assert signal_target(0.47, 0.52, 0.48, 0.15, True) == -0.15


def test_cli_paper_prints_json_summary(tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    code = main(["paper", "--symbols", "SPY,QQQ", "--model", "baseline:sma_cross",
                 "--start", "2018-01-01", "--end", "2018-06-30", "--run-dir",
                 str(tmp_path / "runs"), "--config-dir", str(cfg), "--json", "--run-id", "cli"])
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    assert s["run_id"] == "cli" and s["stopped"] == "end_of_data"
    for key in ("ledger", "orders", "fills", "denials_by_reason", "final_equity", "return_pct",
                "max_drawdown_pct", "e2d_p50_ms", "e2d_p99_ms"):
        assert key in s
    assert (tmp_path / "runs" / "cli" / "events.jsonl").is_file()
    rec = [json.loads(x) for x in (tmp_path / "runs" / "cli" / "events.jsonl").open()]
    dec = [r for r in rec if r["event"] == "decision"]
    assert dec and {"run_id", "symbol", "asset_class", "model", "probability", "target",
                    "verdict", "order", "fill", "latency_ms"} <= set(dec[0])
    assert dec[0]["run_id"] == "cli"


def test_serving_path_imports_no_training_or_plotting_libraries():
    code = ("import sys, research_lib.session, research_lib.broker, research_lib.risk, "
            "research_lib.ledger, research_lib.baselines, research_lib.models.router; "
            "print(','.join(m for m in ('sklearn', 'skl2onnx', 'matplotlib', 'papermill') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_live_poll_when_second_interrupt_mid_fetch_then_stops_fetching_and_writes_nothing(
        tmp_path):
    """First Ctrl+C: the step in flight is finished and committed. A second one during a
    live poll (slow fetches, rate-limit back-off) ends sooner: the remaining symbols are not
    fetched, nothing of that poll is decided, so nothing is half-written; exit is clean."""
    # three series (one series under three names is refused since issue 10)
    bars = {s: frame(list(np.linspace(100 + k, 130 + k, 80)), start="2021-01-04 00:00",
                     freq="h", symbol=s) for k, s in enumerate(("AAA", "BBB", "CCC"))}
    now = {"t": bars["AAA"].index[59].timestamp()}
    ks = KillSwitch(kill_file=None)
    fetched: list[tuple[int, str]] = []
    polls = {"n": 0}

    class Growing(FrameSource):
        def fetch(self, symbol, start=None, end=None, interval="1d"):
            if symbol == "AAA":
                polls["n"] += 1
            fetched.append((polls["n"], symbol))
            if polls["n"] == 3 and symbol == "AAA":  # two Ctrl+C while the 3rd poll fetches
                ks.request_stop()
                ks.request_stop()
            df = super().fetch(symbol, start=start, interval=interval)
            return df[df.index.map(lambda x: x.timestamp()) <= now["t"]]

    def sleep(dt):
        now["t"] += dt

    write_config(tmp_path / "config", session={"warmup_bars": 55, **NO_COSTS})
    res = make_session(tmp_path, symbols=["AAA", "BBB", "CCC"], source=Growing(bars),
                       mode="live", interval="1h", poll_seconds=3600,
                       clock=lambda: now["t"], sleep=sleep, kill_switch=ks,
                       model="baseline:buy_and_hold").run()
    assert res.exit_code == 0 and res.summary["stopped"] == "signal"
    assert (3, "AAA") in fetched and (3, "BBB") not in fetched and (3, "CCC") not in fetched
    assert res.summary["steps"] == 2  # polls 1 and 2 committed; poll 3 left no trace
    run = read_run(res.ledger_path)
    assert len(run["steps"]) == len(run["equity"]) == 2
