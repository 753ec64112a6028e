"""The tearsheet of one paper run: the header, the research story (returns, benchmarks,
drawdowns, rolling risk, distribution, trades, attribution, exposure and costs) and an
operations section last. Each method returns a value a notebook displays (``Html``, a
matplotlib ``Figure`` or a DataFrame); the notebook holds no logic.

Built from the ledger alone (:class:`~research_lib.tearsheet.data.RunData`), so it works on
any run: a replay, a fast replay, a resumed run, a live session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cached_property, wraps
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import interactive, static
from . import metrics as m
from .data import RunData
from .html import CSS, Html, download_link, esc, fmt, join, table
from .tables import RETURN_METRICS, activity, drawdown_periods, monthly_table, return_metrics
from .tables import yearly_table as _yearly
from .trades import attribution, round_trips, trade_stats

MANY = 20  # past this many symbols, aggregate views replace per-symbol ones
TRADE_TEXT = ("symbol", "direction", "status")
TRADE_NAMES = {"entry_ts": "entry", "exit_ts": "exit", "holding_days": "held",
               "max_qty": "max qty", "entry_price": "entry price (avg)",
               "exit_price": "exit price (avg; mark if open)", "entry_cost": "entry cost",
               "pnl": "P&L (net)", "return": "return on entry cost"}
ROUTE_TEXT = ("symbol", "served as", "class", "models used", "shadow model", "fallback reason")
ATTR_NAMES = {"pnl": "P&L (net)", "contribution": "contribution (P&L / initial)",
              "round_trips": "closed trips", "win_rate": "win rate (closed trips)",
              "time_in_market": "time in market", "mean_weight": "mean weight",
              "costs": "commission + slippage"}


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the run's config snapshot (canonical JSON), first 16 hex digits."""
    text = json.dumps(config or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _window_text(window: Any) -> str:
    """A model's training window as a reader wants it: ``trained 1999-01-04 to 2015-12-31``
    (a card's ``{"train_start", "train_end"}``), else the text as given."""
    if isinstance(window, dict):
        start, end = window.get("train_start"), window.get("train_end")
        if not end:
            return "training window not known"
        return f"trained {start} to {end}" if start else f"trained to {end}"
    return str(window)


def sample_stamp(sample: dict[str, Any] | None) -> tuple[str, str]:
    """(short stamp, the sentence beside it) from the summary's ``sample`` key ("unknown"
    without it). The sentence does not repeat the stamp: how many decisions fell inside a
    deciding model's training window, and each deciding model's window."""
    if not sample or "stamp" not in sample:
        return "sample: unknown", ("this run records no training windows to compare its "
                                   "period with")
    stamp = str(sample["stamp"])
    n = sample.get("in_sample_decisions")
    models = sample.get("models") or {}
    detail = "; ".join(f"{k}: {_window_text(v)}" for k, v in sorted(models.items())) if \
        isinstance(models, dict) else str(models)
    if models == {}:
        detail = "no model with a training window decided"
    if n:
        text = f"{n} decision(s) inside a deciding model's training window"
    elif "in_sample_decisions" in sample:
        text = "no decision inside a deciding model's training window"
    else:
        text = ""
    parts = [t for t in (text, detail) if t]
    return stamp, " (".join(parts) + (")" if len(parts) == 2 else "") if parts else stamp


def _needs_steps(method: Callable[..., Any]) -> Callable[..., Any]:
    """A section of a run without steps says so instead of failing."""
    @wraps(method)
    def wrapper(self: Tearsheet, *args: Any, **kwargs: Any) -> Any:
        if self.empty:
            return Html('<p class="rl-note">No committed steps in this run: nothing to '
                        "show here.</p>")
        return method(self, *args, **kwargs)

    return wrapper


def source_label(source: Any) -> str:
    """The data source without a local path: ``csv:/home/me/data/spy.csv`` -> ``csv:spy.csv``
    (a report is shared; where the files were on one machine is not part of it)."""
    text = str(source or "?")
    kind, sep, where = text.partition(":")
    if sep and where:
        from pathlib import PurePath

        return f"{kind}:{PurePath(where.rstrip('/')).name}"
    return text


class Tearsheet:
    """Everything the paper-session report shows, from one run."""

    def __init__(self, data: RunData) -> None:
        self.data = data

    # ------------------------------------------------------------------ derived values
    @property
    def meta(self) -> dict[str, Any]:
        return self.data.meta

    @property
    def run(self) -> dict[str, Any]:
        return self.data.run

    @property
    def empty(self) -> bool:
        return self.data.equity.empty

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Round trips (see :mod:`research_lib.tearsheet.trades`), open ones marked."""
        last_ts = self.data.equity.index[-1] if not self.empty else None
        return round_trips(self.run["fills"], self.data.last_marks, last_ts)

    @cached_property
    def attribution(self) -> pd.DataFrame:
        return attribution(self.trades, self.data.weights, self.data.initial,
                           self.meta.get("labels") or {})

    @cached_property
    def yearly(self) -> pd.DataFrame:
        d = self.data
        return _yearly(d.returns, d.benchmarks, d.equity, d.exposure["gross"], self.run["fills"])

    @cached_property
    def activity(self) -> dict[str, float]:
        d = self.data
        return activity(d.equity, d.exposure["gross"], self.run["fills"], d.initial, d.periods)

    @property
    def sample(self) -> dict[str, Any] | None:
        s = (self.data.summary or {}).get("sample")
        return s if s is not None else self.meta.get("sample")

    def symbols_text(self, limit: int = 12) -> str:
        syms = self.data.symbols
        if len(syms) <= limit:
            return ", ".join(syms)
        return f"{len(syms)} symbols: {', '.join(syms[:limit])}, ..."

    @property
    def title(self) -> str:
        """The page title: what, when, and whether it is in or out of sample."""
        if self.empty:
            return f"Paper session {self.meta.get('run_id', '')}: no steps"
        e = self.data.equity.index
        stamp, _ = sample_stamp(self.sample)
        return (f"Paper session: {self.symbols_text(4)}, {e[0]:%Y-%m-%d} to {e[-1]:%Y-%m-%d} "
                f"[{stamp}]")

    def models_used(self) -> list[tuple[str, str]]:
        """(model, sha256 or what it is) for every model that decided or shadowed."""
        d = self.run["decisions"]
        names: list[str] = []
        for col in ("model", "shadow_model"):
            if col in d.columns:
                names += [str(x) for x in d[col].dropna().unique()]
        shas = dict((self.meta.get("inputs") or {}).get("models") or {})
        reg = ((self.meta.get("config") or {}).get("assets") or {}).get("models") or {}
        for k, v in reg.items():
            if isinstance(v, dict) and v.get("sha256"):
                shas.setdefault(k, v["sha256"])
        out = []
        for n in sorted(set(names)):
            if n.startswith("baseline:"):
                out.append((n, "rule baseline, no model file"))
            else:
                out.append((n, f"sha256 {shas[n]}" if n in shas else "sha256 not recorded"))
        return out

    # ------------------------------------------------------------------ header
    def header(self) -> Html:
        """The header block (and the page's style and the charting library, once)."""
        meta, d = self.meta, self.data
        spec = meta.get("spec") or {}
        cfg = meta.get("config") or {}
        sess = cfg.get("session") or {}
        stamp, stamp_text = sample_stamp(self.sample)
        cls = {"IN-SAMPLE": "rl-stamp-in", "OUT-OF-SAMPLE": "rl-stamp-out"}.get(
            stamp, "rl-stamp-unknown")
        from .. import __version__

        if self.empty:
            period = "no steps committed"
        else:
            e = d.equity.index
            period = (f"{e[0]:%Y-%m-%d %H:%M} to {e[-1]:%Y-%m-%d %H:%M} UTC, {len(e):,d} steps "
                      f"({d.periods:.0f} steps a year)")
        models = "<br>".join(f"{esc(n)} <code>{esc(s)}</code>" for n, s in self.models_used())
        proxies = {k: v for k, v in (meta.get("proxies") or {}).items() if v}
        rows = [
            ("Sample", f'<span class="rl-stamp {cls}">{esc(stamp)}</span> {esc(stamp_text)}'
             if stamp_text != stamp else f'<span class="rl-stamp {cls}">{esc(stamp)}</span>'),
            ("Period", esc(period)),
            ("Symbols", esc(self.symbols_text(40))),
            *([("Proxies", "<br>".join(esc(f"{k}: {v}") for k, v in sorted(proxies.items())))]
              if proxies and len(proxies) <= MANY else
              [("Proxies", esc(f"{len(proxies)} symbols are served by proxies"))] if proxies
              else []),
            ("Models", models or "none decided"),
            ("Run", esc(f"{meta.get('run_id', '')}: {spec.get('mode', '?')}, engine "
                        f"{meta.get('engine', '?')}, source {source_label(spec.get('source'))}, "
                        f"interval {spec.get('interval', '?')}"
                        + (", DRY RUN (no fills)" if spec.get("dry_run") else ""))),
            ("Config", f"digest <code>{config_digest(cfg)}</code> (sha256 of the recorded "
                       f"config); costs: slippage {esc(sess.get('slippage_bps', '?'))} bps, "
                       f"commission {esc(sess.get('commission_bps', '?'))} bps"),
            ("Capital", esc(f"{d.initial:,.2f} initial")),
            ("Version", esc(f"research_lib {__version__}, ledger schema "
                            f"{meta.get('schema_version', '?')}")),
        ]
        body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
        head = (f'<div class="rl-header"><h1>{esc(self.title)}</h1><table>{body}</table>'
                "</div>")
        return Html(CSS + interactive.plotly_js().body + head, title=self.title)

    # ------------------------------------------------------------------ key numbers
    def metrics(self) -> pd.DataFrame:
        """Numbers (fractions, ratios) per metric, strategy beside each benchmark."""
        d = self.data
        cols = {"Strategy": return_metrics(d.returns, d.basket_returns, d.periods)}
        for name, b in d.benchmarks.items():
            cols[name] = return_metrics(b, d.basket_returns, d.periods)
        return pd.DataFrame(cols).reindex([k for k, _ in RETURN_METRICS])

    @_needs_steps
    def metrics_table(self) -> Html:
        t = self.metrics()
        units = dict(RETURN_METRICS)
        rows = [[k, *(fmt(v, units[k]) for v in t.loc[k])] for k in t.index]
        a, ts = self.activity, trade_stats(self.trades)
        dash = ["n/a"] * (t.shape[1] - 1)
        rows += [
            ["Time in market (steps with any position)", fmt(a["time_in_market"], "%"), *dash],
            ["Mean gross exposure (of equity)", fmt(a["mean_gross"], "%"),
             *[fmt(v, "%") for v in self._bench_exposures()]],
            ["Closed round trips", fmt(ts["round_trips"], "count"), *dash],
            ["Win rate of closed round trips", fmt(ts["win_rate"], "%"), *dash],
            ["Profit factor of round trips (gains / losses)", fmt(ts["profit_factor"], "ratio"),
             *dash],
            ["Mean holding time of a round trip", fmt(ts["avg_holding_days"], "days"), *dash],
            ["Turnover (traded notional / mean equity, per year)",
             fmt(a["turnover_per_year"], "x"), *dash],
            ["Costs paid (commission + slippage)", fmt(a["costs"], "$") + " ("
             + fmt(a["costs_pct_initial"], "bps") + " of initial)",
             *["none (no costs)"] * len(dash)],
            ["Cost drag (costs / mean equity, per year)", fmt(a["cost_drag_per_year"], "bps"),
             *["none"] * len(dash)],
        ]
        df = pd.DataFrame(rows, columns=["Metric", *t.columns])
        note = ("Fractions are shown as percent. Step returns are per bar of the run's clock; "
                f"annualised with {self.data.periods:.0f} steps a year. Benchmarks: the basket "
                "bought in equal weights, each symbol at its first price (its share in cash "
                "until then; never rebalanced, no costs), and the same basket scaled to the strategy's "
                "mean gross exposure and to its volatility (that share in the basket, the "
                "rest in cash, reset every step). Alpha and beta are against the basket.")
        return join(table(df, caption=None), f'<p class="rl-note">{esc(note)}</p>')

    def _bench_exposures(self) -> list[float]:
        d = self.data
        out = [1.0, d.mean_exposure]
        if np.isfinite(d.vol_ratio):
            out.append(d.vol_ratio)
        return out[: len(d.benchmarks)]

    # ------------------------------------------------------------------ charts
    @_needs_steps
    def equity_chart(self) -> Html:
        d = self.data
        curves = {"Strategy": d.equity}
        for name, b in d.benchmarks.items():
            curves[name] = d.curve(b)
        return interactive.equity_chart(curves, m.drawdown(d.returns),
                                        "Equity against the basket and the scaled baskets")

    @_needs_steps
    def monthly_heatmap(self) -> Figure:
        return static.monthly_heatmap(monthly_table(self.data.returns))

    @_needs_steps
    def yearly_table(self) -> Html:
        y = self.yearly
        units = {c: "%" for c in y.columns}
        units["Turnover"] = "x"
        units["Costs"] = "bps"
        return table(y.rename_axis("Year"), units, index=True,
                     rename={"Turnover": "Turnover (x mean equity)",
                             "Costs": "Costs (of mean equity)"})

    @_needs_steps
    def yearly_figure(self) -> Figure:
        names = list(self.data.benchmarks)[:2]
        return static.yearly_bars(self.yearly, names)

    def drawdowns(self) -> pd.DataFrame:
        return drawdown_periods(self.data.returns, 5)

    @_needs_steps
    def drawdown_table(self) -> Html:
        t = self.drawdowns().copy()
        t.insert(0, "#", range(1, len(t) + 1))
        t["recovery"] = [fmt(x, "date") if pd.notna(x) else "not recovered" for x in
                         t["recovery"]]
        return table(t, {"peak": "date", "trough": "date", "depth": "%",
                         "days_to_trough": "days", "days_to_recover": "days", "#": "count"},
                     rename={"depth": "depth (from peak)", "days_to_trough": "peak to trough",
                             "days_to_recover": "peak to recovery"},
                     caption="The five worst drawdowns (depth from the running peak; days "
                             "are calendar days).")

    @_needs_steps
    def drawdown_figure(self) -> Figure:
        return static.underwater(m.drawdown(self.data.returns), self.drawdowns())

    @_needs_steps
    def rolling_figure(self) -> Figure:
        d = self.data
        w = m.rolling_window(len(d.returns), d.periods)
        name = list(d.benchmarks)[1] if len(d.benchmarks) > 1 else list(d.benchmarks)[0]
        b = d.benchmarks[name]
        return static.rolling_panels(
            {"strategy": m.rolling_sharpe(d.returns, w, d.periods),
             name: m.rolling_sharpe(b, w, d.periods)},
            {"strategy": m.rolling_volatility(d.returns, w, d.periods),
             name: m.rolling_volatility(b, w, d.periods)}, w)

    @_needs_steps
    def distribution_figure(self) -> Figure:
        d = self.data
        name = list(d.benchmarks)[1] if len(d.benchmarks) > 1 else list(d.benchmarks)[0]
        closed = self.trades[self.trades["status"] == "closed"] if len(self.trades) else \
            self.trades
        return static.return_distribution(d.returns, d.benchmarks[name], name,
                                          closed["return"] if len(closed) else
                                          pd.Series(dtype="float64"))

    # ------------------------------------------------------------------ trades
    def trades_csv(self) -> bytes:
        return self.trades.to_csv(index=False, float_format="%.10g").encode()

    def trades_table(self, limit: int = 1000) -> Html:
        t = self.trades
        ts = trade_stats(t)
        name = f"trades_{self.meta.get('run_id', 'run')}.csv"
        link = download_link(self.trades_csv(), name, f"Download all {len(t)} round trips (CSV)")
        head = (f'<p class="rl-note">{int(ts["round_trips"])} closed and '
                f'{int(ts["open_trips"])} open round trip(s); win rate of closed trips '
                f'{fmt(ts["win_rate"], "%")}, mean return {fmt(ts["avg_return"], "%")}, mean '
                f'holding {fmt(ts["avg_holding_days"], "days")}. P&amp;L by average cost (as '
                "the broker), net of commissions; slippage is inside the fill prices. "
                f"{link}</p>")
        shown = t if len(t) <= limit else t.tail(limit)
        if len(t) > limit:
            head += f'<p class="rl-note">The {limit} latest of {len(t)} shown; the CSV has all.</p>'
        units = {"entry_ts": "date", "exit_ts": "date", "holding_days": "days", "fills": "count",
                 "max_qty": "qty", "entry_price": "price", "exit_price": "price",
                 "entry_cost": "$", "pnl": "$", "return": "%", "commission": "$",
                 "slippage": "$"}
        return join(head, table(shown, units, scroll=True, text_columns=TRADE_TEXT,
                                rename=TRADE_NAMES))

    # ------------------------------------------------------------------ attribution
    def attribution_table(self) -> Html:
        a = self.attribution
        units = {"pnl": "$", "contribution": "%", "round_trips": "count", "win_rate": "%",
                 "time_in_market": "%", "mean_weight": "%", "costs": "$"}
        if len(a) > MANY:
            top, bottom = a.head(10), a.tail(10)
            return join(table(top, units, caption=f"Top 10 of {len(a)} symbols by P&L",
                              text_columns=("symbol", "served as"), rename=ATTR_NAMES),
                        table(bottom, units, caption="Bottom 10 by P&L",
                              text_columns=("symbol", "served as"), rename=ATTR_NAMES))
        return table(a, units, text_columns=("symbol", "served as"), rename=ATTR_NAMES,
                     caption="P&L per symbol: its round trips (open ones marked), "
                                       "net of commissions; contribution = P&L / initial "
                                       "equity.")

    @_needs_steps
    def attribution_figure(self) -> Figure:
        return static.attribution_bars(self.attribution, MANY, 10)

    def symbol_pnl(self) -> pd.DataFrame:
        """Cumulative P&L per symbol and step: realised + unrealised - fees (the ledger's
        position snapshots)."""
        d = self.data
        r, u, f = d._wide("realized"), d._wide("unrealized"), d._wide("fees")
        return (r.fillna(0.0) + u.fillna(0.0) - f.fillna(0.0)).ffill()

    @_needs_steps
    def symbol_pnl_chart(self) -> Html:
        return interactive.symbol_pnl_chart(self.symbol_pnl(), MANY, 5)

    @_needs_steps
    def price_fills_chart(self) -> Html:
        a = self.attribution
        syms = list(a["symbol"]) if len(a) <= MANY else \
            list(a["symbol"].head(5)) + list(a["symbol"].tail(5))
        if not syms:
            return Html('<p class="rl-note">No symbols.</p>')
        return interactive.price_fills_chart(self.data.marks, self.run["fills"], syms,
                                             self.meta.get("labels") or {})

    # ------------------------------------------------------------------ exposure, costs
    @_needs_steps
    def exposure_chart(self) -> Html:
        lim = ((self.meta.get("config") or {}).get("risk") or {}).get("max_gross_leverage")
        n_pos = (self.data.weights.abs() > 1e-12).sum(axis=1)
        return interactive.exposure_chart(self.data.exposure, lim, n_pos)

    @_needs_steps
    def turnover_figure(self) -> Figure:
        return static.turnover_costs(self.yearly)

    # ------------------------------------------------------------------ operations
    def routing(self) -> pd.DataFrame:
        d = self.run["decisions"]
        if d.empty:
            return d
        g = d.groupby("symbol", sort=True)
        labels = self.meta.get("labels") or {}

        def names(s: pd.Series) -> str:
            return ", ".join(sorted(set(map(str, s.dropna()))))

        return pd.DataFrame({
            "symbol": list(g.groups),
            "served as": [labels.get(s, s) for s in g.groups],
            "class": g["asset_class"].last().to_numpy(),
            "models used": g["model"].agg(names).to_numpy(),
            "shadow model": g["shadow_model"].agg(names).to_numpy(),
            "fallback reason": g["fallback_reason"].agg(names).to_numpy(),
            "decisions": g.size().to_numpy(),
            "no signal": g["probability"].agg(lambda s: int(s.isna().sum())).to_numpy(),
        })

    def routing_table(self) -> Html:
        r = self.routing()
        if len(r) > MANY:
            r = (r.groupby(["class", "models used", "shadow model", "fallback reason"],
                           as_index=False).agg(symbols=("symbol", "size"),
                                               decisions=("decisions", "sum"),
                                               no_signal=("no signal", "sum")))
            return table(r, {"symbols": "count", "decisions": "count", "no_signal": "count"},
                         caption="Routing, grouped by class and model", text_columns=ROUTE_TEXT,
                         rename={"no_signal": "no signal"})
        return table(r, {"decisions": "count", "no signal": "count"}, caption="Routing",
                     text_columns=ROUTE_TEXT)

    def risk_events(self) -> pd.DataFrame:
        ev = self.run["risk_events"]
        return ev[["ts", "symbol", "kind", "code", "reason"]].reset_index(drop=True)

    def risk_events_csv(self) -> bytes:
        return self.risk_events().to_csv(index=False).encode()

    def risk_events_table(self, limit: int = 500) -> Html:
        ev = self.risk_events()
        if ev.empty:
            return Html('<p class="rl-note">No risk events: no denial, rejection, clip, '
                        "limit breach or refused bar.</p>")
        counts = ev.groupby(["kind", "code"], as_index=False).size().rename(
            columns={"size": "count"}).sort_values("count", ascending=False, kind="stable")
        link = download_link(self.risk_events_csv(),
                             f"risk_events_{self.meta.get('run_id', 'run')}.csv",
                             f"Download all {len(ev)} risk events (CSV)")
        shown = ev.tail(limit)
        note = (f"The {limit} latest of {len(ev)} shown. " if len(ev) > limit else "") + link
        return join(table(counts, {"count": "count"}, caption="Risk events by code",
                          text_columns=("kind", "code")),
                    f'<p class="rl-note">{note}</p>',
                    table(shown.assign(ts=shown["ts"].dt.strftime("%Y-%m-%d %H:%M")), scroll=True,
                          text_columns=tuple(ev.columns),
                          caption="Every risk event with its coded reason and numbers"))

    def state_changes_table(self) -> Html:
        sc = self.run["state_changes"]
        if sc.empty:
            return Html('<p class="rl-note">No account or symbol state changes (no REDUCING, '
                        "HALTED, reset or config reload).</p>")
        t = sc[["ts", "scope", "from_state", "to_state", "reason"]].copy()
        t["ts"] = t["ts"].dt.strftime("%Y-%m-%d %H:%M")
        return table(t, scroll=True, caption="State changes", text_columns=tuple(t.columns))

    def stale_marks(self) -> pd.DataFrame:
        """Open positions still marked at the last good close of a symbol whose latest bars
        were refused (:func:`research_lib.data.jumps.stale_marks`)."""
        from ..data.jumps import stale_marks
        from ..ledger import Ledger

        with Ledger.open(self.meta["ledger_path"], readonly=True) as led:
            marks = stale_marks(led.conn)
        return pd.DataFrame([{"symbol": s, **v} for s, v in marks.items()],
                            columns=["symbol", "since", "last_good", "bars_refused", "qty"])

    def stale_marks_table(self) -> Html:
        t = self.stale_marks()
        if t.empty:
            return Html('<p class="rl-note">No position is marked at a stale price.</p>')
        return table(t, {"last_good": "price", "bars_refused": "count", "qty": "qty"},
                     caption="Positions marked at a stale price")

    def latency_ms(self) -> pd.Series:
        s = self.run["steps"]
        return s["e2d_ms"].dropna().astype("float64") if "e2d_ms" in s else \
            pd.Series(dtype="float64")

    def latency_figure(self) -> Figure:
        return static.latency_histogram(self.latency_ms())

    def summary_text(self) -> str:
        """Deterministic one-line summary (no times, no run id), for nbval."""
        eq = self.data.equity
        if eq.empty:
            return "no steps"
        o = self.run["orders"]
        filled = int((o["status"] == "filled").sum()) if len(o) else 0
        ts = trade_stats(self.trades)
        return (f"steps={len(eq)} orders={len(o)} fills={filled} "
                f"round_trips={int(ts['round_trips'])} open_trips={int(ts['open_trips'])} "
                f"risk_events={len(self.run['risk_events'])} final_equity={eq.iloc[-1]:.2f} "
                f"return={eq.iloc[-1] / self.data.initial - 1.0:+.2%} "
                f"max_drawdown={m.max_drawdown(self.data.returns):.2%}" + self._stale_text())

    def _stale_text(self, limit: int = 5) -> str:
        st = self.stale_marks()
        text = "".join(f" stale={r.symbol}@{r.last_good:.10g}({r.bars_refused} bars refused)"
                       for r in st.head(limit).itertuples())
        return text + (f" and {len(st) - limit} more stale marks" if len(st) > limit else "")

    def proxy_notes(self) -> list[str]:
        labels = self.meta.get("labels") or {}
        proxies = self.meta.get("proxies") or {}
        return [labels.get(s, s) for s in self.data.symbols if proxies.get(s)]
