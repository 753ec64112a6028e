"""Report helpers: tables and figures for the notebooks. Figures are returned as
``matplotlib.figure.Figure`` objects (no pyplot state, nothing shown), so they work
headless and notebooks only display them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .data.sanity import ERROR, WARNING, Finding
from .data.sanity_report import check_symbols, findings_frame, summary_table


def short_label(df: pd.DataFrame, sym: str) -> str:
    """``SPY (proxy ^GSPC)`` for a proxy, else the symbol."""
    served = df.attrs.get("served_as", sym)
    if df.attrs.get("proxy") and served != sym:
        kind = "proxy" if "proxy" in str(df.attrs.get("proxy_note", "")) else "as"
        return f"{sym} ({kind} {served})"
    return sym


def _fig(rows: int = 1, cols: int = 1, w: float = 10.0, h: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(w, h * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


@dataclass
class DataSanityReport:
    """Everything the data-sanity notebook shows, built by :func:`data_sanity_report`."""

    frames: dict[str, pd.DataFrame]
    findings: list[Finding]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        return summary_table(self.frames, self.findings)

    @property
    def table(self) -> pd.DataFrame:
        return findings_frame(self.findings)

    def counts_text(self) -> str:
        n_err = sum(f.severity == ERROR for f in self.findings)
        n_warn = sum(f.severity == WARNING for f in self.findings)
        by_code: dict[str, int] = {}
        for f in self.findings:
            by_code[f.code] = by_code.get(f.code, 0) + 1
        codes = ", ".join(f"{k}={v}" for k, v in sorted(by_code.items())) or "none"
        return f"symbols={len(self.frames)} errors={n_err} warnings={n_warn} codes: {codes}"

    def proxy_notes(self) -> list[str]:
        return [f"{s}: {df.attrs['label']}" for s, df in self.frames.items() if df.attrs.get("proxy")]

    def price_figure(self) -> Figure:
        """Close prices, rebased to 1 at each symbol's first bar (log scale)."""
        fig, ax = _fig(h=3.6)
        a = ax[0, 0]
        for sym, df in self.frames.items():
            c = df["close"].dropna()
            c = c[c > 0]
            if len(c):
                a.plot(c.index, c / c.iloc[0], lw=0.9, label=short_label(df, sym))
        a.set_yscale("log")
        a.yaxis.set_major_formatter(ScalarFormatter())
        a.yaxis.set_minor_formatter(NullFormatter())
        a.set_title("Close, rebased to 1 (log scale)")
        a.legend(fontsize=7, loc="upper left")
        a.grid(alpha=0.3)
        return fig

    def returns_figure(self) -> Figure:
        """Distribution of 1-bar returns per symbol, with the normal of the same std."""
        n = max(1, len(self.frames))
        cols = min(n, 4)
        rows = int(np.ceil(n / cols))
        fig, ax = _fig(rows, cols, h=2.6)
        for k, (sym, df) in enumerate(self.frames.items()):
            a = ax[k // cols, k % cols]
            c = df["close"].to_numpy(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = c[1:] / c[:-1] - 1.0
            r = r[np.isfinite(r)]
            if len(r) > 1:
                a.hist(r, bins=80, density=True, alpha=0.7)
                sd = r.std()
                xs = np.linspace(r.min(), r.max(), 200)
                if sd > 0:
                    a.plot(xs, np.exp(-0.5 * (xs / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), lw=1)
                a.set_title(f"{sym}: 1-bar returns (sd {sd:.2%})", fontsize=9)
        for k in range(n, rows * cols):
            ax[k // cols, k % cols].set_visible(False)
        return fig

    def gaps_figure(self) -> Figure:
        """Where the findings are: one lane per symbol, one mark per finding."""
        fig, ax = _fig(h=max(2.0, 0.5 * len(self.frames) + 1))
        a = ax[0, 0]
        colors = {"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}
        syms = list(self.frames)
        for y, sym in enumerate(syms):
            df = self.frames[sym]
            if len(df):
                a.hlines(y, df.index.min(), df.index.max(), color="0.8", lw=6)
            for f in self.findings:
                if f.symbol == sym and f.timestamp is not None:
                    a.plot(f.timestamp, y, "|", ms=14, mew=2, color=colors[f.severity])
        a.set_yticks(range(len(syms)), syms)
        a.set_title("Data span (grey) and findings: red error, orange warning (gaps, stale bars)")
        a.grid(axis="x", alpha=0.3)
        return fig


def data_sanity_report(symbols: str | list[str], source: str = "sample", start: Any = None,
                       end: Any = None, interval: str = "1d", **kwargs: Any) -> DataSanityReport:
    from .config import parse_symbols

    syms = parse_symbols(symbols)
    frames, findings = check_symbols(syms, source=source, start=start, end=end,
                                     interval=interval, **kwargs)
    return DataSanityReport(frames, findings, {"symbols": syms, "source": source,
                                               "start": start, "end": end})


def rebase(series: Mapping[str, pd.Series]) -> pd.DataFrame:
    return pd.DataFrame({k: v / v.dropna().iloc[0] for k, v in series.items() if len(v.dropna())})


# ------------------------------------------------------------------ paper sessions
@dataclass
class PaperSessionReport:
    """Tables and figures of one paper run, read from its ledger (``ledger_read.read_run``)."""

    run: dict[str, Any]
    closes: pd.DataFrame  # close per symbol on the run's bar clock (for buy-and-hold)

    @property
    def meta(self) -> dict[str, Any]:
        return self.run["meta"]

    @property
    def equity(self) -> pd.Series:
        eq = self.run["equity"]
        return pd.Series(eq["equity"].to_numpy(np.float64), index=pd.DatetimeIndex(eq["ts"]),
                         name="strategy")

    @property
    def benchmark(self) -> pd.Series:
        from .metrics import buy_and_hold_curve

        eq = self.equity
        if eq.empty or self.closes.empty:
            return pd.Series(dtype="float64", name="buy_and_hold")
        c = self.closes.reindex(self.closes.index.union(eq.index)).ffill().reindex(eq.index)
        return buy_and_hold_curve(c, float(eq.iloc[0])).reindex(eq.index)

    def exposure(self) -> pd.DataFrame:
        eq = self.run["equity"]
        e = eq["equity"].to_numpy(np.float64)
        return pd.DataFrame({"gross": eq["gross"].to_numpy(np.float64) / e,
                             "net": eq["net"].to_numpy(np.float64) / e},
                            index=pd.DatetimeIndex(eq["ts"]))

    def labels(self) -> list[str]:
        labels = self.meta.get("labels") or {}
        return [labels.get(s, s) for s in self.meta.get("symbols", [])]

    def short_labels(self) -> list[str]:
        """``SPY (proxy ^GSPC)``: short enough for a figure title."""
        import re

        out = []
        proxies = self.meta.get("proxies") or {}
        for s in self.meta.get("symbols", []):
            note = proxies.get(s, "")
            m = re.search(r"(\^[A-Z]+|[A-Z]{2,}-[A-Z]{2,})", note) if note else None
            kind = note.split(":", 1)[0] if note else ""
            out.append(f"{s} ({kind} {m.group(1)})" if m and kind else s)
        return out

    def proxy_notes(self) -> list[str]:
        return [lab for lab in self.labels() if "proxy" in lab or "alias" in lab]

    # tables ----------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        from .metrics import metrics_frame

        ex = self.exposure()["gross"]
        curves = {"strategy": self.equity}
        bench = self.benchmark.dropna()
        if len(bench):
            curves["buy_and_hold"] = bench
        return metrics_frame(curves, {"strategy": ex}, self.periods_per_year())

    def periods_per_year(self) -> float | None:
        """Annualisation from the run's bar interval and its symbols' calendars (the most
        bars a year among them: a daily SPY+BTC run steps every day, 365); None for a
        ledger that does not record them (then inferred from the curve)."""
        from .data.market_hours import bars_per_year
        from .data.sanity import interval_length

        spec, cfg = self.meta.get("spec") or {}, self.meta.get("config") or {}
        step = interval_length(str(spec.get("interval", "")))
        classes = (cfg.get("assets") or {}).get("classes") or {}
        cals = {(classes.get(c) or {}).get("calendar")
                for c in (self.meta.get("asset_classes") or {}).values()}
        if step is None or not cals or None in cals:
            return None
        return max(bars_per_year(c, step.total_seconds()) for c in cals)

    def trades(self) -> pd.DataFrame:
        o = self.run["orders"]
        cols = ["ts", "symbol", "side", "qty", "decision_price", "status", "fill_ts",
                "fill_price", "commission", "reason"]
        return o[[c for c in cols if c in o.columns]].reset_index(drop=True)

    def risk_events(self) -> pd.DataFrame:
        ev = self.run["risk_events"]
        return ev[["ts", "symbol", "kind", "code", "reason"]].reset_index(drop=True) if len(ev) \
            else ev

    def denials_by_reason(self) -> pd.Series:
        ev = self.run["risk_events"]
        if ev.empty:
            return pd.Series(dtype="int64", name="count")
        return ev.groupby("code").size().rename("count").sort_values(ascending=False)

    def routing(self) -> pd.DataFrame:
        """Per symbol: class, model(s) used, shadow model, fallback reasons, and decisions."""
        d = self.run["decisions"]
        if d.empty:
            return d
        g = d.groupby("symbol", sort=False)
        labels = self.meta.get("labels") or {}
        return pd.DataFrame({
            "served as": [labels.get(s, s) for s in g.groups],
            "class": g["asset_class"].last(),
            "models used": g["model"].agg(lambda s: ", ".join(sorted(set(map(str, s.dropna()))))),
            "shadow model": g["shadow_model"].agg(lambda s: ", ".join(sorted(set(map(str, s.dropna()))))),
            "fallback reason": g["fallback_reason"].agg(
                lambda s: "; ".join(sorted(set(map(str, s.dropna())))) or ""),
            "decisions": g.size(),
            "no signal": g["probability"].agg(lambda s: int(s.isna().sum())),
        })

    def stale_marks(self) -> pd.DataFrame:
        """Open positions still marked at the last good close of a symbol whose latest bars
        were refused (the summary's ``stale_marks``, :func:`research_lib.data.jumps.stale_marks`)."""
        from .data.jumps import stale_marks
        from .ledger import Ledger

        with Ledger.open(self.meta["ledger_path"], readonly=True) as led:
            marks = stale_marks(led.conn)
        return pd.DataFrame([{"symbol": s, **m} for s, m in marks.items()],
                            columns=["symbol", "since", "last_good", "bars_refused", "qty"])

    def latency_ms(self) -> pd.Series:
        s = self.run["steps"]
        return s["e2d_ms"].dropna().astype("float64") if "e2d_ms" in s else pd.Series(dtype="float64")

    def summary_text(self) -> str:
        """Deterministic one-line summary (no times, no run id), for nbval."""
        eq = self.equity
        o = self.run["orders"]
        filled = int((o["status"] == "filled").sum()) if len(o) else 0
        ret = float(eq.iloc[-1] / eq.iloc[0] - 1.0) if len(eq) else 0.0
        from .metrics import max_drawdown

        return (f"steps={len(eq)} orders={len(o)} fills={filled} "
                f"risk_events={len(self.run['risk_events'])} final_equity={eq.iloc[-1]:.2f} "
                f"return={ret:+.2%} max_drawdown={max_drawdown(eq.to_numpy()):.2%}"
                + "".join(f" stale={r.symbol}@{r.last_good:.10g}({r.bars_refused} bars refused)"
                          for r in self.stale_marks().itertuples())
                if len(eq) else "no steps")

    # figures ---------------------------------------------------------------------
    def equity_figure(self) -> Figure:
        fig, ax = _fig(2, 1, h=2.8)
        eq, bench = self.equity, self.benchmark
        a = ax[0, 0]
        a.plot(eq.index, eq / eq.iloc[0], label="strategy", lw=1.2)
        if len(bench.dropna()):
            a.plot(bench.index, bench / bench.dropna().iloc[0], label="buy and hold (equal weight)",
                   lw=1.0, alpha=0.8)
        a.set_title("Equity, rebased to 1: " + ", ".join(self.short_labels()), fontsize=9)
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
        from .metrics import drawdown_series

        b = ax[1, 0]
        b.fill_between(eq.index, drawdown_series(eq).to_numpy() * 100, 0, color="tab:red",
                       alpha=0.4, label="strategy")
        if len(bench.dropna()):
            b.plot(bench.index, drawdown_series(bench).to_numpy() * 100, color="0.4", lw=0.8,
                   label="buy and hold")
        b.set_title("Drawdown (%)", fontsize=9)
        b.legend(fontsize=8)
        b.grid(alpha=0.3)
        return fig

    def exposure_figure(self) -> Figure:
        fig, ax = _fig(h=2.8)
        ex = self.exposure()
        a = ax[0, 0]
        a.plot(ex.index, ex["gross"], label="gross / equity", lw=2.2, alpha=0.6)
        a.plot(ex.index, ex["net"], label="net / equity (equals gross when long only)", lw=0.9)
        lim = self.meta.get("config", {}).get("risk", {}).get("max_gross_leverage")
        if lim:
            a.axhline(float(lim), color="tab:red", ls="--", lw=0.8, label=f"gross limit {lim}x")
        a.set_title("Exposure over time", fontsize=9)
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
        return fig

    def trades_figure(self) -> Figure:
        """Closes with fills marked (buys up, sells down), one panel per symbol."""
        syms = [s for s in self.meta.get("symbols", []) if s in self.closes.columns]
        n = max(1, len(syms))
        fig, ax = _fig(n, 1, h=2.2)
        o = self.run["orders"]
        filled = o[o["status"] == "filled"] if len(o) else o
        for k, sym in enumerate(syms):
            a = ax[k, 0]
            c = self.closes[sym].dropna()
            eq_idx = self.equity.index
            c = c[(c.index >= eq_idx.min()) & (c.index <= eq_idx.max())] if len(eq_idx) else c
            a.plot(c.index, c, lw=0.8, color="0.3")
            f = filled[filled["symbol"] == sym] if len(filled) else filled
            if len(f):
                buys, sells = f[f["side"] == "BUY"], f[f["side"] == "SELL"]
                a.scatter(pd.to_datetime(buys["fill_ts"], utc=True), buys["fill_price"], marker="^",
                          color="tab:green", s=18, label="buy fill")
                a.scatter(pd.to_datetime(sells["fill_ts"], utc=True), sells["fill_price"], marker="v",
                          color="tab:red", s=18, label="sell fill")
                a.legend(fontsize=7)
            labels = self.meta.get("labels") or {}
            a.set_title(labels.get(sym, sym), fontsize=9)
            a.grid(alpha=0.3)
        return fig

    def latency_figure(self) -> Figure:
        fig, ax = _fig(h=2.6)
        lat = self.latency_ms()
        a = ax[0, 0]
        if len(lat):
            us = np.clip(lat.to_numpy() * 1000.0, 1.0, None)
            bins = np.geomspace(us.min(), max(us.max(), us.min() * 1.01), 60)
            a.hist(us, bins=bins)
            a.set_xscale("log")
            p50, p99 = np.percentile(us, [50, 99])
            a.axvline(p50, color="tab:green", ls="--", label=f"p50 {p50:.0f} us")
            a.axvline(p99, color="tab:red", ls="--", label=f"p99 {p99:.0f} us")
            a.legend(fontsize=8)
        a.set_xlabel("end-to-decision latency per step (microseconds, log scale)")
        a.set_title("Latency: new bar in -> features -> route -> infer -> risk -> order decided",
                    fontsize=9)
        return fig


def paper_session_report(ledger: str | Any) -> PaperSessionReport:
    """Read a run (ledger file or run folder) and the closes its buy-and-hold needs."""
    from .data import load
    from .ledger_read import read_run

    run = read_run(ledger)
    meta = run["meta"]
    syms = list(meta.get("symbols", []))
    spec = meta.get("spec", {}) or {}
    eq = run["equity"]
    closes = pd.DataFrame()
    if syms and len(eq):
        start = pd.DatetimeIndex(eq["ts"]).min()
        end = pd.DatetimeIndex(eq["ts"]).max()
        frames = load(syms, source=spec.get("source", "sample"), start=start, end=end,
                      interval=spec.get("interval", "1d"))
        closes = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    return PaperSessionReport(run, closes)


def paper_session(symbols: str | list[str], source: str = "sample", start: Any = None,
                  end: Any = None, flag: str | int = "0", dry_run: bool = False,
                  model: str | None = None, run_dir: str | None = None, **kwargs: Any) -> Any:
    """Run one paper session for a notebook with ``FLAG_ASSET_SPECIFIC_MODELS`` set to
    ``flag`` for its duration (the previous value is restored). Returns the
    ``SessionResult`` (``ledger_path``, ``summary``)."""
    import os

    from .config import parse_symbols, project_root
    from .paper.session import run_session

    syms = parse_symbols(symbols)
    saved = os.environ.get("FLAG_ASSET_SPECIFIC_MODELS")
    os.environ["FLAG_ASSET_SPECIFIC_MODELS"] = str(flag)
    try:
        return run_session(symbols=syms, source=source, start=start, end=end, dry_run=dry_run,
                           model=model or None,
                           run_dir=run_dir or str(project_root() / "runs" / "reports"),
                           **kwargs)
    finally:
        if saved is None:
            os.environ.pop("FLAG_ASSET_SPECIFIC_MODELS", None)
        else:
            os.environ["FLAG_ASSET_SPECIFIC_MODELS"] = saved
