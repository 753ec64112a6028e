"""The offline sources: ``sample`` (shipped real prices, proxies, aliases), ``csv:PATH``
(a user's files) and the ``get_source`` factory. yfinance/cache: test_yfinance_source.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.data import COLUMNS, CsvSource, SampleSource, get_source, load
from research_lib.data.cache import CacheSource
from research_lib.data.yfinance_source import YFinanceSource
from research_lib.errors import DataError, EmptyDataError, UnknownSymbolError


def assert_contract(df: pd.DataFrame) -> None:
    assert list(df.columns) == COLUMNS
    assert all(df[c].dtype == np.float64 for c in COLUMNS)
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.name == "timestamp"
    for key in ("symbol", "served_as", "proxy", "label", "source", "adjustment"):
        assert key in df.attrs, key


# ------------------------------------------------------------------------ sample
def test_sample_serves_spy_as_labelled_gspc_proxy() -> None:
    src = SampleSource()
    spy = src.fetch("SPY")
    gspc = src.fetch("^GSPC")
    assert_contract(spy)
    assert (spy.attrs["symbol"], spy.attrs["served_as"], spy.attrs["proxy"]) == ("SPY", "^GSPC", True)
    assert "proxy" in spy.attrs["label"] and "^GSPC" in spy.attrs["label"]
    assert spy.attrs["label"].startswith("SPY")
    pd.testing.assert_frame_equal(spy, gspc)  # same bars; only the labels differ
    assert gspc.attrs["proxy"] is False and gspc.attrs["label"] == "^GSPC"


def test_sample_serves_qqq_as_labelled_ixic_proxy() -> None:
    qqq = SampleSource().fetch("QQQ")
    assert qqq.attrs["served_as"] == "^IXIC" and qqq.attrs["proxy"] is True
    assert "proxy" in qqq.attrs["label"]


def test_sample_maps_btcusdt_to_btc_usd_alias() -> None:
    src = SampleSource()
    b = src.fetch("BTCUSDT")
    assert (b.attrs["served_as"], b.attrs["proxy"]) == ("BTC-USD", True)
    assert "alias" in b.attrs["label"] and "USDT" in b.attrs["label"]
    pd.testing.assert_frame_equal(b, src.fetch("BTC-USD"))
    assert src.fetch("ETHUSDT").attrs["served_as"] == "ETH-USD"


def test_sample_unknown_symbol_error_lists_available_symbols() -> None:
    src = SampleSource()
    with pytest.raises(UnknownSymbolError) as info:
        src.fetch("NOPE")
    err = info.value
    assert isinstance(err, DataError) and isinstance(err, KeyError)
    assert err.symbol == "NOPE" and err.available == src.symbols()
    for sym in ("^GSPC", "^IXIC", "GOOG", "BTC-USD", "ETH-USD", "LTC-USD", "^VIX", "SPY", "QQQ"):
        assert sym in str(err)
    assert "'NOPE'" in str(err)


def test_sample_trims_to_start_and_end_inclusive() -> None:
    df = SampleSource().fetch("^GSPC", start="2018-12-03", end="2018-12-10")
    assert df.index[0] == pd.Timestamp("2018-12-03", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2018-12-10", tz="UTC")
    assert len(df) == 5  # 5 Dec 2018: markets closed for the Bush funeral
    assert pd.Timestamp("2018-12-05", tz="UTC") not in df.index


def test_sample_trim_accepts_tz_aware_bounds() -> None:
    a = SampleSource().fetch("^GSPC", start=pd.Timestamp("2018-12-03", tz="UTC"), end="2018-12-10")
    b = SampleSource().fetch("^GSPC", start="2018-12-03", end="2018-12-10")
    pd.testing.assert_frame_equal(a, b)


def test_sample_empty_range_raises_empty_data_error_with_span() -> None:
    with pytest.raises(EmptyDataError, match=r"'SPY'.*1999-01-04 \.\. 2018-12-31") as info:
        SampleSource().fetch("SPY", start="2030-01-01")
    assert info.value.symbol == "SPY"


@pytest.mark.parametrize("symbol,interval", [("GOOG", "1h"), ("BTC-USD", "5m"),
                                             ("SPY", "1wk")])
def test_sample_refuses_an_interval_it_has_no_bars_for_with_clear_message(symbol, interval):
    with pytest.raises(DataError, match=rf"interval '{interval}'.*daily.*intraday bars for .*"
                                        r"\^GSPC \(1m\).*--interval 1d"):
        SampleSource().fetch(symbol, interval=interval)


def test_sample_serves_intraday_bars_at_their_interval_or_a_labelled_resampled_multiple():
    one = SampleSource().fetch("SPY", interval="1m")
    assert len(one) == 1563 and one.attrs["served_as"] == "^GSPC" and one.attrs["proxy"]
    assert one.index[0] == pd.Timestamp("2019-11-05 14:30", tz="UTC")
    hourly = SampleSource().fetch("SPY", interval="1h")
    assert "resampled from the sample's 1m bars" in hourly.attrs["label"]
    first = one[one.index < pd.Timestamp("2019-11-05 15:30", tz="UTC")]
    assert hourly.iloc[0].tolist() == [first["open"].iloc[0], first["high"].max(),
                                       first["low"].min(), first["close"].iloc[-1], 0.0]
    with pytest.raises(DataError, match="ships 1h bars.*not 1h or a whole multiple"):
        SampleSource().fetch("EURUSD", interval="5m")


def test_load_returns_one_frame_per_symbol_in_contract_shape() -> None:
    frames = load(["SPY", "BTC-USD"], start="2018-01-01", end="2018-01-31")
    assert list(frames) == ["SPY", "BTC-USD"]
    for df in frames.values():
        assert_contract(df)


# --------------------------------------------------------------------------- csv
def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


DAILY = """
Date,OPEN,High,low,Close,Volume
2024-01-02,100,101,99,100.5,1000
2024-01-03,100.5,102,100,101.5,1100
2024-01-04,101.5,103,101,102.5,1200
"""


def test_csv_one_symbol_file_named_after_symbol(tmp_path: Path) -> None:
    src = CsvSource(write(tmp_path / "SPY.csv", DAILY))
    assert src.symbols() == ["SPY"]
    df = src.fetch("SPY")
    assert_contract(df)
    assert df.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    np.testing.assert_array_equal(df["close"].to_numpy(), [100.5, 101.5, 102.5])
    assert df.attrs["source"] == f"csv:{tmp_path / 'SPY.csv'}" and df.attrs["proxy"] is False
    with pytest.raises(UnknownSymbolError, match="available: SPY"):
        src.fetch("QQQ")


def test_csv_column_names_are_case_insensitive(tmp_path: Path) -> None:
    df = CsvSource(write(tmp_path / "X.csv", DAILY)).fetch("X")
    np.testing.assert_array_equal(df["open"].to_numpy(), [100, 100.5, 101.5])
    np.testing.assert_array_equal(df["low"].to_numpy(), [99, 100, 101])
    np.testing.assert_array_equal(df["volume"].to_numpy(), [1000, 1100, 1200])


def test_csv_folder_of_files_one_per_symbol(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", DAILY)
    write(tmp_path / "BBB.csv", DAILY.replace("100.5,1000", "200.5,1000"))
    src = get_source(f"csv:{tmp_path}")
    assert src.symbols() == ["AAA", "BBB"]
    assert src.fetch("BBB")["close"].iloc[0] == 200.5
    assert src.fetch("AAA")["close"].iloc[0] == 100.5


def test_csv_long_file_with_symbol_column(tmp_path: Path) -> None:
    text = """
timestamp,Symbol,open,high,low,close,volume
2024-01-02,AAA,1,2,0.5,1.5,10
2024-01-02,BBB,10,20,5,15,100
2024-01-03,AAA,1.5,2.5,1,2,11
"""
    src = CsvSource(write(tmp_path / "prices.csv", text))
    assert src.symbols() == ["AAA", "BBB"]
    a = src.fetch("AAA")
    assert list(a["close"]) == [1.5, 2.0] and "symbol" not in a.columns
    assert_contract(a)
    with pytest.raises(UnknownSymbolError, match="available: AAA, BBB"):
        src.fetch("CCC")


def test_csv_intraday_timestamps_with_offsets_become_utc(tmp_path: Path) -> None:
    text = """
datetime,open,high,low,close,volume
2024-03-08 09:30:00-05:00,1,2,0.5,1.5,10
2024-03-11 09:30:00-04:00,1.5,2.5,1,2,11
"""
    df = CsvSource(write(tmp_path / "SPY.csv", text)).fetch("SPY")
    assert list(df.index) == [pd.Timestamp("2024-03-08 14:30", tz="UTC"),
                              pd.Timestamp("2024-03-11 13:30", tz="UTC")]


def test_csv_naive_timestamps_are_taken_as_utc(tmp_path: Path) -> None:
    text = """
Datetime,Open,High,Low,Close,Volume
2024-01-02 10:00,1,2,0.5,1.5,10
2024-01-02 11:00,1.5,2.5,1,2,11
"""
    df = CsvSource(write(tmp_path / "ETH.csv", text)).fetch("ETH")
    assert df.index[0] == pd.Timestamp("2024-01-02 10:00", tz="UTC")
    assert df.index[1] - df.index[0] == pd.Timedelta(hours=1)


def test_csv_missing_columns_is_a_data_error_naming_them(tmp_path: Path) -> None:
    text = """
Date,Open,Close,Volume
2024-01-02,1,1.5,10
"""
    with pytest.raises(DataError, match=r"lacks columns \['high', 'low'\]"):
        CsvSource(write(tmp_path / "SPY.csv", text)).fetch("SPY")


def test_csv_without_timestamp_column_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no timestamp column"):
        CsvSource(write(tmp_path / "SPY.csv", "open,high,low,close\n1,2,0.5,1.5")).fetch("SPY")


def test_csv_non_numeric_price_is_a_data_error_naming_column_and_row(tmp_path: Path) -> None:
    text = DAILY.replace("101.5,1100", "1O1.5,1100")  # letter O for zero
    with pytest.raises(DataError, match=r"'close'.*2024-01-03.*'1O1.5'"):
        CsvSource(write(tmp_path / "SPY.csv", text)).fetch("SPY")


def test_csv_keeps_duplicates_nan_and_order_as_in_file(tmp_path: Path) -> None:
    text = """
date,open,high,low,close,volume
2024-01-03,2,3,1,2.5,10
2024-01-02,1,2,0.5,,10
2024-01-03,2,3,1,2.5,10
"""
    df = CsvSource(write(tmp_path / "SPY.csv", text)).fetch("SPY")
    assert len(df) == 3 and df.index.duplicated().sum() == 1
    assert not df.index.is_monotonic_increasing
    assert np.isnan(df["close"].iloc[1])


def test_csv_missing_volume_column_becomes_nan(tmp_path: Path) -> None:
    df = CsvSource(write(tmp_path / "SPY.csv", "date,open,high,low,close\n2024-01-02,1,2,0.5,1.5")).fetch("SPY")
    assert np.isnan(df["volume"].iloc[0])


def test_csv_empty_range_raises_empty_data_error(tmp_path: Path) -> None:
    with pytest.raises(EmptyDataError, match="'SPY'"):
        CsvSource(write(tmp_path / "SPY.csv", DAILY)).fetch("SPY", start="2025-01-01")


def test_csv_path_that_does_not_exist_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        get_source(f"csv:{tmp_path / 'nope.csv'}")


# ---------------------------------------------------------------------- factory
def test_get_source_unknown_spec_lists_the_choices() -> None:
    with pytest.raises(DataError, match=r"'bloomberg'.*sample.*yfinance.*cache.*csv:PATH"):
        get_source("bloomberg")


def test_get_source_builds_each_known_source(tmp_path: Path) -> None:
    assert isinstance(get_source(), SampleSource)
    assert isinstance(get_source("yfinance", cache=CacheSource(tmp_path)), YFinanceSource)
    assert isinstance(get_source("cache", directory=tmp_path), CacheSource)
    write(tmp_path / "SPY.csv", DAILY)
    assert isinstance(get_source(f"csv:{tmp_path / 'SPY.csv'}"), CsvSource)
    src = SampleSource()
    assert get_source(src) is src
