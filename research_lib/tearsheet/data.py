"""A run's series for the tearsheet, read from its ledger alone (no data source is asked
again, so a report works on any run: replay, fast replay, resumed or live, offline).

* equity per step, and its simple returns;
* the marks per step and symbol (the ``positions`` table's ``mark``: the last good close
  the account was valued at), carried forward where a symbol had no bar yet;
* weights per step and symbol (position value / equity);
* the benchmarks: an equal-weight buy-and-hold of the basket (each symbol's 1/N bought at
  its first mark, in cash until then, never rebalanced), and the same basket scaled to the
  strategy's mean gross exposure (``k`` of the basket and ``1 - k`` in cash, reset to that
  mix every step) and to its volatility (``k = vol(strategy) / vol(basket)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..metrics import infer_periods_per_year


def resolve_run(run: str | Path, run_dir: str | Path | None = None) -> Path:
    """A run id, run folder or ledger file -> the ledger file. A bare id is looked up in
    ``run_dir`` (default: ``session.run_dir`` of the config, ``runs``) and then in
    ``runs/reports`` (where report replays go)."""
    from ..config import project_root
    from ..halt import runs_folder
    from ..run_files import LEDGER_NAME, resolve_ledger

    p = Path(run)
    if p.is_file() or p.is_dir():
        return resolve_ledger(p)
    candidates = [runs_folder(run_dir)] if run_dir is not None else \
        [runs_folder(None), project_root() / "runs" / "reports"]
    for folder in candidates:
        led = resolve_ledger(str(run), folder)
        if led.is_file():
            return led
    where = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"run {str(run)!r}: no {LEDGER_NAME} found as a path or under {where}; "
                      "pass a run id from the run folder, a run folder or its ledger file")


def run_periods_per_year(meta: dict[str, Any]) -> float | None:
    """Annualisation from a run's bar interval and its symbols' calendars (the most bars a
    year among them: a daily SPY+BTC run steps every day, 365); None for a ledger that does
    not record them."""
    from ..data.market_hours import bars_per_year
    from ..data.sanity import interval_length

    spec, cfg = meta.get("spec") or {}, meta.get("config") or {}
    step = interval_length(str(spec.get("interval", "")))
    classes = (cfg.get("assets") or {}).get("classes") or {}
    cals = {(classes.get(c) or {}).get("calendar")
            for c in (meta.get("asset_classes") or {}).values()}
    if step is None or not cals or None in cals:
        return None
    return max(bars_per_year(c, step.total_seconds()) for c in cals)


@dataclass
class RunData:
    """The run's tables (``ledger_read.read_run``) and the series derived from them."""

    run: dict[str, Any]
    summary: dict[str, Any] | None = None
    periods_override: float | None = field(default=None, repr=False)

    @property
    def meta(self) -> dict[str, Any]:
        return self.run["meta"]

    @property
    def symbols(self) -> list[str]:
        return list(self.meta.get("symbols", []))

    @property
    def initial(self) -> float:
        return float(self.meta.get("initial_cash", np.nan))

    @cached_property
    def equity(self) -> pd.Series:
        eq = self.run["equity"]
        return pd.Series(eq["equity"].to_numpy(np.float64), index=pd.DatetimeIndex(eq["ts"]),
                         name="strategy")

    @cached_property
    def returns(self) -> pd.Series:
        """Per-step returns, the first step against the initial cash."""
        e = self.equity
        if e.empty:
            return pd.Series(dtype="float64", name="strategy")
        prev = np.concatenate([[self.initial], e.to_numpy()[:-1]])
        return pd.Series(e.to_numpy() / prev - 1.0, index=e.index, name="strategy")

    @cached_property
    def periods(self) -> float:
        """Steps per year for annualising: from the run's bar interval and its symbols'
        calendars where the ledger records them (an hourly XNYS run is not 365 a year),
        else inferred from the equity curve's spacing."""
        return (self.periods_override or run_periods_per_year(self.meta)
                or infer_periods_per_year(self.equity.index))

    @cached_property
    def exposure(self) -> pd.DataFrame:
        eq = self.run["equity"]
        e = eq["equity"].to_numpy(np.float64)
        return pd.DataFrame({"gross": eq["gross"].to_numpy(np.float64) / e,
                             "net": eq["net"].to_numpy(np.float64) / e},
                            index=pd.DatetimeIndex(eq["ts"]))

    def _wide(self, column: str) -> pd.DataFrame:
        pos = self.run["positions"]
        steps = self.run["equity"][["step", "ts"]]
        if pos.empty or steps.empty:
            return pd.DataFrame(index=self.equity.index)
        wide = pos.pivot(index="step", columns="symbol", values=column).astype("float64")
        wide = wide.reindex(steps["step"].to_numpy())
        wide.index = pd.DatetimeIndex(steps["ts"])
        return wide.reindex(columns=[s for s in self.symbols if s in wide.columns])

    @cached_property
    def marks(self) -> pd.DataFrame:
        return self._wide("mark").ffill()

    @cached_property
    def weights(self) -> pd.DataFrame:
        v = self._wide("value").fillna(0.0)
        return v.div(self.equity, axis=0)

    @cached_property
    def last_marks(self) -> dict[str, float]:
        m = self.marks
        return {s: float(m[s].dropna().iloc[-1]) for s in m.columns if m[s].notna().any()}

    @cached_property
    def basket_returns(self) -> pd.Series:
        """Equal-weight buy-and-hold of the run's symbols on the strategy's clock: each
        symbol's 1/N bought at its first mark and held (cash until a symbol has a price, so
        a symbol listed later joins the basket when it appears), never rebalanced."""
        m = self.marks
        if m.empty or m.shape[1] == 0:
            return pd.Series(0.0, index=self.equity.index, name="buy_and_hold")
        a = m.to_numpy(np.float64)
        first = np.array([a[np.argmax(np.isfinite(a[:, j])), j] if np.isfinite(a[:, j]).any()
                          else np.nan for j in range(a.shape[1])])
        rel = np.where(np.isfinite(a), a / first, 1.0)  # cash (1.0) before the first price
        value = rel.mean(axis=1)
        prev = np.concatenate([[1.0], value[:-1]])
        return pd.Series(value / prev - 1.0, index=m.index, name="buy_and_hold").reindex(
            self.equity.index).fillna(0.0)

    @cached_property
    def mean_exposure(self) -> float:
        g = self.exposure["gross"]
        return float(g.mean()) if len(g) else 0.0

    @cached_property
    def vol_ratio(self) -> float:
        sb = float(self.basket_returns.std(ddof=1))
        ss = float(self.returns.std(ddof=1))
        return ss / sb if sb > 0 and np.isfinite(ss) else np.nan

    @cached_property
    def benchmarks(self) -> dict[str, pd.Series]:
        """Per-step returns of each benchmark, named as the tearsheet shows them."""
        b = self.basket_returns
        k = self.mean_exposure
        out = {"Basket buy-and-hold": b, f"Basket at {k:.0%} (mean exposure)": b * k}
        if np.isfinite(self.vol_ratio):
            out[f"Basket at {self.vol_ratio:.2f}x (same volatility)"] = b * self.vol_ratio
        return out

    def curve(self, returns: pd.Series) -> pd.Series:
        """Equity in currency from per-step returns, starting at the initial cash."""
        return self.initial * (1.0 + returns.fillna(0.0)).cumprod()
