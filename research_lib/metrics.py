"""Performance metrics named as in quantstats, on an equity curve (no matplotlib here).

Conventions (quantstats' own): returns are simple per-period returns of the equity
curve; annualisation uses ``periods_per_year`` (252 for equity sessions, 365 when the
curve steps every calendar day, as with crypto); ``win_rate`` and ``profit_factor`` are
over non-zero periods; ``exposure`` is the share of periods with any position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

METRIC_NAMES = (
    "CAGR", "Sharpe", "Sortino", "Calmar", "Max Drawdown", "Volatility (ann.)",
    "Win Rate", "Profit Factor", "Exposure", "Total Return",
)


def returns_from_equity(equity: pd.Series) -> pd.Series:
    e = equity.astype("float64")
    return (e / e.shift(1) - 1.0).iloc[1:]


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Steps per year seen in the index: ~252 for exchange sessions, ~365 for 24/7 (daily
    steps); for intraday steps the bars of a trading day times 252 or 365 trading days (an
    hourly NYSE curve ~1,764, an hourly 24/7 curve ~8,760: never 365)."""
    if len(index) < 3:
        return 252.0
    days = (index[-1] - index[0]).total_seconds() / 86400.0
    if days <= 0:
        return 252.0
    gaps = np.diff(pd.DatetimeIndex(index).as_unit("ns").asi8)
    if np.median(gaps) < 86_400 * 10**9:  # intraday: bars per trading day x trading days
        local = pd.DatetimeIndex(index)
        weekend = float(np.mean(local.day_of_week >= 5))
        per_session = len(index) / max(len(np.unique(local.normalize())), 1)
        return per_session * (365.0 if weekend > 0.05 else 252.0)
    per_day = (len(index) - 1) / days
    return 365.0 if per_day > 0.8 else 252.0 if per_day > 0.5 else per_day * 365.25


def max_drawdown(equity: pd.Series | np.ndarray) -> float:
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    return float(np.min(e / peak - 1.0))


def drawdown_series(equity: pd.Series) -> pd.Series:
    return equity / equity.cummax() - 1.0


def cagr(equity: pd.Series) -> float:
    if len(equity) < 2:
        return 0.0
    years = (equity.index[-1] - equity.index[0]).total_seconds() / (365.25 * 86400.0)
    total = float(equity.iloc[-1] / equity.iloc[0])
    if years <= 0 or total <= 0:
        return float("nan") if total <= 0 else 0.0
    return total ** (1.0 / years) - 1.0


def sharpe(returns: pd.Series, periods: float) -> float:
    sd = returns.std(ddof=1)
    return float(returns.mean() / sd * math.sqrt(periods)) if sd and sd > 0 else float("nan")


def sortino(returns: pd.Series, periods: float) -> float:
    downside = math.sqrt(float((np.minimum(returns.to_numpy(), 0.0) ** 2).sum()) / len(returns)) \
        if len(returns) else 0.0
    return float(returns.mean() / downside * math.sqrt(periods)) if downside > 0 else float("nan")


def performance_table(
    equity: pd.Series,
    exposure: pd.Series | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """quantstats-named metrics for one equity curve (index: UTC timestamps)."""
    equity = equity.dropna()
    periods = periods_per_year or infer_periods_per_year(pd.DatetimeIndex(equity.index))
    r = returns_from_equity(equity)
    nz = r[r != 0]
    mdd = max_drawdown(equity)
    g = cagr(equity)
    pos, neg = nz[nz > 0].sum(), nz[nz < 0].sum()
    if exposure is not None and len(exposure):
        expo = float((exposure.reindex(equity.index).fillna(0.0).abs() > 1e-12).mean())
    else:
        expo = float((r != 0).mean()) if len(r) else 0.0
    return {
        "CAGR": g,
        "Sharpe": sharpe(r, periods) if len(r) > 1 else float("nan"),
        "Sortino": sortino(r, periods) if len(r) > 1 else float("nan"),
        "Calmar": g / abs(mdd) if mdd < 0 else float("nan"),
        "Max Drawdown": mdd,
        "Volatility (ann.)": float(r.std(ddof=1) * math.sqrt(periods)) if len(r) > 1 else float("nan"),
        "Win Rate": float((nz > 0).mean()) if len(nz) else float("nan"),
        "Profit Factor": float(pos / abs(neg)) if neg < 0 else float("nan"),
        "Exposure": expo,
        "Total Return": float(equity.iloc[-1] / equity.iloc[0] - 1.0) if len(equity) else 0.0,
    }


def metrics_frame(curves: dict[str, pd.Series],
                  exposures: dict[str, pd.Series | None] | None = None,
                  periods_per_year: float | None = None) -> pd.DataFrame:
    """Side-by-side metrics (rows: metric names; columns: strategy, benchmark, ...)."""
    exposures = exposures or {}
    cols = {name: performance_table(eq, exposures.get(name), periods_per_year)
            for name, eq in curves.items()}
    return pd.DataFrame(cols).reindex(list(METRIC_NAMES))


def buy_and_hold_curve(closes: pd.DataFrame, initial: float,
                       weights: Sequence[float] | None = None) -> pd.Series:
    """Equal-weight buy-and-hold of the given close columns from their first common bar,
    carried forward across steps where a symbol has no bar (no new price, same value)."""
    c = closes.sort_index().ffill().dropna()
    if c.empty:
        return pd.Series(dtype="float64")
    w = np.full(c.shape[1], 1.0 / c.shape[1]) if weights is None else np.asarray(weights)
    units = initial * w / c.iloc[0].to_numpy()
    return pd.Series(c.to_numpy() @ units, index=c.index, name="buy_and_hold")
