"""``OUT/sweep.html``: one self-contained page (no CDN, figures as base64 PNG) with the
results sorted best first, a heatmap of the Sharpe ratio over the first two swept
parameters, and the best point's equity against the median point's (read from their
ledgers through :func:`research_lib.ledger_read.read_run`). Figures are drawn on
``matplotlib.figure.Figure`` objects: no pyplot, no backend switched, nothing global."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from .point import METRICS

RANK_BY = "sharpe"


def ranked(table: Any) -> Any:
    """The ok points best first (Sharpe descending, NaN last, then total return, then the
    point index: a stable order), followed by the failed ones."""
    ok = table[table["status"] == "ok"]
    bad = table[table["status"] != "ok"]
    ok = ok.sort_values([RANK_BY, "total_return_pct", "point"],
                        ascending=[False, False, True], na_position="last", kind="mergesort")
    import pandas as pd

    return pd.concat([ok, bad.sort_values("point")])


def best_and_median(table: Any) -> tuple[Any, Any] | None:
    """The best ok row and the median one (the middle of the ranking), or None."""
    ok = ranked(table)
    ok = ok[ok["status"] == "ok"]
    if ok.empty:
        return None
    return ok.iloc[0], ok.iloc[(len(ok) - 1) // 2]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight",
                metadata={"Software": None})  # no version stamp: same inputs, same bytes
    return base64.b64encode(buf.getvalue()).decode("ascii")


def heatmap_png(table: Any, params: list[str]) -> str | None:
    """Mean Sharpe over the first two parameters (one row when there is one)."""
    import seaborn as sns
    from matplotlib.figure import Figure

    params = [p for p in params if p in table.columns][:2]
    ok = table[table["status"] == "ok"]
    if not params or ok.empty:
        return None
    rows = params[0]
    if len(params) == 2:
        grid = ok.pivot_table(index=rows, columns=params[1], values=RANK_BY, aggfunc="mean",
                              dropna=False)
    else:
        grid = ok.groupby(rows)[RANK_BY].mean().to_frame().T
    fig = Figure(figsize=(1.2 + 1.1 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
    ax = fig.subplots()
    sns.heatmap(grid.astype("float64"), annot=True, fmt=".2f", cmap="RdYlGn", ax=ax,
                cbar_kws={"label": "Sharpe"})
    ax.set_title(f"Sharpe by {' x '.join(params)}")
    return _png(fig)


def equity_png(runs: Path, best: Any, median: Any) -> str:
    """The best and the median point's equity curves, from their ledgers."""
    from matplotlib.figure import Figure

    from ..ledger_read import read_run

    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    for label, row in (("best", best), ("median", median)):
        eq = read_run(runs / str(row["run_id"]))["equity"]["equity"]
        ax.plot(eq.index, eq.to_numpy(), label=f"{label}: point {int(row['point'])} "
                f"(Sharpe {row[RANK_BY]:.2f})")
    ax.set_ylabel("equity")
    ax.legend(loc="best")
    fig.autofmt_xdate()
    return _png(fig)


def _cell(v: Any) -> str:
    import pandas as pd

    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return html.escape("" if v is None or v is pd.NA else str(v))


def write_report(table: Any, params: list[str], runs: Path, path: Path, sweep_id: str) -> Path:
    """Write ``path`` (the sweep report) and return it."""
    order = ranked(table)
    cols = [c for c in (*params, *METRICS, "run_id", "status", "error", "wall_s")
            if c in order.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r[c])}</td>" for c in cols) + "</tr>"
                   for _, r in order.iterrows())
    parts = [f"<h1>Sweep {html.escape(sweep_id)}</h1>",
             f"<p>{len(table)} points, {int((table['status'] == 'ok').sum())} ok, "
             f"{int((table['status'] != 'ok').sum())} failed; ranked by Sharpe "
             "(annualised, risk-free 0).</p>"]
    hm = heatmap_png(table, params)
    if hm:
        parts.append(f'<h2>Heatmap</h2><img alt="heatmap" src="data:image/png;base64,{hm}">')
    pair = best_and_median(table)
    if pair is not None:
        parts.append("<h2>Best point against the median point</h2><img alt=\"equity\" "
                     f'src="data:image/png;base64,{equity_png(runs, *pair)}">')
    parts.append(f"<h2>Results</h2><table><thead><tr>{head}</tr></thead>"
                 f"<tbody>{body}</tbody></table>")
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Sweep "
            f"{html.escape(sweep_id)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
            "font-size:12px}</style></head><body>" + "".join(parts) + "</body></html>")
    path.write_text(page, encoding="utf-8")
    return path
