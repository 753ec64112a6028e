"""A model per bar interval (config/assets.yaml) and the shipped 1m models, end to end: the
issue's live commands through the CLI (``research-lib paper ... --interval 1m --source
yfinance`` and ``... --source ccxt:binance``) decide with the router's 1m models, the
sources being yfinance's real code on frames in ``Ticker.history``'s shape and ccxt's
real binance class over HTTP to a fake exchange on 127.0.0.1 (no network); a fake clock
stands in for the wall clock. Bars: the shipped sample's real S&P 500 minutes for SPY;
SYNTHETIC random walks (labelled, never shipped) for QQQ, BTCUSDT and ETHUSDT."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from research_lib.cli import main
from research_lib.config import load_assets, parse_assets
from research_lib.data import load
from research_lib.errors import ConfigError, ModelError
from research_lib.models.card_interval import card_interval
from research_lib.models.registry import validate
from research_lib.models.router import NO_MODEL, Router
from tests.kit.fake_venues import fake_binance, point_binance_at, serve
from tests.kit.live import FakeClock, ScriptedSource
from tests.kit.paper import make_session, write_config

T = pd.Timestamp
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "assets.yaml"


def config_with_shipped_assets(tmp: Path) -> Path:
    cfg = write_config(tmp / "config", session={"warmup_bars": 60,
                                                "kill_file": str(tmp / "kill")})
    shutil.copy(SHIPPED, cfg / "assets.yaml")
    return cfg


def synthetic(index: pd.DatetimeIndex, price: float, seed: int) -> pd.DataFrame:
    """SYNTHETIC: a random walk on ``index`` (never shipped)."""
    rng = np.random.default_rng(seed)
    c = price * np.exp(np.cumsum(rng.normal(0, 0.0008, len(index))))
    o = np.concatenate([[price], c[:-1]])
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.0003,
                         "low": np.minimum(o, c) * 0.9997, "close": c,
                         "volume": np.full(len(index), 500.0)}, index=index)


def with_clock(monkeypatch, clock: FakeClock) -> None:
    """The CLI's session runs on ``clock`` (its --duration is wall-clock time)."""
    import research_lib.paper.session as session_mod

    real = session_mod.run_session
    monkeypatch.setattr(session_mod, "run_session",
                        lambda spec: real(replace(spec, clock=clock, sleep=clock.sleep)))


def decisions(ledger: str | Path) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT DISTINCT symbol, model FROM decisions WHERE probability "
                            "IS NOT NULL ORDER BY symbol").fetchall()


# ------------------------------------------------------------------ the config
def test_a_plain_model_name_means_1d_and_a_mapping_names_one_per_interval():
    a = load_assets(SHIPPED)
    assert a.universal_model == "universal_v1" and a.interval == "1d"
    m = a.for_interval("1m")
    assert m.universal_model == "universal_1m_v1"
    assert m.asset_class("equities").model == "equities_1m_v1"
    assert m.asset_class("crypto").model == "crypto_1m_v1"
    assert m.asset_class("options").model is None  # no 1m options model: universal serves
    assert a.for_interval("60m").universal_model is None  # 60m is 1h: none named
    assert a.for_interval("1min") == m and m.for_interval("1d") == a


@pytest.mark.parametrize(("model", "message"), [
    ({"2m": "universal_v1"}, "universal_model key '2m' is not a bar interval; use one of "
                             "1m, 5m, 15m, 1h, 1d"),
    ({"1d": "nope_v1"}, "universal_model.1d 'nope_v1' is not under models; known:"),
    ({"1h": "universal_v1", "60m": "universal_v1"}, "universal_model names interval 1h "
                                                    "twice ('1h' and '60m'); keep one"),
    ({}, "universal_model must name a model under models, or map bar intervals to models"),
    (["universal_v1"], "universal_model must name a model under models, or map bar"),
])
def test_a_bad_interval_map_is_refused_naming_the_field_the_value_and_the_fix(model, message):
    data = yaml.safe_load(SHIPPED.read_text())
    data["universal_model"] = model
    with pytest.raises(ConfigError, match=None) as exc:
        parse_assets(data, source="assets.yaml")
    assert message in str(exc.value)


def test_a_class_map_naming_an_unknown_model_is_refused():
    data = yaml.safe_load(SHIPPED.read_text())
    data["classes"]["crypto"]["model"] = {"1d": "crypto_v1", "1m": "crypto_1m_v9"}
    with pytest.raises(ConfigError, match=r"classes\.crypto\.model\.1m 'crypto_1m_v9' is not "
                                          r"under models"):
        parse_assets(data, source="assets.yaml")


def test_every_model_the_shipped_config_names_is_pinned_and_its_card_records_that_interval():
    a = load_assets(SHIPPED)
    assert all(st.ok for st in validate(a, ROOT / "models").values())
    slots = [("universal_model", a.universal_intervals)] + [
        (f"classes.{c.name}.model", c.intervals) for c in a.classes]
    named = 0
    for _slot, intervals in slots:
        for key, name in intervals:
            assert card_interval(ROOT / "models" / a.models[name].path) == key, (name, key)
            named += 1
    assert named >= 9
    for name in ("universal_1m_v1", "equities_1m_v1", "crypto_1m_v1"):
        card = json.loads((ROOT / "models" / f"{name}.json").read_text())
        assert card["data"]["interval"] == "1m" and card["data"]["source"] == "sample"
        assert card["data"]["size"].startswith("SMALL DATA: trained on ")
        assert card["verdict"].startswith("SMALL DATA")
        assert card["sha256"] == a.models[name].sha256
        assert "classification_baselines" in card["walk_forward"]
        assert "--interval 1m" in card["train_command"]


# ------------------------------------------------------------------ the router
@pytest.mark.parametrize(("flag", "want"), [
    ("0", {"SPY": "universal_1m_v1", "BTCUSDT": "universal_1m_v1"}),
    ("1", {"SPY": "equities_1m_v1", "BTCUSDT": "crypto_1m_v1"}),
])
def test_the_router_picks_the_models_named_for_the_sessions_interval(flag, want):
    r = Router(load_assets(SHIPPED), ROOT / "models", mode=flag, interval="1m")
    routes = {x.symbol: x for x in r.routes(["SPY", "BTCUSDT"])}
    assert {s: x.model for s, x in routes.items()} == want
    assert all(x.checksum_ok and x.fallback_reason is None for x in routes.values())
    daily = Router(load_assets(SHIPPED), ROOT / "models", mode=flag, interval="1d")
    assert {x.model for x in daily.routes(["SPY", "BTCUSDT"])} <= {
        "universal_v1", "equities_v1", "crypto_v1"}


def test_a_class_with_no_model_for_the_interval_falls_back_to_universal_and_says_why():
    r = Router(load_assets(SHIPPED), ROOT / "models", mode="1", interval="1m")
    (route,) = r.routes(["SPY251219C00600000"])
    assert route.model == "universal_1m_v1" and route.checksum_ok
    assert route.fallback_reason.startswith(
        "NO_MODEL_FOR_INTERVAL: config/assets.yaml classes.options.model names no model for "
        "1m bars (it names {1d: options_v1}); train one with `research-lib train "
        "--asset-class options --interval 1m")


def test_a_session_on_an_interval_with_no_model_does_not_start_and_names_it(tmp_path):
    """5m: no model is named for it; before interval maps the session fell back to the
    daily models and refused them one by one (INTERVAL_MISMATCH), never naming the fix."""
    eth = load(["ETH-BTC"], "sample", interval="5m")["ETH-BTC"]
    config_with_shipped_assets(tmp_path)
    with pytest.raises(ModelError) as exc:
        make_session(tmp_path, symbols=["ETH-BTC"], source="sample", interval="5m",
                     start=str(eth.index[200]), flag="1").run()
    text = str(exc.value)
    assert f"model {NO_MODEL}" in text
    assert ("NO_MODEL_FOR_INTERVAL: config/assets.yaml universal_model names no model for "
            "5m bars (it names {1m: universal_1m_v1, 1d: universal_v1}); train one with "
            "`research-lib train --asset-class universal --interval 5m") in text
    assert "name it in universal_model (5m: NAME)" in text


def test_replay_of_the_intraday_sample_decides_with_the_1m_model(tmp_path, capsys):
    cfg = config_with_shipped_assets(tmp_path)
    code = main(["paper", "--symbols", "^GSPC", "--interval", "1m", "--run-dir",
                 str(tmp_path / "runs"), "--config-dir", str(cfg), "--json"])
    s = json.loads(capsys.readouterr().out)
    assert code == 0 and s["steps"] == 1563
    assert decisions(s["ledger"]) == [("^GSPC", "universal_1m_v1")]
    with sqlite3.connect(s["ledger"]) as conn:
        orders = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert orders > 0  # the model's probabilities cross the thresholds: it trades


# ------------------------------------------------------------------ the live commands
def yfinance_frames(src: ScriptedSource):
    """A ``yfinance.Ticker`` whose ``history`` answers in Yahoo's 1m shape (New York
    stamps, capitalised columns) with what ``src`` serves at its clock."""

    class Ticker:
        def __init__(self, symbol: str) -> None:
            self.symbol = symbol

        def history(self, **kw):
            df = src.fetch(self.symbol, start=None, interval=kw.get("interval", "1m"))
            out = pd.DataFrame({"Open": df["open"], "High": df["high"], "Low": df["low"],
                                "Close": df["close"],
                                "Volume": df["volume"].fillna(0).astype("int64")})
            out.index = df.index.tz_convert("America/New_York").rename("Datetime")
            return out

    return Ticker


def test_cli_paper_spy_qqq_1m_on_yfinance_runs_five_minutes_with_the_1m_model(
        tmp_path, capsys, monkeypatch):
    """`research-lib paper --symbols SPY,QQQ --duration 5min --interval 1m --source yfinance`:
    before per-interval models it stopped at start (the router's daily models refused on
    1m bars)."""
    import yfinance

    spx = load(["^GSPC"], "sample", interval="1m")["^GSPC"]
    day = spx[spx.index.normalize() <= T("2019-11-06", tz="UTC")]
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    src = ScriptedSource({"SPY": day, "QQQ": synthetic(day.index, 190.0, 3)}, clock)
    monkeypatch.setattr(yfinance, "Ticker", yfinance_frames(src))
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    with_clock(monkeypatch, clock)
    cfg = config_with_shipped_assets(tmp_path)
    code = main(["paper", "--symbols", "SPY,QQQ", "--duration", "5min", "--interval", "1m",
                 "--source", "yfinance", "--run-dir", str(tmp_path / "runs"),
                 "--config-dir", str(cfg), "--json"])
    out = capsys.readouterr()
    s = json.loads(out.out)
    assert code == 0, out.err
    assert s["stopped"] == "duration" and 4 <= s["steps"] <= 6
    assert decisions(s["ledger"]) == [("QQQ", "universal_1m_v1"), ("SPY", "universal_1m_v1")]
    with sqlite3.connect(s["ledger"]) as conn:
        probs = conn.execute("SELECT COUNT(*) FROM decisions WHERE probability IS NOT NULL"
                             ).fetchone()[0]
    assert probs >= 2 * 4  # the model decided every closed bar (no warm-up gap: history)


def run_ccxt_cli(tmp_path, capsys, monkeypatch, *extra: str, alpaca=None):
    """`FLAG_ASSET_SPECIFIC_MODELS=1 research-lib paper --symbols BTCUSDT,ETHUSDT
    --duration 60min --source ccxt:binance --interval 1m` + ``extra``: ccxt's binance class
    over HTTP to a fake exchange serving SYNTHETIC bars up to the fake clock; ``alpaca``: a
    fake Alpaca (tests/kit/venue.py) the run's orders go to."""
    import ccxt

    from research_lib.data.ccxt_source import CcxtSource

    idx = pd.date_range("2024-05-01 09:00", periods=300, freq="min", tz="UTC")
    bars = {"BTCUSDT": synthetic(idx, 60000.0, 1), "ETHUSDT": synthetic(idx, 3000.0, 2)}
    clock = FakeClock(T("2024-05-01 12:00:10", tz="UTC").timestamp())
    with serve(fake_binance(bars, {"BTCUSDT": ("BTC", "USDT"),
                                   "ETHUSDT": ("ETH", "USDT")})) as srv:
        real_binance = ccxt.binance

        class Binance(real_binance):  # the fake exchange's address, no rate-limit sleeps
            def __init__(self, config=None):
                super().__init__({**(config or {}), "enableRateLimit": False})
                point_binance_at(self, srv.url)

        real_fetch = CcxtSource.fetch

        def upto_now(self, symbol, start=None, end=None, interval="1d"):
            # the fake exchange knows no clock: bars that have begun by the fake now
            return real_fetch(self, symbol, start=start,
                              end=T(clock(), unit="s", tz="UTC"), interval=interval)

        monkeypatch.setattr(ccxt, "binance", Binance)
        monkeypatch.setattr(CcxtSource, "fetch", upto_now)
        monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
        with_clock(monkeypatch, clock)
        cfg = config_with_shipped_assets(tmp_path)
        if alpaca is not None:
            from tests.kit.paper import edit_yaml

            edit_yaml(cfg / "session.yaml", "venue", broker="alpaca", alpaca_url=alpaca.url,
                      backoff_seconds=0.0, max_backoff_seconds=0.0, timeout_seconds=2.0)
            # the venue fills near the fake market's prices
            alpaca.prices.update({"BTCUSDT": 60000.0, "ETHUSDT": 3000.0})
        code = main(["paper", "--symbols", "BTCUSDT,ETHUSDT", "--duration", "60min",
                     "--source", "ccxt:binance", "--interval", "1m", *extra,
                     "--run-dir", str(tmp_path / "runs"), "--config-dir", str(cfg), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    s = json.loads(out.out)
    assert s["stopped"] == "duration" and 58 <= s["steps"] <= 61
    assert decisions(s["ledger"]) == [("BTCUSDT", "crypto_1m_v1"),
                                      ("ETHUSDT", "crypto_1m_v1")]
    return s


def test_cli_paper_btc_eth_usdt_on_ccxt_binance_dry_run_60min_with_the_crypto_1m_model(
        tmp_path, capsys, monkeypatch):
    s = run_ccxt_cli(tmp_path, capsys, monkeypatch, "--dry-run")
    with sqlite3.connect(s["ledger"]) as conn:
        fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        orders = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert fills == 0 and orders > 0  # --dry-run: decided and recorded, nothing filled


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_same_with_broker_alpaca_trades_crypto_at_the_venue_and_reconciles(
        tmp_path, capsys, monkeypatch, venue, dry_run):
    """... and ``--broker alpaca``: the orders the 1m model decides go to the fake Alpaca
    (real alpaca-py client, crypto fees taken as Alpaca takes them); every reconciliation
    agrees, nothing latches HALTED."""
    s = run_ccxt_cli(tmp_path, capsys, monkeypatch, "--broker", "alpaca",
                     *(["--dry-run"] if dry_run else []), alpaca=venue)
    assert s["state"] == "ACTIVE"
    with sqlite3.connect(s["ledger"]) as conn:
        diffs = conn.execute("SELECT reason FROM reconciliations WHERE verdict='DIFFERENCE'"
                             ).fetchall()
        fills = conn.execute("SELECT COUNT(*), SUM(commission) FROM fills").fetchone()
        sent = conn.execute("SELECT COUNT(*) FROM venue_events WHERE event='SUBMITTED'"
                            ).fetchone()[0]
    assert diffs == []
    if dry_run:
        assert fills[0] == 0 and sent == 0 and venue.count("POST", "/v2/orders") == 0
    else:
        assert fills[0] > 0 and fills[1] > 0 and sent == venue.count("POST", "/v2/orders") > 0
        assert set(venue.positions) <= {"BTCUSDT", "ETHUSDT"}


def test_a_training_span_of_days_is_called_small_data_and_years_are_not():
    from types import SimpleNamespace as NS

    from research_lib.models.card import small_data

    days = NS(symbols=[NS(first="2019-10-11", last="2019-10-13", bars=2469),
                       NS(first="2019-11-05", last="2019-11-08", bars=1563)])
    text = small_data(days, 2975, "1m")["size"]
    assert text.startswith("SMALL DATA: trained on 4,032 1m bars of 2 series spanning 7 "
                           "calendar days in all (2,975 labelled rows in the final fit)")
    years = NS(symbols=[NS(first="1999-01-04", last="2015-12-31", bars=4277)])
    assert small_data(years, 4000, "1d") == {}


def test_a_hot_reload_that_renames_the_1m_model_applies_on_1m_bars_and_the_resume_agrees(
        tmp_path):
    """assets.yaml edited mid-run (equities' 1m model -> universal_1m_v1): the next
    decisions use it, the recorded models are the 1m ones the run decides with (not the
    daily ones the plain view names), and a resume with that file continues."""
    import os
    import time

    cfg = config_with_shipped_assets(tmp_path)
    calls = {"n": 0}

    def clock() -> float:  # asked once per step by the bar gate: edit mid-run
        calls["n"] += 1
        if calls["n"] == 80:
            p = cfg / "assets.yaml"
            d = yaml.safe_load(p.read_text())
            d["classes"]["equities"]["model"] = {"1d": "equities_v1", "1m": "universal_1m_v1"}
            p.write_text(yaml.safe_dump(d))
            st = os.stat(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return time.time()

    first = make_session(tmp_path, symbols=["^GSPC"], source="sample", interval="1m",
                         run_id="r1", max_steps=120, clock=clock, flag="1").run()
    with sqlite3.connect(first.ledger_path) as c:
        assert c.execute("SELECT to_state FROM state_changes WHERE scope='config'"
                         ).fetchall() == [("RELOADED",)]
        inputs = [json.loads(r[0]) for r in c.execute("SELECT inputs FROM config_history")]
        used = c.execute("SELECT DISTINCT model FROM decisions WHERE probability IS NOT NULL "
                         "ORDER BY step").fetchall()
    assert [sorted(i["models"]) for i in inputs][-1] == ["universal_1m_v1"]
    assert [m for (m,) in used] == ["equities_1m_v1", "universal_1m_v1"]
    again = make_session(tmp_path, resume="r1", max_steps=3).run()
    assert again.exit_code == 0 and again.summary["steps"] == 123


def test_routing_cli_shows_the_routes_for_an_interval(capsys, monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    assert main(["routing", "--interval", "1m", "--symbols", "SPY,BTCUSDT"]) == 0
    out = capsys.readouterr().out
    assert "equities_1m_v1" in out and "crypto_1m_v1" in out
    assert "models: universal_1m_v1 ok, crypto_1m_v1 ok, equities_1m_v1 ok" in out
    assert main(["routing", "--interval", "5m", "--symbols", "SPY"]) == 1
    out = capsys.readouterr().out
    assert "(none)" in out and "no model" in out
    assert "NO_MODEL_FOR_INTERVAL: config/assets.yaml universal_model names no model for 5m" in out
