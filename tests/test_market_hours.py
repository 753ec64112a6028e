"""Market hours (research_lib.data.market_hours): the FX calendar on its own hours, bar
close times, trading time between bars, intraday sanity against the calendar, and
annualisation by interval and calendar."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from research_lib.asset_classes import explain
from research_lib.config import load_assets
from research_lib.data import load
from research_lib.data.calendars import is_open, is_session, sessions
from research_lib.data.market_hours import (
    bar_close_ns,
    bars_per_year,
    is_open_ns,
    next_open,
    open_seconds,
)
from research_lib.data.sanity import SanityConfig, check_frame
from research_lib.metrics import infer_periods_per_year
from research_lib.models.dataset import periods_per_year


def T(text: str) -> int:
    return pd.Timestamp(text).value


@pytest.mark.parametrize("when,open_", [
    ("2017-04-21 20:59Z", True),    # Friday 16:59 New York
    ("2017-04-21 21:00Z", False),   # Friday 17:00 New York: the FX week closes
    ("2017-04-23 20:59Z", False),   # Sunday 16:59 New York
    ("2017-04-23 21:00Z", True),    # Sunday 17:00 New York: the week opens
    ("2017-07-04 15:00Z", True),    # a US holiday: FX trades
    ("2017-12-25 15:00Z", False),   # 25 December: no FX day
    ("2017-12-25 22:00Z", True),    # 17:00 New York on the 25th: the 26th's day begins
    ("2018-01-05 21:59Z", True),    # winter: the week closes at 22:00 UTC
    ("2018-01-05 22:00Z", False),
])
def test_fx_calendar_when_sunday_evening_or_us_holiday_then_its_own_hours_not_the_nyse(
        when, open_):
    assert is_open("FX", when) is open_
    assert bool(is_open_ns("FX", [T(when)])[0]) is open_
    assert is_open("XNYS", "2017-07-04 15:00Z") is False  # the NYSE's holiday is not FX's


def test_fx_sessions_are_weekdays_but_new_year_and_christmas():
    days = sessions("FX", "2017-12-20", "2018-01-03")
    assert [d.strftime("%m-%d") for d in days] == [
        "12-20", "12-21", "12-22", "12-26", "12-27", "12-28", "12-29", "01-02", "01-03"]
    assert is_session("FX", "2017-11-23")  # Thanksgiving: an FX day, not an NYSE one
    assert not is_session("XNYS", "2017-11-23")


def test_real_hourly_eurusd_matches_the_fx_calendar_every_week():
    """The shipped EUR/USD bars open each week at 17:00 New York on Sunday, skip 25 Dec and
    1 Jan, and (but for two Fridays the source stamps at 17:00) lie inside FX hours."""
    df = load(["EURUSD=X"], "sample", interval="1h")["EURUSD=X"]
    inside = is_open_ns("FX", df.index.as_unit("ns").asi8)
    assert (~inside).sum() == 2
    assert all(t.day_name() == "Friday" and t.hour == 21 for t in df.index[~inside])
    gaps = df.index.to_series().diff() > pd.Timedelta(hours=2)
    reopen = df.index[gaps.to_numpy()]
    ny = reopen.tz_convert("America/New_York")
    assert (ny.hour == 17).all() and set(ny.day_name()) == {"Sunday", "Monday"}
    assert {t.strftime("%m-%d") for t in ny if t.day_name() == "Monday"} == {"12-25", "01-01"}


def test_bar_close_times_cut_at_the_session_close_and_daily_bars_close_with_their_session():
    hourly = bar_close_ns("XNYS", [T("2019-11-05 20:30Z"), T("2019-11-05 14:30Z")], 3600)
    assert list(pd.to_datetime(hourly, utc=True)) == [
        pd.Timestamp("2019-11-05 21:00Z"), pd.Timestamp("2019-11-05 15:30Z")]
    daily = bar_close_ns("XNYS", [T("2019-11-05")], 86400)
    assert pd.Timestamp(int(daily[0]), tz="UTC") == pd.Timestamp("2019-11-05 21:00Z")
    fx = bar_close_ns("FX", [T("2017-04-21")], 86400)
    assert pd.Timestamp(int(fx[0]), tz="UTC") == pd.Timestamp("2017-04-21 21:00Z")
    assert bar_close_ns("24/7", [T("2019-11-09 23:59Z")], 60)[0] == T("2019-11-10 00:00Z")


def test_open_seconds_and_next_open_follow_each_calendar():
    assert open_seconds("XNYS", [T("2019-11-05 20:59Z")], [T("2019-11-06 14:31Z")])[0] == 120
    assert open_seconds("FX", [T("2017-04-21 20:00Z")], [T("2017-04-23 22:00Z")])[0] == 7200
    assert open_seconds("24/7", [T("2019-11-09")], [T("2019-11-10")])[0] == 86400
    assert next_open("XNYS", "2019-11-09 12:00Z") == pd.Timestamp("2019-11-11 14:30Z")
    assert next_open("FX", "2017-04-22 12:00Z") == pd.Timestamp("2017-04-23 21:00Z")
    assert next_open("24/7", "2019-11-09 12:00Z") == pd.Timestamp("2019-11-09 12:00Z")


def test_intraday_sanity_on_real_bars_flags_closing_prints_and_gaps_never_fills():
    spx = load(["^GSPC"], "sample", interval="1m")["^GSPC"]
    found = check_frame(spx, "^GSPC", SanityConfig(calendar="XNYS", interval="1m"))
    codes = Counter(f.code for f in found)
    assert codes["NON_SESSION_BAR"] == 3  # the 16:00 closing prints of 5, 6 and 7 Nov
    assert codes["MISSING_BARS"] == 0 and codes["BAR_SPACING"] == 0
    holed = spx.drop(spx.index[100:103])  # three minutes taken out mid-session
    found = check_frame(holed, "^GSPC", SanityConfig(calendar="XNYS", interval="1m"))
    gaps = [f for f in found if f.code == "MISSING_BARS"]
    assert len(gaps) == 1 and gaps[0].message.startswith("3 1m bar(s) missing")
    assert len(holed) == len(spx) - 3  # flagged, not filled
    # overnight and weekend gaps are closed market, not missing bars
    daily_gap = spx.index.normalize().unique()
    assert len(daily_gap) == 4


def test_hourly_bars_of_an_exchange_checked_as_one_minute_are_a_bar_spacing_error():
    hourly = load(["^GSPC"], "sample", interval="1h")["^GSPC"]
    found = check_frame(hourly, "^GSPC", SanityConfig(calendar="XNYS", interval="1m"))
    assert "BAR_SPACING" in {f.code for f in found}


@pytest.mark.parametrize("calendar,interval_s,want", [
    ("XNYS", 86400, 252), ("24/7", 86400, 365), ("FX", 86400, 260),
    ("XNYS", 3600, 252 * 7), ("24/7", 3600, 365 * 24), ("FX", 3600, 260 * 24),
    ("XNYS", 60, 252 * 390), ("XNYS", 300, 252 * 78), ("XNYS", 900, 252 * 26),
])
def test_bars_per_year_follow_the_interval_and_the_calendar(calendar, interval_s, want):
    assert bars_per_year(calendar, interval_s) == want


def test_an_hourly_card_never_assumes_365_periods_a_year():
    for sym, interval, want in [("^GSPC", "1h", 1764), ("EURUSD=X", "1h", 6240),
                                ("ETH-BTC", "5m", 105120)]:
        df = load([sym], "sample", interval=interval)[sym]
        assert periods_per_year(df.index, interval, sym, df.attrs["calendar"]) == want
    # a CSV without a declared calendar: FX by the symbol's class, crypto by weekend bars
    fx = load(["EURUSD=X"], "sample", interval="1h")["EURUSD=X"]
    assert periods_per_year(fx.index, "1h", "EURUSD") == 6240
    # daily stays what the committed cards say
    daily = load(["SPY", "BTC-USD"], "sample")
    assert periods_per_year(daily["SPY"].index) == 252
    assert periods_per_year(daily["BTC-USD"].index) == 365


def test_paper_report_annualises_an_intraday_curve_by_its_bars_not_by_365():
    idx = pd.date_range("2019-11-04 14:30", periods=7 * 20, freq="h", tz="UTC")
    idx = idx[(idx.hour >= 14) & (idx.hour < 21) & (idx.day_of_week < 5)]
    assert 1500 < infer_periods_per_year(idx) < 2000  # 7 bars a session x 252


def test_symbols_get_the_class_their_market_trades_as_and_the_reason():
    assets = load_assets()
    want = {"EURUSD=X": ("fx", "FX"), "EURUSD": ("fx", "FX"), "EUR/USD": ("fx", "FX"),
            "BTCUSD": ("crypto", "24/7"), "BTCUSDT": ("crypto", "24/7"),
            "ETHBTC": ("crypto", "24/7"), "BTC/USDT": ("crypto", "24/7"),
            "SPY": ("equities", "XNYS"), "BRK.B": ("equities", "XNYS")}
    for sym, (cls, cal) in want.items():
        got = explain(assets, sym)
        assert (got.asset_class, got.calendar, got.assumed) == (cls, cal, False), sym
    assert explain(assets, "BTCUSD").lots and not explain(assets, "EURUSD").lots
    odd = explain(assets, "GSPC_003")
    assert odd.assumed and "catch-all '*'" in odd.reason and "overrides" in odd.reason
    assert np.isfinite(bars_per_year(odd.calendar, 3600))


def test_fx_replay_trades_on_the_fx_calendar_and_annualises_hourly_fx(tmp_path):
    """Hourly EUR/USD (real, the shipped sample) replayed with the shipped assets.yaml: the
    symbol is fx on the FX calendar, not an NYSE equity, so its Sunday-evening and US
    holiday bars are trading hours; every fill lies inside FX hours; the report annualises
    by 6,240 hourly bars a year, not 365 or 252."""
    import shutil
    from pathlib import Path

    from research_lib.ledger_read import read_run
    from research_lib.report import paper_session_report
    from tests.kit.paper import make_session, write_config

    root = Path(__file__).resolve().parents[1]
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 30})
    shutil.copy(root / "config" / "assets.yaml", cfg / "assets.yaml")
    res = make_session(tmp_path, symbols=["EURUSD"], source="sample", interval="1h",
                       start="2017-11-01", end="2018-01-15", config_dir=cfg,
                       model="baseline:sma_cross").run()
    run = read_run(res.ledger_path)
    assert run["meta"]["asset_classes"] == {"EURUSD": "fx"}
    fills = run["fills"]
    assert len(fills) > 20
    ns = pd.DatetimeIndex(fills["ts"]).as_unit("ns").asi8
    assert is_open_ns("FX", ns).all()
    local = pd.DatetimeIndex(fills["ts"]).tz_convert("America/New_York")
    sunday = (local.day_name() == "Sunday")
    thanksgiving = pd.DatetimeIndex(run["steps"]["ts"]).normalize() == pd.Timestamp("2017-11-23", tz="UTC")
    assert sunday.any() and thanksgiving.any()  # FX hours the NYSE calendar would deny
    report = paper_session_report(res.ledger_path)
    assert report.data.periods == 260 * 24
    assert np.isfinite(report.metrics().loc["Sharpe ratio (annualised, risk-free 0)", "Strategy"])
