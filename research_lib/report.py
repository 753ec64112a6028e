"""Report helpers: tables and figures for the notebooks. Figures are returned as
``matplotlib.figure.Figure`` objects (no pyplot state, nothing shown), so they work
headless and notebooks only display them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .data.sanity import ERROR, WARNING, Finding
from .data.sanity_report import check_symbols, findings_frame, summary_table
from .errors import ConfigError


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


# ------------------------------------------------------------------ paper sessions
def paper_session_report(ledger: str | Any, summary: dict[str, Any] | None = None) -> Any:
    """The tearsheet of a run (a ledger file, run folder or run id):
    :class:`research_lib.tearsheet.Tearsheet`."""
    from .tearsheet import tearsheet

    return tearsheet(ledger, summary=summary)


def paper_session_tearsheet(run: str | None = None, symbols: str | list[str] | None = None,
                            flag: str | int = "0", **session: Any) -> Any:
    """The report notebook's one call: the tearsheet of ``run`` when given (any existing
    run: replay, fast, resumed, live; nothing is replayed), else of a new replay of
    ``symbols`` (:func:`paper_session`, with ``flag`` and the other session options)."""
    if run:
        return paper_session_report(run)
    if not symbols:
        raise ConfigError("paper_session_tearsheet: give symbols (for a new replay) or run "
                          "(a run id, run folder or ledger to report on)")
    result = paper_session(symbols, flag=flag, **session)
    return paper_session_report(result.ledger_path, summary=result.summary)


def paper_session(symbols: str | list[str], source: str = "sample", start: Any = None,
                  end: Any = None, flag: str | int = "0", dry_run: bool = False,
                  model: str | None = None, run_dir: str | None = None, **kwargs: Any) -> Any:
    """Run one paper session for a notebook with the routing flag ``flag`` (for the
    registry's router; no environment variable is read or changed). Without ``start`` the
    replay starts after the deciding models' training (out of sample); the summary's
    ``sample`` says which. Returns the ``SessionResult`` (``ledger_path``, ``summary``)."""
    from .config import parse_symbols
    from .paper.session import run_session
    from .project import work_root

    syms = parse_symbols(symbols)
    return run_session(symbols=syms, source=source, start=start, end=end, dry_run=dry_run,
                       model=model or None, flag=None if model else flag,
                       run_dir=run_dir or str(work_root() / "runs" / "reports"), **kwargs)
