"""The tearsheet's metrics (our own code) against empyrical-reloaded, to 4 decimals, and
against independent computations by hand where empyrical has no such metric."""

from __future__ import annotations

import math

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

from research_lib.tearsheet import metrics as m
from research_lib.tearsheet.tables import activity, drawdown_periods, monthly_table


def _returns(n=600, seed=3, mu=0.0004, sd=0.011):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2018-01-01", periods=n, tz="UTC")
    return pd.Series(rng.normal(mu, sd, n), index=idx)


def _bench(r, seed=4):
    rng = np.random.default_rng(seed)
    return pd.Series(0.6 * r.to_numpy() + rng.normal(0.0002, 0.006, len(r)), index=r.index)


@pytest.mark.parametrize("periods", [252, 365])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_when_random_returns_then_equal_to_empyrical_to_4_decimals(periods, seed):
    r = _returns(seed=seed)
    b = _bench(r, seed=seed + 10)
    pairs = {
        "annual_return": (m.annual_return(r, periods), ep.annual_return(r, annualization=periods)),
        "volatility": (m.annual_volatility(r, periods),
                       ep.annual_volatility(r, annualization=periods)),
        "sharpe": (m.sharpe(r, periods), ep.sharpe_ratio(r, annualization=periods)),
        "sortino": (m.sortino(r, periods), ep.sortino_ratio(r, annualization=periods)),
        "max_drawdown": (m.max_drawdown(r), ep.max_drawdown(r)),
        "calmar": (m.calmar(r, periods), ep.calmar_ratio(r, annualization=periods)),
        "total": (m.total_return(r), ep.cum_returns_final(r)),
        "beta": (m.beta(r, b), ep.beta(r, b)),
        "alpha": (m.alpha(r, b, periods), ep.alpha(r, b, annualization=periods)),
        "var": (m.value_at_risk(r), ep.value_at_risk(r, cutoff=0.05)),
    }
    for name, (ours, theirs) in pairs.items():
        assert round(ours, 4) == round(float(theirs), 4), (name, ours, theirs)
    w = m.rolling_window(len(r), periods)
    theirs = ep.roll_sharpe_ratio(r, window=w, annualization=periods)
    ours = m.rolling_sharpe(r, w, periods).dropna()
    np.testing.assert_allclose(ours.to_numpy(), np.asarray(theirs)[-len(ours):], atol=5e-5)


def test_max_drawdown_when_the_first_step_loses_then_the_start_counts_as_the_peak():
    r = pd.Series([-0.10, 0.05, -0.02], index=pd.bdate_range("2020-01-01", periods=3, tz="UTC"))
    assert m.max_drawdown(r) == pytest.approx(-0.10)  # not 0.9261 / 0.945 - 1 (-2 %)
    assert m.max_drawdown(r) == pytest.approx(ep.max_drawdown(r))


def test_metrics_when_flat_curve_then_nan_not_zero():
    r = pd.Series(np.zeros(50), index=pd.bdate_range("2020-01-01", periods=50, tz="UTC"))
    assert math.isnan(m.sharpe(r, 252)) and math.isnan(m.sortino(r, 252))
    assert math.isnan(m.calmar(r, 252)) and m.max_drawdown(r) == 0.0


def test_monthly_table_when_known_days_then_compounded_by_hand():
    idx = pd.DatetimeIndex(["2021-01-04", "2021-01-05", "2021-02-01", "2021-02-02",
                            "2022-03-01"], tz="UTC")
    r = pd.Series([0.10, -0.05, 0.02, 0.03, -0.01], index=idx)
    t = monthly_table(r)
    assert t.loc[2021, "Jan"] == pytest.approx(1.10 * 0.95 - 1)
    assert t.loc[2021, "Feb"] == pytest.approx(1.02 * 1.03 - 1)
    assert t.loc[2021, "Year"] == pytest.approx(1.10 * 0.95 * 1.02 * 1.03 - 1)
    assert t.loc[2022, "Mar"] == pytest.approx(-0.01)
    assert math.isnan(t.loc[2022, "Jan"])


def test_drawdown_periods_when_two_dips_then_depth_dates_and_recovery_by_hand():
    idx = pd.bdate_range("2021-01-04", periods=8, tz="UTC")
    # wealth: 1.1, 0.99, 1.1, 1.21, 0.968, 0.9196, 1.0, 1.0
    r = pd.Series([0.10, -0.10, 1.1 / 0.99 - 1, 0.10, -0.20, -0.05, 1.0 / 0.9196 - 1, 0.0],
                  index=idx)
    t = drawdown_periods(r, 5)
    assert len(t) == 2
    first = t.iloc[0]  # deepest: from the 1.21 peak to 0.9196, not recovered
    assert first["depth"] == pytest.approx(0.9196 / 1.21 - 1)
    assert first["peak"] == idx[3] and first["trough"] == idx[5]
    assert pd.isna(first["recovery"])
    second = t.iloc[1]
    assert second["depth"] == pytest.approx(-0.10)
    assert (second["peak"], second["trough"], second["recovery"]) == (idx[0], idx[1], idx[2])
    assert second["days_to_recover"] == pytest.approx(2.0)


def test_activity_when_known_fills_then_turnover_and_costs_by_hand():
    idx = pd.bdate_range("2021-01-04", periods=4, tz="UTC")
    equity = pd.Series([100.0, 100.0, 100.0, 100.0], index=idx)
    gross = pd.Series([0.0, 0.5, 0.5, 0.0], index=idx)
    fills = pd.DataFrame({"ts": [idx[1], idx[3]], "qty": [5.0, -5.0], "price": [10.1, 9.9],
                          "base_price": [10.0, 10.0], "commission": [0.05, 0.05]})
    a = activity(equity, gross, fills, 100.0, periods=4.0)  # 4 steps = one year
    assert a["time_in_market"] == pytest.approx(0.5)
    assert a["mean_gross"] == pytest.approx(0.25)
    assert a["turnover_per_year"] == pytest.approx((50.5 + 49.5) / 100.0)
    assert a["slippage"] == pytest.approx(0.5 + 0.5)
    assert a["costs"] == pytest.approx(1.1)
    assert a["cost_drag_per_year"] == pytest.approx(1.1 / 100.0)


def _run(marks: dict[str, list[float]], gross: list[float], equity: list[float]) -> dict:
    n = len(gross)
    ts = pd.bdate_range("2021-01-04", periods=n, tz="UTC")
    eq = pd.DataFrame({"step": range(n), "ts": ts, "equity": equity,
                       "gross": np.array(gross) * np.array(equity),
                       "net": np.array(gross) * np.array(equity)})
    pos = pd.DataFrame([{"step": k, "symbol": s, "mark": v[k], "value": 0.0}
                        for s, v in marks.items() for k in range(n)])
    return {"equity": eq, "positions": pos,
            "meta": {"symbols": list(marks), "initial_cash": equity[0]}}


def test_benchmarks_when_a_symbol_is_priced_later_then_it_joins_the_basket_when_priced():
    from research_lib.tearsheet.data import RunData

    d = RunData(_run({"A": [10.0, 11.0, 12.0], "B": [np.nan, 20.0, 10.0]},
                     gross=[0.0, 0.2, 0.4], equity=[100.0, 101.0, 99.0]))
    # value: A's half 1.0, 1.1, 1.2; B's half in cash (1.0) until priced, then 1.0, 0.5
    value = np.array([1.0, (1.1 + 1.0) / 2, (1.2 + 0.5) / 2])
    want = np.concatenate([[0.0], value[1:] / value[:-1] - 1.0])
    np.testing.assert_allclose(d.basket_returns.to_numpy(), want)
    scaled = list(d.benchmarks.values())[1]
    np.testing.assert_allclose(scaled.to_numpy(), want * 0.2)  # mean gross exposure
    assert list(d.benchmarks)[1] == "Basket at 20% (mean exposure)"
    r = d.returns.to_numpy()
    assert r[0] == 0.0 and r[2] == pytest.approx(99.0 / 101.0 - 1)
    vol = list(d.benchmarks.values())[2]
    assert vol.std(ddof=1) == pytest.approx(d.returns.std(ddof=1))


def test_source_label_when_a_local_path_then_only_its_name():
    from research_lib.tearsheet.sheet import source_label

    assert source_label("csv:/home/me/data/prices/") == "csv:prices"
    assert source_label("csv:/tmp/x/SPY.csv") == "csv:SPY.csv"
    assert source_label("sample") == "sample"
