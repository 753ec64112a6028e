"""Data-sanity checks: each defect yields one coded finding naming where it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.data import load
from research_lib.data.sanity import ERROR, SanityConfig, check_frame, has_errors
from research_lib.data.sanity_report import check_symbols, format_table
from tests.kit import make_bars

NOW = pd.Timestamp("2024-06-28", tz="UTC")

BAD_CSV = """Date,OPEN,High,low,Close,Volume
2020-01-02,100,101,99,100.5,1000
2020-01-03,100.5,102,100,101,1100
2020-01-03,100.5,102,100,101,1100
2020-01-06,101,102,100,,1200
2020-01-07,101,99,102,101,1300
2020-01-08,101,102,100,-5,1300
2020-01-09,101,102,100,101,1300
2099-01-02,101,102,100,101,1300
"""


def _codes(findings, severity=None):
    return [(f.code, f.row) for f in findings if severity is None or f.severity == severity]


def test_csv_with_five_defects_when_checked_then_one_error_finding_each(tmp_path: Path):
    path = tmp_path / "BAD.csv"
    path.write_text(BAD_CSV)
    _, findings = check_symbols(["BAD"], source=f"csv:{path}", now=NOW)
    assert sorted(_codes(findings, ERROR)) == sorted([
        ("DUPLICATE_TIMESTAMP", 2),
        ("NAN_VALUE", 3),
        ("OHLC_INCONSISTENT", 4),
        ("NON_POSITIVE_PRICE", 5),
        ("FUTURE_TIMESTAMP", 7),
    ])
    by_code = {f.code: f for f in findings}
    assert by_code["NAN_VALUE"].timestamp == pd.Timestamp("2020-01-06", tz="UTC")
    assert by_code["NAN_VALUE"].symbol == "BAD"
    assert "close" in by_code["NAN_VALUE"].message


def test_data_check_cli_when_errors_then_exit_1_and_table_names_rows(tmp_path: Path):
    path = tmp_path / "BAD.csv"
    path.write_text(BAD_CSV)
    proc = subprocess.run(
        [sys.executable, "-m", "research_lib.cli", "data", "check", "--symbols", "BAD",
         "--source", f"csv:{path}"], capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    for code in ("DUPLICATE_TIMESTAMP", "NAN_VALUE", "OHLC_INCONSISTENT", "NON_POSITIVE_PRICE",
                 "FUTURE_TIMESTAMP"):
        assert code in proc.stdout
    assert "2020-01-06" in proc.stdout


def test_data_check_cli_when_sample_clean_then_exit_0_and_proxy_named():
    proc = subprocess.run(
        [sys.executable, "-m", "research_lib.cli", "data", "check", "--symbols", "SPY,QQQ"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "proxy" in proc.stdout and "^GSPC" in proc.stdout


def test_clean_frame_when_checked_then_no_errors():
    df = make_bars(120)
    assert not has_errors(check_frame(df, "SYN", SanityConfig(now=NOW)))


def test_naive_index_when_checked_then_tz_error():
    df = make_bars(10)
    df.index = df.index.tz_localize(None)
    assert ("INDEX_NOT_TZ_AWARE", None) in _codes(check_frame(df, "SYN", SanityConfig(now=NOW)))


def test_unsorted_index_when_checked_then_not_increasing_at_row():
    df = make_bars(10)
    df = df.iloc[[0, 1, 2, 4, 3, 5, 6, 7, 8, 9]]
    assert ("NOT_INCREASING", 4) in _codes(check_frame(df, "SYN", SanityConfig(now=NOW)))


def test_missing_column_and_bad_dtype_when_checked_then_schema_errors():
    df = make_bars(10).drop(columns=["volume"])
    df["open"] = df["open"].astype(str)
    codes = [c for c, _ in _codes(check_frame(df, "SYN", SanityConfig(now=NOW)))]
    assert "MISSING_COLUMN" in codes and "BAD_DTYPE" in codes


def test_inf_and_negative_volume_when_checked_then_flagged_at_rows():
    df = make_bars(10)
    df.iloc[3, df.columns.get_loc("high")] = np.inf
    df.iloc[6, df.columns.get_loc("volume")] = -1
    codes = _codes(check_frame(df, "SYN", SanityConfig(now=NOW)))
    assert ("INF_VALUE", 3) in codes and ("NEGATIVE_VOLUME", 6) in codes


@pytest.mark.parametrize("factor", [0.1, 100.0, 0.5])
def test_bad_split_or_unit_error_when_checked_then_price_jump(factor):
    df = make_bars(40)
    df.iloc[20:, :4] *= factor
    findings = check_frame(df, "SYN", SanityConfig(now=NOW))
    assert ("PRICE_JUMP", 20) in _codes(findings)
    jump = next(f for f in findings if f.code == "PRICE_JUMP")
    assert "split" in jump.message


def test_real_vix_spike_when_checked_then_not_a_jump_error():
    vix = load(["^VIX"])["^VIX"]
    findings = check_frame(vix, "^VIX", SanityConfig(calendar="XNYS", now=NOW))
    assert not has_errors(findings)
    assert any(f.code == "CLOSE_ONLY_SERIES" for f in findings)


def test_missing_session_when_checked_then_flagged_not_filled():
    spx = load(["^GSPC"], start="2018-06-01", end="2018-07-31")["^GSPC"]
    holed = spx.drop(spx.index[10:13])
    findings = check_frame(holed, "^GSPC", SanityConfig(calendar="XNYS", now=NOW))
    gaps = [f for f in findings if f.code == "MISSING_SESSION"]
    assert len(gaps) == 1 and gaps[0].timestamp == spx.index[10]
    assert "3 sessions" in gaps[0].message
    assert len(holed) == len(spx) - 3  # nothing was filled


def test_july_4th_when_checked_then_not_a_gap_but_weekend_bar_is():
    spx = load(["^GSPC"], start="2018-06-25", end="2018-07-10")["^GSPC"]
    assert not [f for f in check_frame(spx, "^GSPC", SanityConfig(now=NOW)) if f.code == "MISSING_SESSION"]
    sat = spx.iloc[[0]].copy()
    sat.index = pd.DatetimeIndex([pd.Timestamp("2018-06-30", tz="UTC")], name="timestamp")
    with_sat = pd.concat([spx, sat]).sort_index()
    codes = [f.code for f in check_frame(with_sat, "^GSPC", SanityConfig(now=NOW))]
    assert "NON_SESSION_BAR" in codes


def test_crypto_weekend_bars_when_checked_with_24_7_then_no_gap():
    btc = load(["BTC-USD"], start="2018-01-01", end="2018-02-01")["BTC-USD"]
    findings = check_frame(btc, "BTC-USD", SanityConfig(calendar="24/7", now=NOW))
    assert not [f for f in findings if f.code in ("MISSING_SESSION", "NON_SESSION_BAR")]


def test_stale_last_bar_when_old_then_warning_and_fresh_is_not():
    df = make_bars(60, start="2024-03-01")
    cfg = SanityConfig(now=NOW, stale_after=pd.Timedelta("5D"))
    assert any(f.code == "STALE_LAST_BAR" for f in check_frame(df, "SYN", cfg))
    fresh = SanityConfig(now=df.index[-1] + pd.Timedelta("1D"), stale_after=pd.Timedelta("5D"))
    assert not any(f.code == "STALE_LAST_BAR" for f in check_frame(df, "SYN", fresh))


def test_frozen_feed_when_identical_bars_then_stale_bars_warning():
    df = make_bars(30)
    df.iloc[10:16, :4] = df.iloc[10, :4].to_numpy()
    assert "STALE_BARS" in [f.code for f in check_frame(df, "SYN", SanityConfig(now=NOW))]


def test_unknown_symbol_when_checked_then_load_failed_lists_available():
    _, findings = check_symbols(["NOPE"], now=NOW)
    assert findings[0].code == "LOAD_FAILED" and "^GSPC" in findings[0].message


def test_format_table_when_findings_then_one_line_each():
    df = make_bars(20)
    df.iloc[5, df.columns.get_loc("close")] = np.nan
    findings = check_frame(df, "SYN", SanityConfig(now=NOW))
    text = format_table(findings)
    assert len(text.splitlines()) == len(findings) + 1 and "NAN_VALUE" in text


def test_check_frame_when_run_then_input_unchanged():
    df = make_bars(30)
    before = df.copy()
    check_frame(df, "SYN", SanityConfig(now=NOW))
    pd.testing.assert_frame_equal(df, before)
