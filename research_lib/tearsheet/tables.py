"""The tearsheet's tables as values: metrics side by side, periodic returns, the worst
drawdowns, turnover and costs. Numbers stay numbers here; :mod:`.fmt` formats them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import metrics as m

# (row label, unit): the unit decides the format (research_lib.tearsheet.fmt)
RETURN_METRICS: list[tuple[str, str]] = [
    ("Total return", "%"),
    ("Annual return (compounded)", "%"),
    ("Volatility (annualised)", "%"),
    ("Sharpe ratio (annualised, risk-free 0)", "ratio"),
    ("Sortino ratio (annualised)", "ratio"),
    ("Max drawdown", "%"),
    ("Calmar ratio", "ratio"),
    ("Beta to the basket", "ratio"),
    ("Alpha to the basket (annualised)", "%"),
    ("One-step VaR 95% (historical)", "%"),
    ("Worst step", "%"),
    ("Best step", "%"),
    ("Skew of step returns", "ratio"),
    ("Excess kurtosis of step returns", "ratio"),
]


def return_metrics(r: pd.Series, basket: pd.Series, periods: float) -> dict[str, float]:
    return {
        "Total return": m.total_return(r),
        "Annual return (compounded)": m.annual_return(r, periods),
        "Volatility (annualised)": m.annual_volatility(r, periods),
        "Sharpe ratio (annualised, risk-free 0)": m.sharpe(r, periods),
        "Sortino ratio (annualised)": m.sortino(r, periods),
        "Max drawdown": m.max_drawdown(r),
        "Calmar ratio": m.calmar(r, periods),
        "Beta to the basket": m.beta(r, basket),
        "Alpha to the basket (annualised)": m.alpha(r, basket, periods),
        "One-step VaR 95% (historical)": m.value_at_risk(r, 0.05),
        "Worst step": float(np.nanmin(r)) if len(r) else np.nan,
        "Best step": float(np.nanmax(r)) if len(r) else np.nan,
        "Skew of step returns": m.skew(r),
        "Excess kurtosis of step returns": m.kurtosis(r),
    }


def period_returns(returns: pd.Series, freq: str) -> pd.Series:
    """Compounded returns per calendar period (``"M"`` month, ``"Y"`` year), labelled by
    the period's start in UTC."""
    if returns.empty:
        return pd.Series(dtype="float64")
    idx = returns.index.tz_convert("UTC").tz_localize(None)
    key = idx.to_period(freq)
    return (1.0 + returns.set_axis(idx)).groupby(key).prod() - 1.0


def monthly_table(returns: pd.Series) -> pd.DataFrame:
    """Rows: years; columns: Jan..Dec and the year (compounded); values: returns."""
    mon = period_returns(returns, "M")
    if mon.empty:
        return pd.DataFrame()
    df = pd.DataFrame({"year": mon.index.year, "month": mon.index.month, "r": mon.to_numpy()})
    t = df.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))
    t.columns = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                 "Dec"]
    t["Year"] = period_returns(returns, "Y").to_numpy()
    return t


def drawdown_periods(returns: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, trough, recovery (NaT when not recovered by the
    end), depth, days from peak to trough and from peak to recovery."""
    cols = ["peak", "trough", "recovery", "depth", "days_to_trough", "days_to_recover"]
    if returns.empty:
        return pd.DataFrame(columns=cols)
    dd = m.drawdown(returns).to_numpy()
    idx = returns.index
    out: list[dict[str, Any]] = []
    k, n = 0, len(dd)
    while k < n:
        if dd[k] >= 0:
            k += 1
            continue
        start = k
        while k < n and dd[k] < 0:
            k += 1
        seg = dd[start:k]
        j = start + int(np.argmin(seg))
        peak = idx[start - 1] if start > 0 else idx[0]
        rec = idx[k] if k < n else pd.NaT
        out.append({
            "peak": peak, "trough": idx[j], "recovery": rec, "depth": float(dd[j]),
            "days_to_trough": (idx[j] - peak).total_seconds() / 86400.0,
            "days_to_recover": ((rec - peak).total_seconds() / 86400.0
                                if rec is not pd.NaT else np.nan),
        })
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values("depth", kind="stable").head(top).reset_index(drop=True)


def fill_costs(fills: pd.DataFrame) -> pd.DataFrame:
    """Per fill: traded notional, commission and slippage (against the observed price)."""
    if fills is None or fills.empty:
        return pd.DataFrame(columns=["ts", "notional", "commission", "slippage"])
    q = fills["qty"].to_numpy(np.float64)
    p = fills["price"].to_numpy(np.float64)
    b = fills["base_price"].to_numpy(np.float64)
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(fills["ts"]),
        "notional": np.abs(q * p),
        "commission": fills["commission"].to_numpy(np.float64),
        "slippage": np.abs(q) * np.abs(p - b),
    })


def yearly_table(returns: pd.Series, benchmarks: dict[str, pd.Series], equity: pd.Series,
                 gross: pd.Series, fills: pd.DataFrame) -> pd.DataFrame:
    """Per calendar year: the strategy's and each benchmark's return, the strategy's max
    drawdown in the year, mean gross exposure, turnover (traded notional / mean equity)
    and costs (commission + slippage, % of mean equity)."""
    if returns.empty:
        return pd.DataFrame()
    yr = period_returns(returns, "Y")
    t = pd.DataFrame({"Strategy": yr.to_numpy()}, index=yr.index.year)
    for name, b in benchmarks.items():
        t[name] = period_returns(b, "Y").reindex(yr.index).to_numpy()
    years = returns.index.tz_convert("UTC").year
    t["Max drawdown in year"] = [m.max_drawdown(returns[years == y]) for y in t.index]
    t["Mean gross exposure"] = [float(gross[years == y].mean()) for y in t.index]
    fc = fill_costs(fills)
    fy = pd.DatetimeIndex(fc["ts"]).tz_convert("UTC").year if len(fc) else np.array([])
    mean_eq = [float(equity[years == y].mean()) for y in t.index]
    t["Turnover"] = [float(fc["notional"][fy == y].sum()) / e if e else np.nan
                     for y, e in zip(t.index, mean_eq, strict=True)]
    t["Costs"] = [float((fc["commission"] + fc["slippage"])[fy == y].sum()) / e if e else np.nan
                  for y, e in zip(t.index, mean_eq, strict=True)]
    t.index.name = "year"
    return t


def activity(equity: pd.Series, gross: pd.Series, fills: pd.DataFrame, initial: float,
             periods: float) -> dict[str, float]:
    """Time in market, exposure, turnover and costs over the whole run."""
    fc = fill_costs(fills)
    n = len(equity)
    years = n / periods if periods else np.nan
    mean_eq = float(equity.mean()) if n else np.nan
    notional = float(fc["notional"].sum())
    commission = float(fc["commission"].sum())
    slippage = float(fc["slippage"].sum())
    costs = commission + slippage
    return {
        "time_in_market": float((gross.abs() > 1e-12).mean()) if n else np.nan,
        "mean_gross": float(gross.mean()) if n else np.nan,
        "max_gross": float(gross.max()) if n else np.nan,
        "turnover_per_year": notional / mean_eq / years if n and years and mean_eq else np.nan,
        "commission": commission,
        "slippage": slippage,
        "costs": costs,
        "costs_pct_initial": costs / initial if initial else np.nan,
        "cost_drag_per_year": (costs / mean_eq / years if n and years and mean_eq
                               else np.nan),
        "fills": float(len(fc)),
    }


def nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
