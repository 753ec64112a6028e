"""Return-based metrics of the tearsheet, in our own code (numpy and pandas only).

Conventions, the same as empyrical's (``tests/test_tearsheet_metrics.py`` checks each one
against empyrical-reloaded to 4 decimals):

* ``returns``: simple returns of the equity curve, one per step of the run's bar clock.
* ``periods``: steps per year (252 for exchange sessions, 365 for a clock that steps every
  calendar day, as a basket with crypto does; :func:`research_lib.metrics.infer_periods_per_year`).
* Annual return: compounded, with ``years = len(returns) / periods``.
* Volatility: sample standard deviation (ddof=1) times ``sqrt(periods)``.
* Sharpe: ``mean / std(ddof=1) * sqrt(periods)``, risk-free rate 0.
* Sortino: ``mean * periods / (sqrt(mean(min(r, 0)^2)) * sqrt(periods))``.
* Calmar: annual return / |max drawdown|.
* Beta: ``cov(r, b) / var(b)``; alpha: ``(1 + mean(r - beta * b)) ** periods - 1``.

Every function returns ``nan`` where the quantity does not exist (a flat curve has no
Sharpe), never a made-up 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

NAN = float("nan")


def _arr(returns: pd.Series | np.ndarray) -> np.ndarray:
    a = np.asarray(returns, dtype=np.float64)
    return a[np.isfinite(a)]


def total_return(returns: pd.Series | np.ndarray) -> float:
    r = _arr(returns)
    return float(np.prod(1.0 + r) - 1.0) if r.size else NAN


def annual_return(returns: pd.Series | np.ndarray, periods: float) -> float:
    r = _arr(returns)
    if r.size == 0:
        return NAN
    growth = float(np.prod(1.0 + r))
    if growth <= 0:
        return -1.0
    return growth ** (periods / r.size) - 1.0


def annual_volatility(returns: pd.Series | np.ndarray, periods: float) -> float:
    r = _arr(returns)
    return float(r.std(ddof=1) * math.sqrt(periods)) if r.size > 1 else NAN


def sharpe(returns: pd.Series | np.ndarray, periods: float) -> float:
    r = _arr(returns)
    if r.size < 2:
        return NAN
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(periods)) if sd > 0 else NAN


def sortino(returns: pd.Series | np.ndarray, periods: float) -> float:
    r = _arr(returns)
    if r.size < 2:
        return NAN
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) * math.sqrt(periods)
    return float(r.mean() * periods / downside) if downside > 0 else NAN


def drawdown(returns: pd.Series) -> pd.Series:
    """Drawdown (<= 0) after each step, from the running peak of the compounded curve
    (the starting value counts as a peak)."""
    wealth = (1.0 + returns.fillna(0.0)).cumprod()
    peak = np.maximum(wealth.cummax(), 1.0)
    return wealth / peak - 1.0


def max_drawdown(returns: pd.Series | np.ndarray) -> float:
    r = _arr(returns)
    if r.size == 0:
        return NAN
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    return float(np.min(wealth / np.maximum.accumulate(wealth) - 1.0))


def calmar(returns: pd.Series | np.ndarray, periods: float) -> float:
    mdd = max_drawdown(returns)
    return annual_return(returns, periods) / abs(mdd) if mdd < 0 else NAN


def beta(returns: pd.Series | np.ndarray, bench: pd.Series | np.ndarray) -> float:
    r, b = np.asarray(returns, np.float64), np.asarray(bench, np.float64)
    ok = np.isfinite(r) & np.isfinite(b)
    r, b = r[ok], b[ok]
    if r.size < 2:
        return NAN
    bc = b - b.mean()
    var = float(np.mean(bc * bc))
    return float(np.mean(bc * r) / var) if var > 1e-30 else NAN


def alpha(returns: pd.Series | np.ndarray, bench: pd.Series | np.ndarray,
          periods: float) -> float:
    """Annualised alpha: the mean per-step return left after ``beta`` times the benchmark,
    compounded over a year."""
    r, b = np.asarray(returns, np.float64), np.asarray(bench, np.float64)
    ok = np.isfinite(r) & np.isfinite(b)
    bt = beta(r[ok], b[ok])
    if not math.isfinite(bt):
        return NAN
    return float((1.0 + np.mean(r[ok] - bt * b[ok])) ** periods - 1.0)


def rolling_sharpe(returns: pd.Series, window: int, periods: float) -> pd.Series:
    m = returns.rolling(window).mean()
    sd = returns.rolling(window).std(ddof=1)
    return (m / sd.where(sd > 0) * math.sqrt(periods)).rename("rolling Sharpe")


def rolling_volatility(returns: pd.Series, window: int, periods: float) -> pd.Series:
    return (returns.rolling(window).std(ddof=1) * math.sqrt(periods)).rename("rolling volatility")


def value_at_risk(returns: pd.Series | np.ndarray, level: float = 0.05) -> float:
    """Historical one-step VaR: the ``level`` quantile of the returns (a loss is < 0)."""
    r = _arr(returns)
    return float(np.percentile(r, 100 * level)) if r.size else NAN


def skew(returns: pd.Series | np.ndarray) -> float:
    r = _arr(returns)
    return float(pd.Series(r).skew()) if r.size > 2 else NAN


def kurtosis(returns: pd.Series | np.ndarray) -> float:
    """Excess kurtosis (0 for a normal distribution)."""
    r = _arr(returns)
    return float(pd.Series(r).kurt()) if r.size > 3 else NAN


def rolling_window(n_returns: int, periods: float) -> int:
    """Half a year of steps, shortened to a third of the run when the run is short."""
    half_year = max(2, int(round(periods / 2)))
    return max(2, min(half_year, n_returns // 3)) if n_returns >= 6 else max(2, n_returns)
