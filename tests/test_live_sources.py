"""The live-data sources over the wire: ccxt's real binance class and alpaca-py's real
clients talk HTTP to fake exchanges on 127.0.0.1 (tests/kit/fake_venues.py); yfinance's
intraday path runs on frames in its recorded shape. Bars served by the fakes are the
shipped intraday sample's real bars (ETH/BTC 5m from Binance, S&P 500 1m), or where a
market needs bars of its own, a synthetic series said so."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from research_lib.data import load
from research_lib.data.alpaca_source import AlpacaSource
from research_lib.data.ccxt_source import EXCHANGE_OPTIONS, CcxtSource
from research_lib.data.sources import get_source
from research_lib.data.yfinance_source import RetryPolicy, YFinanceSource, intraday_start
from research_lib.errors import (
    ConfigError,
    DataError,
    EmptyDataError,
    RateLimitError,
    UnknownSymbolError,
)
from tests.kit.fake_venues import Fault, fake_alpaca, fake_binance, point_binance_at, serve

T = pd.Timestamp
PAIRS = {"ETHBTC": ("ETH", "BTC"), "BTCUSDT": ("BTC", "USDT")}


@pytest.fixture(scope="module")
def eth_btc() -> pd.DataFrame:
    return load(["ETH-BTC"], "sample", interval="5m")["ETH-BTC"]


def synthetic_btc(index: pd.DatetimeIndex) -> pd.DataFrame:
    """SYNTHETIC bars for the fake BTCUSDT market (never shipped)."""
    rng = np.random.default_rng(1)
    c = 11000 * np.exp(np.cumsum(rng.normal(0, 0.001, len(index))))
    o = np.concatenate([[11000.0], c[:-1]])
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.001,
                         "low": np.minimum(o, c) * 0.999, "close": c,
                         "volume": np.full(len(index), 3.0)}, index=index)


def binance(url: str, timeout_ms: int = 2000):
    ex = ccxt.binance({"enableRateLimit": False, "timeout": timeout_ms,
                       "options": dict(EXCHANGE_OPTIONS["binance"])})
    return point_binance_at(ex, url)


def no_sleep(_: float) -> None:
    pass


# ------------------------------------------------------------------------ ccxt
def test_ccxt_binance_pages_real_bars_over_http_and_maps_the_native_symbol(eth_btc):
    with serve(fake_binance({"ETHBTC": eth_btc}, PAIRS)) as srv:
        src = CcxtSource("binance", exchange=binance(srv.url), sleep=no_sleep)
        df = src.fetch("ETHBTC", start="2018-01-10", interval="5m")
    assert len(df) == len(eth_btc) == 5760
    assert np.allclose(df["close"].to_numpy(), eth_btc["close"].to_numpy(), rtol=0, atol=5e-9)
    assert df.index.equals(eth_btc.index) and str(df.index.tz) == "UTC"
    assert df.attrs["served_as"] == "ETH/BTC" and df.attrs["calendar"] == "24/7"
    assert df.attrs["label"] == "ETHBTC (alias: ETH/BTC on binance (its market id ETHBTC))"
    # one exchangeInfo, then 1,000-bar pages forward from startTime, ended by an empty one
    paths = srv.paths()
    assert paths[0] == "/api/v3/exchangeInfo" and paths.count("/api/v3/exchangeInfo") == 1
    kl = [q for p, q, _ in srv.requests if p == "/api/v3/klines"]
    assert len(kl) == 7 and all(q["limit"] == ["1000"] and q["interval"] == ["5m"] for q in kl)
    starts = [int(q["startTime"][0]) for q in kl]
    assert starts == sorted(starts) and len(set(starts)) == 7


def test_ccxt_yahoo_style_dollar_pair_is_served_by_the_usdt_market_and_labelled(eth_btc):
    idx = pd.date_range("2024-05-01", periods=300, freq="min", tz="UTC")
    with serve(fake_binance({"BTCUSDT": synthetic_btc(idx)}, PAIRS)) as srv:
        src = CcxtSource("binance", exchange=binance(srv.url), sleep=no_sleep)
        df = src.fetch("BTC-USD", start=idx[0], interval="1m")
        native = src.fetch("BTCUSDT", start=idx[0], interval="1m")
    assert df.attrs["served_as"] == native.attrs["served_as"] == "BTC/USDT"
    assert "priced in USDT, not USD" in df.attrs["label"]
    assert len(df) == 300 and (df["close"].to_numpy() == native["close"].to_numpy()).all()


def test_ccxt_rate_limit_429_is_retried_with_backoff_then_given_up_with_a_clear_error(eth_btc):
    slept: list[float] = []
    with serve(fake_binance({"ETHBTC": eth_btc}, PAIRS)) as srv:
        srv.fault("/api/v3/klines", Fault(status=429), Fault(status=429))
        src = CcxtSource("binance", exchange=binance(srv.url), sleep=slept.append,
                         retry=RetryPolicy(attempts=4, base_delay=0.5))
        df = src.fetch("ETHBTC", start=T("2018-01-29", tz="UTC"), interval="5m")
        assert len(df) > 200 and slept == [0.5, 1.0]
        srv.fault("/api/v3/klines", *[Fault(status=429)] * 4)
        with pytest.raises(RateLimitError, match="still rate-limited.*after 4 attempts"):
            src.fetch("ETHBTC", start=T("2018-01-29", tz="UTC"), interval="5m")


@pytest.mark.parametrize("fault,match", [
    (Fault(status=503, body="Service Unavailable"),
     r"ccxt:binance: fetch_ohlcv ETH/BTC 5m failed: ExchangeNotAvailable"),
    (Fault(status=503), r"failed: ExchangeError: binance .*fake 503"),
    (Fault(delay=1.5), r"failed: RequestTimeout.*no network, or the exchange is down"),
    (Fault(status=200, body="<html>maintenance</html>"), r"returned no 5m bars"),
])
def test_ccxt_exchange_down_timeout_or_garbage_is_a_data_error_never_an_empty_frame(
        eth_btc, fault, match):
    with serve(fake_binance({"ETHBTC": eth_btc}, PAIRS)) as srv:
        src = CcxtSource("binance", exchange=binance(srv.url, timeout_ms=500), sleep=no_sleep)
        src.resolve("ETHBTC")  # markets loaded
        srv.fault("/api/v3/klines", fault)
        with pytest.raises(DataError, match=match):
            src.fetch("ETHBTC", start=T("2018-01-29", tz="UTC"), interval="5m")


def test_ccxt_unknown_market_lists_what_the_exchange_has_and_empty_is_said(eth_btc):
    with serve(fake_binance({"ETHBTC": eth_btc}, PAIRS)) as srv:
        src = CcxtSource("binance", exchange=binance(srv.url), sleep=no_sleep)
        with pytest.raises(UnknownSymbolError, match="DOGEUSDT") as info:
            src.fetch("DOGEUSDT", interval="5m")
        assert "BTC/USDT" in str(info.value) or "ETH/BTC" in str(info.value)
        with pytest.raises(EmptyDataError, match="returned no 5m bars"):
            src.fetch("ETHBTC", start="2030-01-01", interval="5m")
        with pytest.raises(DataError, match="no '7m' bars"):
            src.fetch("ETHBTC", interval="7m")


def test_ccxt_source_by_name_and_an_unknown_exchange():
    assert get_source("ccxt:binance").name == "ccxt:binance"
    with pytest.raises(DataError, match="ccxt has no exchange 'nosuchexchange'"):
        get_source("ccxt:nosuchexchange").fetch("BTCUSDT", interval="1m")
    with pytest.raises(DataError, match="needs an exchange"):
        get_source("ccxt:")


# ------------------------------------------------------------------------ alpaca
KEY, SECRET = "PKTEST-KEY-ID-1234", "secret-value-never-shown-5678"
ENV = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}


@pytest.fixture(scope="module")
def spy_1m() -> pd.DataFrame:
    return load(["^GSPC"], "sample", interval="1m")["^GSPC"]


def test_alpaca_stock_bars_page_over_http_with_the_keys_in_headers_only(spy_1m):
    with serve(fake_alpaca({"SPY": spy_1m}, {}, KEY, SECRET, page=500)) as srv:
        src = AlpacaSource(env=ENV, url_override=srv.url, is_crypto=lambda s: False)
        df = src.fetch("SPY", start="2019-11-05", end="2019-11-08T23:59:00Z", interval="1m")
    assert len(df) == len(spy_1m) and (df["close"].to_numpy() == spy_1m["close"]).all()
    assert df.attrs["source"] == "alpaca" and df.attrs["feed"] == "iex"
    reqs = [q for p, q, _ in srv.requests if p == "/v2/stocks/bars"]
    assert len(reqs) == 4 and reqs[0]["timeframe"] == ["1Min"] and reqs[0]["feed"] == ["iex"]
    assert [q.get("page_token", [None])[0] for q in reqs[1:]] == ["500", "1000", "1500"]
    heads = [h for p, _, h in srv.requests]
    assert all(h["APCA-API-KEY-ID"] == KEY and h["APCA-API-SECRET-KEY"] == SECRET
               for h in heads)
    assert all(KEY not in p + json.dumps(q) for p, q, _ in srv.requests)  # never in a URL
    assert KEY not in repr(src) and SECRET not in repr(src)
    assert KEY not in json.dumps(df.attrs) and SECRET not in json.dumps(df.attrs)


def test_alpaca_daily_bars_land_on_the_new_york_session_date(spy_1m):
    daily = spy_1m.resample("1D").agg({"open": "first", "high": "max", "low": "min",
                                       "close": "last", "volume": "sum"}).dropna()
    daily.index = daily.index + pd.Timedelta(hours=5)  # Alpaca stamps midnight New York
    with serve(fake_alpaca({"SPY": daily}, {}, KEY, SECRET)) as srv:
        src = AlpacaSource(env=ENV, url_override=srv.url, is_crypto=lambda s: False)
        df = src.fetch("SPY", start="2019-11-01", interval="1d")
    assert list(df.index) == list(pd.date_range("2019-11-05", "2019-11-08", tz="UTC"))


def test_alpaca_crypto_pair_is_mapped_labelled_and_needs_no_keys(eth_btc):
    with serve(fake_alpaca({}, {"BTC/USD": synthetic_btc(eth_btc.index[:50])}, KEY,
                           SECRET)) as srv:
        src = AlpacaSource(env={}, url_override=srv.url, is_crypto=lambda s: True)
        df = src.fetch("BTC-USD", start="2018-01-10", interval="5m")
    assert df.attrs["served_as"] == "BTC/USD" and "alias: BTC/USD on Alpaca" in df.attrs["label"]
    assert srv.requests[0][0] == "/v1beta3/crypto/us/bars" and len(df) == 50


def test_alpaca_without_keys_names_the_variables_never_a_value(spy_1m):
    src = AlpacaSource(env={"APCA_API_KEY_ID": KEY}, is_crypto=lambda s: False)
    with pytest.raises(ConfigError, match="APCA_API_SECRET_KEY not set") as info:
        src.fetch("SPY", interval="1m")
    assert KEY not in str(info.value)


@pytest.mark.parametrize("status,match", [(403, r"refused \(HTTP 403\): fake 403"),
                                          (500, r"refused \(HTTP 500\)")])
def test_alpaca_refusals_are_data_errors_with_the_reason_and_no_key(spy_1m, status, match,
                                                                   caplog):
    with serve(fake_alpaca({"SPY": spy_1m}, {}, KEY, SECRET)) as srv:
        srv.fault("/v2/stocks/bars", Fault(status=status))
        src = AlpacaSource(env=ENV, url_override=srv.url, is_crypto=lambda s: False)
        with caplog.at_level(logging.DEBUG), pytest.raises(DataError, match=match) as info:
            src.fetch("SPY", start="2019-11-05", interval="1m")
    text = str(info.value) + caplog.text
    assert KEY not in text and SECRET not in text


def test_alpaca_rate_limit_is_retried_by_alpaca_py_itself(spy_1m, monkeypatch):
    import alpaca.common.rest as rest

    waits: list[float] = []
    monkeypatch.setattr(rest.time, "sleep", waits.append)
    with serve(fake_alpaca({"SPY": spy_1m}, {}, KEY, SECRET)) as srv:
        srv.fault("/v2/stocks/bars", Fault(status=429))
        src = AlpacaSource(env=ENV, url_override=srv.url, is_crypto=lambda s: False)
        df = src.fetch("SPY", start="2019-11-05", end="2019-11-05T23:00:00Z", interval="1m")
    assert len(df) == 391 and waits == [3]


def test_alpaca_live_session_keys_never_reach_the_ledger_events_or_logs(
        tmp_path, spy_1m, monkeypatch, caplog):
    from tests.kit.live import FakeClock
    from tests.kit.paper import make_session, write_config

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    clock = FakeClock(T("2019-11-06 16:00:30", tz="UTC").timestamp())
    with serve(fake_alpaca({"SPY": spy_1m[spy_1m.index < T("2019-11-06 16:00", tz="UTC")]},
                           {}, KEY, SECRET)) as srv:
        monkeypatch.setenv("APCA_API_DATA_URL", srv.url)
        write_config(tmp_path / "config", session={"warmup_bars": 30})
        with caplog.at_level(logging.DEBUG):
            res = make_session(tmp_path, symbols=["SPY"], source="alpaca", mode="live",
                               interval="1m", clock=clock, sleep=clock.sleep, duration="3min",
                               model="baseline:sma_cross", log_file=True).run()
    run_dir = Path(res.ledger_path).parent
    blobs = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    assert res.summary["steps"] >= 1
    for secret in (KEY, SECRET):
        assert secret.encode() not in blobs and secret not in caplog.text


# ------------------------------------------------------------------------ yfinance
def test_yfinance_intraday_start_is_moved_into_yahoos_window_and_said():
    now = T("2024-06-10 15:00", tz="UTC")
    start, note = intraday_start("1m", T("2024-05-01", tz="UTC"), now)
    assert start == T("2024-06-04 15:00", tz="UTC") and "last 6 days only" in note
    assert intraday_start("1h", T("2024-05-01", tz="UTC"), now) == (T("2024-05-01", tz="UTC"),
                                                                  None)
    assert intraday_start("1d", T("1990-01-01", tz="UTC"), now)[1] is None


def test_yfinance_one_minute_bars_in_new_york_time_come_back_utc_with_a_forming_bar(
        monkeypatch):
    """A frame in the shape Ticker.history(interval="1m") returns (Datetime index in the
    exchange's time zone, Volume int64; built from the sample's real S&P 500 minutes, not
    recorded from Yahoo), with its last bar still forming: the source returns it as is
    (the live feed decides closed bars only)."""
    import yfinance

    spx = load(["^GSPC"], "sample", interval="1m")["^GSPC"].iloc[:30]
    weeks = -((spx.index[0] - T.now(tz="UTC")) // pd.Timedelta(days=7))  # rounded up
    stamps = spx.index + pd.Timedelta(days=7 * weeks)  # real minutes, moved to the coming week
    frame = pd.DataFrame({"Open": spx["open"].to_numpy(), "High": spx["high"].to_numpy(),
                          "Low": spx["low"].to_numpy(), "Close": spx["close"].to_numpy(),
                          "Volume": spx["volume"].astype("int64").to_numpy()},
                         index=stamps.tz_convert("America/New_York").rename("Datetime"))
    calls = []

    class Ticker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, **kw):
            calls.append(kw)
            return frame.copy()

    monkeypatch.setattr(yfinance, "Ticker", Ticker)
    src = YFinanceSource(cache=None)
    df = src.fetch("SPY", start=T.now(tz="UTC") - pd.Timedelta(days=20), interval="1m")
    assert str(df.index.tz) == "UTC" and df.index[0] == stamps[0] and len(df) == 30
    assert df.index[0].hour == 14 and df.index[0].minute == 30  # 09:30 New York, in UTC
    assert calls[0]["interval"] == "1m" and calls[0]["prepost"] is False
    asked = T(calls[0]["start"], tz="UTC")
    assert T.now(tz="UTC") - asked <= pd.Timedelta(days=8)  # Yahoo's 1m window
    assert "last 6 days only" in df.attrs["window_note"]


def test_live_session_on_ccxt_shows_the_alias_it_trades_in_the_summary_and_the_ledger(
        tmp_path):
    """``BTC-USD`` on ccxt:binance is the BTC/USDT market (synthetic bars on the fake
    exchange): the session says so on stderr, in its summary and as SYMBOL_ALIAS."""
    import shutil
    import sqlite3

    from tests.kit.live import FakeClock
    from tests.kit.paper import make_session, write_config

    idx = pd.date_range("2024-05-01 10:00", periods=240, freq="min", tz="UTC")
    clock = FakeClock(T("2024-05-01 12:00:10", tz="UTC").timestamp())
    bars = synthetic_btc(idx)
    with serve(fake_binance({"BTCUSDT": bars}, PAIRS)) as srv:
        class Upto(CcxtSource):  # the fake exchange knows no clock: bars up to now
            def fetch(self, symbol, start=None, end=None, interval="1d"):
                return super().fetch(symbol, start=start,
                                     end=T(clock(), unit="s", tz="UTC"), interval=interval)

        src = Upto("binance", exchange=binance(srv.url), sleep=no_sleep)
        cfg = write_config(tmp_path / "config", session={"warmup_bars": 30})
        shutil.copy(Path(__file__).resolve().parents[1] / "config" / "assets.yaml",
                    cfg / "assets.yaml")
        res = make_session(tmp_path, symbols=["BTC-USD"], source=src, mode="live",
                           interval="1m", clock=clock, sleep=clock.sleep, duration="5min",
                           model="baseline:sma_cross").run()
    assert res.summary["steps"] >= 4
    assert "BTC/USDT" in res.summary["proxies"]["BTC-USD"]
    with sqlite3.connect(res.ledger_path) as conn:
        alias = conn.execute("SELECT reason FROM risk_events WHERE code='SYMBOL_ALIAS'"
                             ).fetchall()
    assert len(alias) == 1 and "BTC-USD is served as BTC/USDT by ccxt:binance" in alias[0][0]
