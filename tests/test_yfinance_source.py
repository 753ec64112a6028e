"""YFinanceSource and CacheSource against recorded yfinance frames, yfinance patched.

The frames in ``tests/fixtures/yfinance/`` (see its README) have the layout yfinance 1.x
returns and real prices. ``yfinance.Ticker`` is replaced by a fake whose ``history``
returns them or raises; ``yfinance.download`` is replaced by a function that fails, since
the source must not use it. No test reaches the network (``tests/_no_network.py``).
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yfinance
from yfinance.exceptions import YFRateLimitError

from research_lib.data import load
from research_lib.data.cache import CacheSource
from research_lib.data.source_base import COLUMNS
from research_lib.data.yfinance_source import (
    RetryPolicy,
    YFinanceSource,
    flatten_yf_columns,
)
from research_lib.errors import DataError, EmptyDataError, RateLimitError, UnknownSymbolError
from tests import _no_network

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "yfinance"
OHLC = ["Open", "High", "Low", "Close"]


def recorded(name: str) -> pd.DataFrame:
    return pd.read_parquet(FIX / f"{name}.parquet")


class FakeYahoo:
    """Stands in for the yfinance module's ``Ticker``; replays ``results`` in order (the
    last one repeats) and records every ``history`` call."""

    def __init__(self, results: list[Any], last_error: str | None = None) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.last_error = last_error

    def ticker(self, symbol: str) -> Any:
        fake = self

        class _Ticker:
            _price_history = SimpleNamespace(_last_error=fake.last_error)

            def history(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
                assert not args, "history() must get keyword arguments only"
                fake.calls.append((symbol, kwargs))
                r = fake.results.pop(0) if len(fake.results) > 1 else fake.results[0]
                if isinstance(r, BaseException):
                    raise r
                return r.copy()

        return _Ticker()


@pytest.fixture
def yahoo(monkeypatch: pytest.MonkeyPatch):
    def install(*results: Any, last_error: str | None = None) -> FakeYahoo:
        fake = FakeYahoo(list(results), last_error)
        monkeypatch.setattr(yfinance, "Ticker", fake.ticker)

        def no_download(*a: Any, **k: Any) -> None:
            raise AssertionError("yf.download swallows errors per ticker; use Ticker.history")

        monkeypatch.setattr(yfinance, "download", no_download)
        return fake

    return install


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(tmp_path: Path, sleeps: list[float]):
    def make(auto_adjust: bool = True, retry: RetryPolicy = RetryPolicy()) -> YFinanceSource:
        return YFinanceSource(auto_adjust=auto_adjust,
                              cache=CacheSource(tmp_path / "cache", auto_adjust=auto_adjust),
                              retry=retry, sleep=sleeps.append)

    return make


def gspc(start: str, end: str) -> pd.DataFrame:
    return load(["^GSPC"], start=start, end=end)["^GSPC"]


# --------------------------------------------------------------- request arguments
@pytest.mark.parametrize("flag", [True, False])
def test_fetch_passes_auto_adjust_explicitly(yahoo, source, flag: bool) -> None:
    fake = yahoo(recorded("spy_1d_history" if flag else "spy_1d_history_raw"))
    df = source(auto_adjust=flag).fetch("SPY")
    (symbol, kwargs), = fake.calls
    assert symbol == "SPY"
    assert kwargs["auto_adjust"] is flag
    assert kwargs["actions"] is False and kwargs["repair"] is False
    assert df.attrs["adjustment"] == ("auto_adjust=True" if flag else "raw")
    assert list(df.columns) == COLUMNS  # Adj Close of the raw frame is not mixed in


def test_fetch_without_start_asks_for_max_period(yahoo, source) -> None:
    fake = yahoo(recorded("spy_1d_history"))
    source().fetch("SPY")
    kwargs = fake.calls[0][1]
    assert kwargs["period"] == "max" and "start" not in kwargs and "end" not in kwargs


def test_fetch_sends_dates_one_day_wider_and_trims_inclusively(yahoo, source) -> None:
    fake = yahoo(recorded("spy_1d_history"))
    df = source().fetch("SPY", start="2018-12-03", end="2018-12-10")
    kwargs = fake.calls[0][1]
    assert (kwargs["start"], kwargs["end"]) == ("2018-12-02", "2018-12-11")
    assert "period" not in kwargs
    assert df.index[0] == pd.Timestamp("2018-12-03", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2018-12-10", tz="UTC")  # end is inclusive


# ------------------------------------------------------------------- frame shape
def test_fetch_returns_float64_ohlcv_on_utc_index_named_timestamp(yahoo, source) -> None:
    yahoo(recorded("spy_1d_history"))
    df = source().fetch("SPY")
    assert list(df.columns) == COLUMNS
    assert all(df[c].dtype == np.float64 for c in COLUMNS)
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.name == "timestamp"
    for key in ("symbol", "served_as", "proxy", "label", "source", "adjustment"):
        assert key in df.attrs
    assert (df.attrs["symbol"], df.attrs["served_as"], df.attrs["proxy"]) == ("SPY", "SPY", False)
    assert df.attrs["source"] == "yfinance"


def test_daily_bars_normalised_to_session_date_midnight_utc(yahoo, source) -> None:
    yahoo(recorded("spy_1d_history"))  # stamped at 00:00 America/New_York (05:00 UTC)
    df = source().fetch("SPY")
    real = gspc("2018-11-15", "2018-12-31")  # the real bars the fixture was made from
    pd.testing.assert_index_equal(df.index, real.index, check_exact=True, exact=False)
    assert (df.index == df.index.normalize()).all()
    np.testing.assert_array_equal(df[COLUMNS].to_numpy(), real[COLUMNS].to_numpy())


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "UTC", "America/Los_Angeles"])
def test_daily_bars_keep_their_session_date_in_any_exchange_timezone(yahoo, source, tz) -> None:
    raw = recorded("spy_1d_history")
    raw.index = raw.index.tz_localize(None).tz_localize(tz)  # local midnight on each date
    yahoo(raw)
    df = source().fetch("X")
    assert list(df.index.date) == list(raw.index.date)


def test_download_layout_daily_naive_index_read_as_session_date(yahoo, source) -> None:
    yahoo(recorded("spy_1d_download"))  # yf.download: MultiIndex columns, tz-naive dates
    df = source().fetch("SPY")
    assert list(df.columns) == COLUMNS
    assert df.index[0] == pd.Timestamp("2018-11-15", tz="UTC")


def test_intraday_index_converted_to_utc_across_dst_change(yahoo, source) -> None:
    yahoo(recorded("spy_1h_history"))  # 09:30 New York, EDT on 2 Nov, EST from 4 Nov 2018
    df = source().fetch("SPY", interval="1h")
    assert str(df.index.tz) == "UTC"
    assert pd.Timestamp("2018-11-02 13:30", tz="UTC") in df.index  # 09:30 EDT
    assert pd.Timestamp("2018-11-05 14:30", tz="UTC") in df.index  # 09:30 EST
    assert len(df) == len(recorded("spy_1h_history"))


# ------------------------------------------------------------------- MultiIndex
def test_flatten_single_ticker_multiindex_to_lowercase_columns() -> None:
    flat = flatten_yf_columns(recorded("spy_1d_download"), "SPY")
    assert not isinstance(flat.columns, pd.MultiIndex)
    assert sorted(flat.columns) == sorted(COLUMNS)
    hist = recorded("spy_1d_history")
    np.testing.assert_array_equal(flat["close"].to_numpy(), hist["Close"].to_numpy())


def test_flatten_picks_the_asked_ticker_out_of_two() -> None:
    two = recorded("spy_btc_1d_download")
    btc = flatten_yf_columns(two, "BTC-USD")
    spy = flatten_yf_columns(two, "SPY")
    np.testing.assert_array_equal(btc["close"].to_numpy(), two[("Close", "BTC-USD")].to_numpy())
    assert btc["close"].notna().all()
    # the union index gives SPY NaN rows on weekends and 25 Dec: they stay NaN
    assert spy.loc["2018-12-15", "close"] != spy.loc["2018-12-15", "close"]
    assert spy["close"].isna().sum() == two[("Close", "SPY")].isna().sum() > 0


def test_flatten_matches_ticker_case_insensitively_and_group_by_ticker_layout() -> None:
    two = recorded("spy_btc_1d_download")
    by_ticker = two.copy()
    by_ticker.columns = by_ticker.columns.swaplevel(0, 1)  # group_by="ticker"
    a = flatten_yf_columns(two, "spy")
    b = flatten_yf_columns(by_ticker, "SPY")
    pd.testing.assert_frame_equal(a[COLUMNS], b[COLUMNS])


def test_flatten_two_tickers_without_the_symbol_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"BTC-USD.*SPY.*QQQ"):
        flatten_yf_columns(recorded("spy_btc_1d_download"), "QQQ")


def test_fetch_of_a_multiindex_frame_with_two_tickers_keeps_only_the_asked_one(yahoo, source):
    yahoo(recorded("spy_btc_1d_download"))
    df = source().fetch("BTC-USD")
    assert list(df.columns) == COLUMNS and len(df) == 22
    assert df["close"].notna().all()


# ------------------------------------------------------------------------ empty
def test_empty_history_frame_raises_empty_data_error_naming_symbol(yahoo, source) -> None:
    yahoo(recorded("empty_history"))
    with pytest.raises(EmptyDataError, match="'ZZZZ'") as info:
        source().fetch("ZZZZ")
    assert info.value.symbol == "ZZZZ" and info.value.source == "yfinance"


def test_empty_download_layout_raises_empty_data_error(yahoo, source) -> None:
    yahoo(recorded("empty_download"))  # what yf.download gives for a failed ticker
    with pytest.raises(EmptyDataError, match="'SPY'"):
        source().fetch("SPY")


def test_empty_frame_message_carries_yfinance_reason(yahoo, source) -> None:
    yahoo(recorded("empty_history"), last_error="possibly delisted; no timezone found")
    with pytest.raises(EmptyDataError, match="possibly delisted; no timezone found"):
        source().fetch("ZZZZ")


def test_range_with_no_bars_after_trim_raises_empty_data_error(yahoo, source) -> None:
    yahoo(recorded("spy_1d_history"))
    with pytest.raises(EmptyDataError, match="'SPY'"):
        source().fetch("SPY", start="2018-12-25", end="2018-12-25")  # Christmas


def test_empty_result_does_not_write_cache(yahoo, source, tmp_path) -> None:
    yahoo(recorded("empty_history"))
    with pytest.raises(EmptyDataError):
        source().fetch("SPY")
    assert not list((tmp_path / "cache").rglob("*.parquet"))


# ------------------------------------------------------------------- rate limits
def test_download_when_rate_limited_then_retries_with_backoff(yahoo, source, sleeps) -> None:
    fake = yahoo(YFRateLimitError(), YFRateLimitError(), recorded("spy_1d_history"))
    df = source().fetch("SPY")
    assert len(fake.calls) == 3
    assert sleeps == [1.0, 2.0]  # grows: base_delay * 2**i
    assert len(df) == 30


def test_download_when_always_rate_limited_then_raises_rate_limit_error(yahoo, source, sleeps):
    fake = yahoo(YFRateLimitError())
    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=2.0)
    with pytest.raises(RateLimitError, match=r"'SPY' after 5 attempts"):
        source(retry=policy).fetch("SPY")
    assert len(fake.calls) == 5  # bounded
    assert sleeps == [0.5, 1.0, 2.0, 2.0]  # grows, capped at max_delay
    assert all(b >= a for a, b in zip(sleeps, sleeps[1:], strict=False))


def test_http_429_from_the_http_client_counts_as_rate_limit(yahoo, source, sleeps) -> None:
    err = RuntimeError("HTTP Error 429")
    err.response = SimpleNamespace(status_code=429)  # type: ignore[attr-defined]
    yahoo(err, recorded("spy_1d_history"))
    source().fetch("SPY")
    assert sleeps == [1.0]


@pytest.mark.parametrize("exc", [ValueError("Unable to parse input dt"),
                                 ConnectionError("Could not resolve host: query2.finance.yahoo.com"),
                                 KeyError("chart")])
def test_non_rate_limit_error_raises_data_error_without_retry(yahoo, source, sleeps, exc):
    fake = yahoo(exc)
    with pytest.raises(DataError, match="'SPY'") as info:
        source().fetch("SPY")
    assert not isinstance(info.value, RateLimitError)
    assert info.value.__cause__ is exc
    assert len(fake.calls) == 1 and sleeps == []


# ------------------------------------------------------------------------ cache
def test_cache_written_on_success_and_read_back_by_cache_source_offline(
        yahoo, source, tmp_path, monkeypatch) -> None:
    yahoo(recorded("spy_1d_history"))
    fetched = source().fetch("SPY")
    cache = CacheSource(tmp_path / "cache", auto_adjust=True)
    assert cache.path("SPY", "1d").exists()

    def offline(*a: Any, **k: Any) -> None:
        raise AssertionError("the cache source must not call yfinance")

    monkeypatch.setattr(yfinance, "Ticker", offline)
    cached = cache.fetch("SPY")
    pd.testing.assert_frame_equal(cached, fetched, check_exact=True)
    assert cached.attrs["source"] == "cache" and cached.attrs["adjustment"] == "auto_adjust=True"
    part = cache.fetch("SPY", start="2018-12-03", end="2018-12-10")
    pd.testing.assert_frame_equal(part, fetched.loc["2018-12-03":"2018-12-10"])


def test_cache_keeps_adjusted_and_raw_apart_and_lists_symbols_as_asked(yahoo, source, tmp_path):
    yahoo(recorded("spy_1d_history_raw"))
    source(auto_adjust=False).fetch("^GSPC")
    raw = CacheSource(tmp_path / "cache", auto_adjust=False)
    adj = CacheSource(tmp_path / "cache", auto_adjust=True)
    assert raw.symbols() == ["^GSPC"]  # not a mangled file name
    assert raw.fetch("^GSPC").attrs["adjustment"] == "raw"
    with pytest.raises(UnknownSymbolError, match="<empty"):
        adj.fetch("^GSPC")


def test_cache_source_unknown_symbol_lists_cached_ones(yahoo, source, tmp_path) -> None:
    yahoo(recorded("spy_1d_history"))
    source().fetch("SPY")
    with pytest.raises(UnknownSymbolError, match="available: SPY"):
        CacheSource(tmp_path / "cache").fetch("QQQ")


# ---------------------------------------------------------- broken frames pass through
def test_duplicate_last_row_comes_through_unchanged(yahoo, source) -> None:
    yahoo(recorded("spy_1d_dup_last"))
    df = source().fetch("SPY")
    assert len(df) == 31
    assert df.index[-1] == df.index[-2] == pd.Timestamp("2018-12-31", tz="UTC")
    pd.testing.assert_series_equal(df.iloc[-1], df.iloc[-2], check_names=False)


def test_nan_rows_come_through_unchanged(yahoo, source) -> None:
    raw = recorded("spy_1d_nan_rows")
    yahoo(raw)
    df = source().fetch("SPY")
    assert len(df) == len(raw)
    assert np.isnan(df["close"].iloc[10]) and not np.isnan(df["open"].iloc[10])
    assert df[["open", "high", "low", "close"]].iloc[11].isna().all()
    assert df["volume"].iloc[11] == raw["Volume"].iloc[11] > 0
    np.testing.assert_array_equal(df[["open", "high", "low", "close"]].to_numpy(),
                                  raw[OHLC].to_numpy())


def test_bad_split_rows_come_through_unchanged(yahoo, source) -> None:
    raw = recorded("spy_1d_bad_split")
    yahoo(raw)
    df = source().fetch("SPY")
    np.testing.assert_array_equal(df[["open", "high", "low", "close"]].to_numpy(),
                                  raw[OHLC].to_numpy())
    np.testing.assert_array_equal(df["volume"].to_numpy(), raw["Volume"].to_numpy())
    jump = df["close"].iloc[20] / df["close"].iloc[19]
    assert jump < 0.2  # the /10 is still there for the sanity suite to report


# ------------------------------------------------------------------- fixtures, guard
def test_fixtures_match_the_recording_script() -> None:
    spec = importlib.util.spec_from_file_location(
        "record_yfinance_fixtures", ROOT / "tools" / "record_yfinance_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        built = mod.build()
    finally:
        sys.modules.pop(spec.name, None)
    assert sorted(built) == sorted(p.stem for p in FIX.glob("*.parquet"))
    for name, frame in built.items():
        pd.testing.assert_frame_equal(recorded(name), frame)


def test_network_guard_refuses_non_loopback_connections() -> None:
    try:
        with pytest.raises(_no_network.NetworkBlockedError):
            socket.create_connection(("192.0.2.1", 443), timeout=0.1)  # TEST-NET-1
        with pytest.raises(_no_network.NetworkBlockedError):
            socket.getaddrinfo("query2.finance.yahoo.com", 443)
        from curl_cffi import requests as curl_requests

        with pytest.raises(Exception) as info:
            curl_requests.get("https://query2.finance.yahoo.com/v8/finance/chart/SPY")
        assert "blocked" in str(info.value)
        assert len(_no_network.VIOLATIONS) == 3
    finally:
        _no_network.VIOLATIONS.clear()  # this test meant to trip the guard


def test_network_guard_allows_loopback() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        client = socket.create_connection(server.getsockname(), timeout=1)
        client.close()
    finally:
        server.close()
    assert _no_network.VIOLATIONS == []
