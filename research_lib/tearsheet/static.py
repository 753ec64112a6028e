"""Statistical figures of the tearsheet (matplotlib and seaborn), as ``Figure`` objects:
no pyplot state, nothing shown here; a notebook displays them. Every y-axis names its
unit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

PCT = FuncFormatter(lambda v, _pos: f"{v:.4g} %" if round(v, 6) != 0 else "0 %")
COLORS = {"strategy": "#1f77b4", "basket": "#7f7f7f", "scaled": "#ff7f0e", "vol": "#2ca02c"}


def _fig(rows: int = 1, cols: int = 1, w: float = 11.0, h: float = 3.0,
         **kw: Any) -> tuple[Figure, Any]:
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(w, h * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def monthly_heatmap(table: pd.DataFrame) -> Figure:
    """Monthly returns (%), one row per year; the last column is the year."""
    import seaborn as sns

    data = table * 100.0
    h = max(1.6, 0.36 * len(data) + 1.0)
    fig, ax = _fig(h=h)
    a = ax[0, 0]
    lim = float(np.nanmax(np.abs(data.drop(columns="Year").to_numpy()))) if data.size else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    labels = np.vectorize(lambda v: "" if not np.isfinite(v) else
                          ("0.0" if round(v, 1) == 0 else f"{v:.1f}"))(data.to_numpy())
    sns.heatmap(data, ax=a, annot=labels, fmt="", cmap="RdYlGn", center=0.0, vmin=-lim,
                vmax=lim, linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8},
                cbar_kws={"label": "return (%)", "format": PCT})
    a.axvline(12, color="0.2", lw=1.5)
    a.set_xlabel("month (Year: compounded over the year)")
    a.set_ylabel("year")
    a.set_title("Monthly returns (%)", fontsize=10)
    a.tick_params(axis="y", rotation=0)
    return fig


def yearly_bars(yearly: pd.DataFrame, names: list[str]) -> Figure:
    """Return per calendar year (%): the strategy beside each benchmark."""
    fig, ax = _fig(h=3.2)
    a = ax[0, 0]
    cols = ["Strategy", *names]
    years = yearly.index.astype(str)
    width = 0.8 / len(cols)
    palette = [COLORS["strategy"], COLORS["basket"], COLORS["scaled"], COLORS["vol"]]
    for k, c in enumerate(cols):
        a.bar(np.arange(len(years)) + (k - (len(cols) - 1) / 2) * width,
              yearly[c].to_numpy() * 100.0, width, label=c, color=palette[k % len(palette)])
    a.set_xticks(np.arange(len(years)), years)
    a.axhline(0, color="0.2", lw=0.8)
    a.yaxis.set_major_formatter(PCT)
    a.set_ylabel("return in the year (%)")
    a.set_title("Yearly returns", fontsize=10)
    a.legend(fontsize=8, ncol=2)
    return fig


def return_distribution(step_returns: pd.Series, scaled: pd.Series, scaled_name: str,
                        trade_returns: pd.Series) -> Figure:
    """Left: step returns of the strategy against the exposure-matched basket (%).
    Right: returns of the closed round trips (%)."""
    import seaborn as sns

    fig, ax = _fig(1, 2, h=3.2)
    a, b = ax[0, 0], ax[0, 1]
    frame = pd.concat([
        pd.DataFrame({"return (%)": step_returns.to_numpy() * 100.0, "series": "strategy"}),
        pd.DataFrame({"return (%)": scaled.to_numpy() * 100.0, "series": scaled_name}),
    ], ignore_index=True).dropna()
    frame = frame[frame["return (%)"] != 0.0]  # flat steps (no position) would swamp the plot
    if len(frame):
        sns.histplot(frame, x="return (%)", hue="series", ax=a, bins=80, stat="percent",
                     element="step", common_norm=False,
                     palette=[COLORS["strategy"], COLORS["scaled"]])
        leg = a.get_legend()
        if leg is not None:
            leg.set_title(None)
            leg.set_loc("upper left")
            for t in leg.get_texts():
                t.set_fontsize(8)
    a.set_ylabel("share of steps (%)")
    a.yaxis.set_major_formatter(PCT)
    a.xaxis.set_major_formatter(PCT)
    a.set_title("Step returns, steps with a change (%)", fontsize=10)
    tr = trade_returns.dropna().to_numpy() * 100.0
    if len(tr):
        sns.histplot(x=tr, ax=b, bins=min(50, max(5, len(tr) // 3)), stat="count",
                     color=COLORS["strategy"])
        b.axvline(0, color="0.2", lw=0.8)
    b.set_xlabel("round-trip return (%)")
    b.set_ylabel("round trips (count)")
    b.yaxis.set_major_locator(MaxNLocator(integer=True))
    b.xaxis.set_major_formatter(PCT)
    b.set_title(f"Closed round trips: {len(tr)}", fontsize=10)
    return fig


def rolling_panels(sharpe: dict[str, pd.Series], vol: dict[str, pd.Series],
                   window: int) -> Figure:
    """Rolling Sharpe (annualised) and rolling volatility (% annualised) over ``window``
    steps, the strategy against the exposure-matched basket."""
    fig, ax = _fig(2, 1, h=2.6, sharex=True)
    a, b = ax[0, 0], ax[1, 0]
    palette = [COLORS["strategy"], COLORS["scaled"], COLORS["basket"]]
    for k, (name, s) in enumerate(sharpe.items()):
        a.plot(s.index, s.to_numpy(), lw=1.0, label=name, color=palette[k % 3])
    a.axhline(0, color="0.2", lw=0.8)
    a.set_ylabel("Sharpe (annualised)")
    a.set_title(f"Rolling Sharpe and volatility over {window} steps", fontsize=10)
    a.legend(fontsize=8)
    for k, (name, s) in enumerate(vol.items()):
        b.plot(s.index, s.to_numpy() * 100.0, lw=1.0, label=name, color=palette[k % 3])
    b.yaxis.set_major_formatter(PCT)
    b.set_ylabel("volatility (% annualised)")
    return fig


def underwater(dd: pd.Series, worst: pd.DataFrame) -> Figure:
    """Drawdown from the running peak (%), the five worst periods shaded and numbered."""
    fig, ax = _fig(h=2.8)
    a = ax[0, 0]
    a.fill_between(dd.index, dd.to_numpy() * 100.0, 0, color="tab:red", alpha=0.35, lw=0)
    a.plot(dd.index, dd.to_numpy() * 100.0, color="tab:red", lw=0.7)
    end = dd.index[-1] if len(dd) else None
    for k, r in enumerate(worst.itertuples(), start=1):
        stop = r.recovery if r.recovery is not pd.NaT and pd.notna(r.recovery) else end
        a.axvspan(r.peak, stop, color="0.5", alpha=0.12)
        a.annotate(str(k), (r.trough, r.depth * 100.0), fontsize=8, ha="center", va="top")
    a.yaxis.set_major_formatter(PCT)
    a.set_ylabel("drawdown from peak (%)")
    a.set_title("Underwater: the five worst drawdowns shaded and numbered", fontsize=10)
    return fig


def attribution_bars(attr: pd.DataFrame, many: int = 20, each: int = 10) -> Figure:
    """Contribution of each symbol to the return (% of initial equity); past ``many``
    symbols, the ``each`` best and ``each`` worst with the rest summed in one bar."""
    a_df = attr.sort_values("contribution", ascending=True, kind="stable")
    if len(a_df) > many:
        top, bottom = a_df.tail(each), a_df.head(each)
        rest = a_df.iloc[each:len(a_df) - each]
        a_df = pd.concat([bottom, top], ignore_index=True)
        title = (f"Contribution to return: {each} worst and {each} best of {len(attr)} "
                 f"symbols (the other {len(rest)} add "
                 f"{rest['contribution'].sum() * 100:+.2f} %)")
    else:
        title = "Contribution to return per symbol"
    fig, ax = _fig(h=max(2.2, 0.26 * len(a_df) + 0.8))
    a = ax[0, 0]
    vals = a_df["contribution"].to_numpy() * 100.0
    a.barh(a_df["symbol"].astype(str), vals,
           color=["#2ca02c" if v >= 0 else "#d62728" for v in vals])
    a.axvline(0, color="0.2", lw=0.8)
    a.xaxis.set_major_formatter(PCT)
    a.set_xlabel("P&L / initial equity (%)")
    a.set_title(title, fontsize=10)
    return fig


def turnover_costs(yearly: pd.DataFrame) -> Figure:
    """Per year: turnover (traded notional / mean equity) and costs (% of mean equity)."""
    fig, ax = _fig(1, 2, h=2.8)
    a, b = ax[0, 0], ax[0, 1]
    years = yearly.index.astype(str)
    a.bar(years, yearly["Turnover"].to_numpy(), color=COLORS["strategy"])
    a.set_ylabel("turnover (x mean equity)")
    a.set_title("Turnover per year", fontsize=10)
    b.bar(years, yearly["Costs"].to_numpy() * 1e4, color="tab:red")
    b.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.3g} bps"))
    b.set_ylabel("costs (bps of mean equity)")
    b.set_title("Cost drag per year: commission + slippage", fontsize=10)
    for x in (a, b):
        x.tick_params(axis="x", rotation=45 if len(years) > 8 else 0)
    return fig


def latency_histogram(lat_ms: pd.Series) -> Figure:
    """End-to-decision latency per step (microseconds, log scale)."""
    fig, ax = _fig(h=2.6)
    a = ax[0, 0]
    if len(lat_ms):
        us = np.clip(lat_ms.to_numpy() * 1000.0, 1.0, None)
        bins = np.geomspace(us.min(), max(us.max(), us.min() * 1.01), 60)
        a.hist(us, bins=bins, color=COLORS["strategy"])
        a.set_xscale("log")
        plain = FuncFormatter(lambda v, _p: f"{v:,.0f}")
        a.xaxis.set_major_formatter(plain)
        a.xaxis.set_minor_formatter(plain)
        a.tick_params(axis="x", which="minor", labelsize=7)
        p50, p99 = np.percentile(us, [50, 99])
        a.axvline(p50, color="tab:green", ls="--", label=f"p50 {p50:,.0f} us")
        a.axvline(p99, color="tab:red", ls="--", label=f"p99 {p99:,.0f} us")
        a.legend(fontsize=8)
    a.set_xlabel("end-to-decision latency per step (microseconds, log scale)")
    a.set_ylabel("steps (count)")
    a.set_title("Latency: new bar in -> features -> route -> infer -> risk -> order decided",
                fontsize=10)
    return fig
