"""Zoomable charts of the tearsheet (plotly), rendered as HTML fragments that call a
``Plotly`` already on the page. :func:`plotly_js` is the one ``<script>`` that defines it,
shown once at the top of the report (the library, inlined: nothing is fetched from a CDN,
and the page works offline). Element ids are fixed names, so the same run gives the same
HTML."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .html import Html

CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
PALETTE = ["#1f77b4", "#7f7f7f", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#bcbd22", "#17becf"]


def plotly_js() -> Html:
    """The plotly.js library in one inline ``<script>`` (about 4.7 MB): shown once, before
    the first chart."""
    from plotly.offline import get_plotlyjs

    return Html(f'<script type="text/javascript">{get_plotlyjs()}</script>')


def render(fig: Any, div_id: str, height: int = 420) -> Html:
    import plotly.io as pio

    fig.update_xaxes(type="date")
    fig.update_layout(height=height, margin={"l": 70, "r": 20, "t": 50, "b": 40},
                      template="plotly_white", hovermode="x unified",
                      legend={"orientation": "h", "y": -0.12})
    return Html(pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                            config=CONFIG, validate=False))


def _x(index: pd.Index) -> np.ndarray:
    """Timestamps as milliseconds since the epoch (UTC) on a date axis: a typed array in
    the page (plotly encodes numpy arrays in base64), a tenth of the size of date strings."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return (idx.as_unit("ns").asi8 // 1_000_000).astype(np.float64)


def _y(values: object) -> np.ndarray:
    """Values as float32 (7 significant digits, more than a chart shows): half the bytes."""
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def equity_chart(curves: dict[str, pd.Series], drawdown: pd.Series, title: str) -> Html:
    """Equity of the strategy and each benchmark (account currency, log scale), and the
    strategy's drawdown (%), one zoom for both."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    for k, (name, c) in enumerate(curves.items()):
        fig.add_scatter(x=_x(c.index), y=_y(c.to_numpy()), name=name, mode="lines",
                        line={"width": 2.0 if k == 0 else 1.2, "color": PALETTE[k % 10]},
                        row=1, col=1)
    fig.add_scatter(x=_x(drawdown.index), y=_y(drawdown.to_numpy() * 100.0), name="drawdown",
                    mode="lines", fill="tozeroy", line={"width": 0.8, "color": "#d62728"},
                    showlegend=False, row=2, col=1)
    fig.update_yaxes(title_text="equity (account currency, log)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="drawdown (%)", ticksuffix=" %", row=2, col=1)
    fig.update_layout(title={"text": title, "font": {"size": 14}})
    return render(fig, "rl-equity", height=560)


def exposure_chart(exposure: pd.DataFrame, limit: float | None, n_positions: pd.Series) -> Html:
    """Gross and net exposure (% of equity) and the number of open positions."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    x = _x(exposure.index)
    fig.add_scatter(x=x, y=_y(exposure["gross"].to_numpy() * 100.0), name="gross / equity",
                    mode="lines", line={"width": 1.6, "color": PALETTE[0]}, row=1, col=1)
    fig.add_scatter(x=x, y=_y(exposure["net"].to_numpy() * 100.0), name="net / equity",
                    mode="lines", line={"width": 1.0, "color": PALETTE[2], "dash": "dot"},
                    row=1, col=1)
    title = "Exposure over time"
    peak = float(np.nanmax(exposure["gross"].to_numpy())) if len(exposure) else 0.0
    if limit and peak > 0.4 * float(limit):
        fig.add_hline(y=float(limit) * 100.0, line={"color": "#d62728", "dash": "dash"},
                      annotation_text=f"gross limit {float(limit) * 100:.0f} %", row=1, col=1)
    elif limit:
        title += f" (gross limit {float(limit) * 100:.0f} % of equity, far above: not drawn)"
    fig.add_scatter(x=_x(n_positions.index), y=n_positions.to_numpy(), name="open positions",
                    mode="lines", line={"width": 1.0, "color": PALETTE[3], "shape": "hv"},
                    row=2, col=1)
    fig.update_yaxes(title_text="exposure (% of equity)", ticksuffix=" %", row=1, col=1)
    top = int(n_positions.max()) if len(n_positions) else 1
    fig.update_yaxes(title_text="positions (count)", rangemode="tozero", tick0=0,
                     dtick=max(1, -(-top // 4)), row=2, col=1)
    fig.update_layout(title={"text": title, "font": {"size": 14}})
    return render(fig, "rl-exposure", height=460)


def symbol_pnl_chart(pnl: pd.DataFrame, many: int = 20, each: int = 5) -> Html:
    """Cumulative P&L per symbol (account currency). Past ``many`` symbols: the ``each``
    best and ``each`` worst by final P&L, and the rest summed in one line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if pnl.shape[1] > many:
        final = pnl.iloc[-1].sort_values(ascending=False, kind="stable")
        keep = list(final.index[:each]) + list(final.index[-each:])
        rest = [c for c in pnl.columns if c not in keep]
        shown = pnl[keep].copy()
        shown[f"other {len(rest)} symbols (sum)"] = pnl[rest].sum(axis=1)
        title = (f"Cumulative P&L: {each} best and {each} worst of {pnl.shape[1]} symbols, "
                 "the rest summed")
    else:
        shown = pnl
        title = "Cumulative P&L per symbol"
    x = _x(shown.index)
    for k, c in enumerate(shown.columns):
        other = str(c).startswith("other ")
        fig.add_scatter(x=x, y=_y(shown[c].to_numpy()), name=str(c), mode="lines",
                        line={"width": 1.6 if other else 1.2,
                              "color": "#000000" if other else PALETTE[k % 10],
                              "dash": "dash" if other else "solid"})
    fig.update_yaxes(title_text="P&L (account currency)")
    fig.update_layout(title={"text": title, "font": {"size": 14}})
    return render(fig, "rl-symbol-pnl", height=440)


def price_fills_chart(marks: pd.DataFrame, fills: pd.DataFrame, symbols: list[str],
                      labels: dict[str, str]) -> Html:
    """One symbol at a time (a menu picks it): its mark (price) with buy and sell fills."""
    import plotly.graph_objects as go

    fig = go.Figure()
    per = 3
    for k, s in enumerate(symbols):
        c = marks[s].dropna() if s in marks.columns else pd.Series(dtype="float64")
        f = fills[fills["symbol"] == s] if len(fills) else fills
        vis = k == 0
        fig.add_scatter(x=_x(c.index), y=_y(c.to_numpy()), name=f"{s} mark", mode="lines",
                        line={"width": 1.0, "color": "#444"}, visible=vis)
        for side, sign, sym, col in (("buy", 1, "triangle-up", "#2ca02c"),
                                     ("sell", -1, "triangle-down", "#d62728")):
            g = f[np.sign(f["qty"].to_numpy(np.float64)) == sign] if len(f) else f
            fig.add_scatter(x=_x(pd.DatetimeIndex(g["ts"])) if len(g) else [],
                            y=g["price"].to_numpy() if len(g) else [],
                            name=f"{s} {side} fill", mode="markers",
                            marker={"symbol": sym, "size": 8, "color": col}, visible=vis)
    buttons = []
    for k, s in enumerate(symbols):
        vis = [False] * (per * len(symbols))
        vis[per * k: per * k + per] = [True] * per
        buttons.append({"label": s, "method": "update",
                        "args": [{"visible": vis},
                                 {"title": {"text": f"Price and fills: {labels.get(s, s)}"}}]})
    first = symbols[0] if symbols else ""
    fig.update_layout(
        title={"text": f"Price and fills: {labels.get(first, first)}", "font": {"size": 14}},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left",
                      "y": 1.0, "yanchor": "bottom", "pad": {"b": 4}}]
        if len(symbols) > 1 else [])
    if len(symbols) > 1:
        fig.update_layout(title={"x": 0.5, "xanchor": "center"})
    fig.update_yaxes(title_text="price (quote currency)")
    return render(fig, "rl-price-fills", height=420)
