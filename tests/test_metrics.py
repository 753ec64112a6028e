"""Metrics named as in quantstats, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from research_lib.metrics import (
    METRIC_NAMES,
    buy_and_hold_curve,
    cagr,
    infer_periods_per_year,
    max_drawdown,
    metrics_frame,
    performance_table,
)


def _curve(values, freq="B"):
    idx = pd.date_range("2020-01-01", periods=len(values), freq=freq, tz="UTC")
    return pd.Series(values, index=idx, dtype="float64")


def test_max_drawdown_when_peak_then_trough_then_exact_ratio():
    assert max_drawdown(_curve([100, 120, 90, 130, 117])) == pytest.approx(90 / 120 - 1)


def test_cagr_when_doubles_in_two_years_then_sqrt2_minus_1():
    idx = pd.DatetimeIndex([pd.Timestamp("2020-01-01", tz="UTC"),
                            pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=2 * 365.25)])
    assert cagr(pd.Series([1.0, 2.0], index=idx)) == pytest.approx(math.sqrt(2) - 1)


def test_performance_table_when_known_returns_then_matches_hand_computation():
    eq = _curve([100.0, 110.0, 99.0, 108.9, 108.9])
    t = performance_table(eq, periods_per_year=252)
    r = np.array([0.10, -0.10, 0.10, 0.0])
    assert t["Sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    downside = math.sqrt((0.10**2) / 4)
    assert t["Sortino"] == pytest.approx(r.mean() / downside * math.sqrt(252))
    assert t["Win Rate"] == pytest.approx(2 / 3)
    assert t["Profit Factor"] == pytest.approx(0.20 / 0.10)
    assert t["Max Drawdown"] == pytest.approx(-0.10)
    assert t["Total Return"] == pytest.approx(0.089)
    assert t["Exposure"] == pytest.approx(3 / 4)
    assert set(t) == set(METRIC_NAMES)


def test_periods_per_year_when_sessions_or_calendar_days_then_252_or_365():
    assert infer_periods_per_year(_curve(np.ones(300)).index) == 252.0
    assert infer_periods_per_year(_curve(np.ones(300), freq="D").index) == 365.0


def test_buy_and_hold_when_symbol_misses_bars_then_carries_last_price():
    idx = pd.date_range("2020-01-01", periods=4, freq="D", tz="UTC")
    closes = pd.DataFrame({"A": [10.0, 11.0, np.nan, 12.0], "B": [20.0, 20.0, 22.0, 24.0]},
                          index=idx)
    bh = buy_and_hold_curve(closes, 1000.0)
    assert bh.iloc[0] == pytest.approx(1000.0)
    assert bh.iloc[2] == pytest.approx(500 * 11 / 10 + 500 * 22 / 20)


def test_metrics_frame_when_two_curves_then_columns_per_curve():
    f = metrics_frame({"strategy": _curve([1, 1.1, 1.2]), "benchmark": _curve([1, 0.9, 1.0])})
    assert list(f.columns) == ["strategy", "benchmark"] and list(f.index) == list(METRIC_NAMES)
