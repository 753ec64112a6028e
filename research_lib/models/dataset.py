"""Training rows: features, the label a trader would use, and what was left out and why.

The label for bar t is the sign of ``close[t + h] / close[t] - 1``; moves no larger than the
dead zone are no label (the row is dropped from training, not called "down"). The last
``h`` bars have no label. A row is trainable when every feature is finite and it has a label.
Nothing here changes the caller's frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import features
from ..data import load
from ..data.sanity import refuse_bad_timeline
from ..errors import DataError
from ..risk import refuse_shared_underlying

FEATURES = list(features.FEATURES)


@dataclass(frozen=True)
class SymbolInfo:
    """One training symbol as the source served it."""

    symbol: str
    served_as: str
    proxy: bool
    note: str
    source: str
    adjustment: str
    first: str
    last: str
    bars: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "served_as": self.served_as,
            "proxy": self.proxy,
            "note": self.note,
            "source": self.source,
            "adjustment": self.adjustment,
            "first": self.first,
            "last": self.last,
            "bars": self.bars,
        }


@dataclass
class Dataset:
    """Long frame of rows (one per symbol and bar) with features, returns and labels.

    Columns: ``timestamp, symbol, bar, <FEATURES>, ret_next, gap_next, intra_next,
    fwd_return, label, complete, trainable``. ``ret_next`` is close[t] -> close[t+1];
    ``gap_next`` close[t] -> open[t+1] and ``intra_next`` open[t+1] -> close[t+1] (the
    paper broker fills a decision taken at bar t at the next bar's open, so a backtest that
    fills like it needs both halves of the next bar). ``label`` is 1.0 (up), 0.0 (down) or NaN (dead zone or tail).
    """

    rows: pd.DataFrame
    symbols: tuple[SymbolInfo, ...]
    notes: tuple[str, ...]
    horizon: int
    dead_zone: float
    closes: Mapping[str, pd.Series]
    periods_per_year: int
    synthetic: bool = False  # any symbol's prices are model prices, not market data

    @property
    def trainable(self) -> np.ndarray:
        return self.rows["trainable"].to_numpy()

    def X(self, mask: np.ndarray | None = None) -> np.ndarray:
        r = self.rows if mask is None else self.rows[mask]
        return r[FEATURES].to_numpy(dtype=np.float64)

    def y(self, mask: np.ndarray | None = None) -> np.ndarray:
        r = self.rows if mask is None else self.rows[mask]
        return r["label"].to_numpy().astype(np.int64)

    def label_counts(self) -> dict[str, int]:
        r = self.rows
        complete = r["complete"].to_numpy()
        has_fwd = r["fwd_return"].notna().to_numpy()
        lab = r["label"].to_numpy()
        return {
            "up": int(np.sum(complete & (lab == 1.0))),
            "down": int(np.sum(complete & (lab == 0.0))),
            "dead_zone": int(np.sum(complete & has_fwd & np.isnan(lab))),
            "no_forward_bar": int(np.sum(complete & ~has_fwd)),
            "incomplete_features": int(np.sum(~complete)),
        }

    @property
    def span(self) -> tuple[str, str]:
        ts = self.rows["timestamp"]
        return _day(ts.min()), _day(ts.max())


def _day(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def labels(close: pd.Series, horizon: int, dead_zone: float) -> tuple[pd.Series, pd.Series]:
    """``(fwd_return, label)``: label 1.0 above the dead zone, 0.0 below, NaN inside or
    where there is no bar ``horizon`` ahead."""
    c = close.astype("float64")
    fwd = c.shift(-horizon) / c - 1.0
    f = fwd.to_numpy()
    with np.errstate(invalid="ignore"):
        lab = np.where(f > dead_zone, 1.0, np.where(f < -dead_zone, 0.0, np.nan))
    return fwd, pd.Series(lab, index=c.index)


def series_calendar(index: pd.DatetimeIndex, symbol: str = "",
                    declared: str | None = None) -> str:
    """The calendar a series trades on: the one its source declares, else ``24/7`` when
    more than 5% of its bars fall on a weekend, else the symbol's class calendar in
    ``config/assets.yaml`` (FX, an exchange), else ``XNYS``."""
    if declared:
        return declared
    if len(index) and np.asarray(pd.DatetimeIndex(index).day_of_week >= 5).mean() > 0.05:
        return "24/7"
    try:
        from ..config import load_assets

        return load_assets().calendar_for(symbol) if symbol else "XNYS"
    except Exception:  # no readable assets file: the exchange default
        return "XNYS"


def periods_per_year(index: pd.DatetimeIndex, interval: str = "1d", symbol: str = "",
                     calendar: str | None = None) -> int:
    """Bars a year for annualising, from the interval and the calendar
    (:func:`research_lib.data.market_hours.bars_per_year`): daily 252 on an exchange, 365
    for a market that trades at weekends (crypto), 260 for FX; intraday the bars of a
    trading year (hourly NYSE 1,764, hourly crypto 8,760, hourly FX 6,240)."""
    from ..data.market_hours import bars_per_year
    from ..data.sanity import interval_length

    if len(index) == 0:
        return 252
    step = interval_length(interval)
    seconds = step.total_seconds() if step is not None else 86400.0
    cal = series_calendar(index, symbol, calendar)
    return int(round(bars_per_year(cal, seconds)))


def _trim_notes(symbol: str, frame: pd.DataFrame, start: Any, end: Any) -> list[str]:
    notes = []
    first, last = frame.index.min(), frame.index.max()
    grace = pd.Timedelta(days=7)  # weekends and holidays are not "outside the data"
    if start is not None:
        s = pd.Timestamp(start)
        s = s.tz_localize("UTC") if s.tzinfo is None else s.tz_convert("UTC")
        if first - s > grace:
            notes.append(
                f"{symbol}: asked from {_day(s)}, data starts {_day(first)}; trimmed to the data"
            )
    if end is not None:
        e = pd.Timestamp(end)
        e = e.tz_localize("UTC") if e.tzinfo is None else e.tz_convert("UTC")
        if e - last > grace:
            notes.append(
                f"{symbol}: asked to {_day(e)}, data ends {_day(last)}; trimmed to the data"
            )
    return notes


def resolve_source(source: str) -> Any:
    """A source name for :func:`research_lib.data.load`, or the synthetic options source
    (which only the options model's training uses)."""
    if source == "synthetic-options":
        from .options import SyntheticOptionsSource

        return SyntheticOptionsSource()
    return source


def expand_symbols(symbols: Sequence[str], source: str, start: Any = None,
                   end: Any = None) -> list[str]:
    """Symbols as the source serves them: for ``synthetic-options`` the chain root
    (``SPX``) stands for every listed contract (with a bar between ``start`` and ``end``
    when given)."""
    src = resolve_source(source)
    if hasattr(src, "expand"):
        return [x for s in symbols for x in src.expand(s, start, end)]
    return list(symbols)


def load_frames(
    symbols: Sequence[str],
    source: str = "sample",
    start: Any = None,
    end: Any = None,
    interval: str = "1d",
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Load each symbol; unknown symbols raise with the source's list; ranges partly
    outside the data are trimmed and a note says so."""
    symbols = expand_symbols(symbols, source, start, end)
    frames = load(symbols, source=resolve_source(source), start=start, end=end, interval=interval)
    refuse_bad_timeline(frames, interval)  # bars of another interval, or before 1971
    notes: list[str] = []
    served: dict[str, str] = {}
    synthetic = [s for s, f in frames.items() if f.attrs.get("synthetic")]
    if synthetic:
        notes.append(
            f"{len(synthetic)} of {len(frames)} symbols: "
            f"{frames[synthetic[0]].attrs.get('proxy_note', '')}"
        )
    for sym, f in frames.items():
        if f.attrs.get("synthetic"):
            continue  # contracts listed inside the span: no per-contract trim notes
        s = f.attrs.get("served_as", sym)
        if s in served:
            raise DataError(
                f"{sym} and {served[s]} are both served as {s} by {source}; the same prices "
                "would be counted twice; list only one"
            )
        served[s] = sym
        notes.extend(_trim_notes(sym, f, start, end))
        if f.attrs.get("proxy"):
            notes.append(f"{sym} served as {s} proxy ({f.attrs.get('proxy_note', '')})")
        if f.attrs.get("close_only"):
            notes.append(
                f"{sym}: the source has the close only (open/high/low = close, volume 0); "
                "range_1 and volume_z_20 are constant for it"
            )
    # one underlying under two spellings (BTC-USD and BTC/USD): its rows would count twice
    real = [s for s, f in frames.items() if not f.attrs.get("synthetic")]
    refuse_shared_underlying(real, {s: str(frames[s].attrs.get("served_as", s)) for s in real})
    return frames, notes


def build_dataset(
    frames: Mapping[str, pd.DataFrame],
    horizon: int,
    dead_zone: float,
    notes: Sequence[str] = (),
    interval: str = "1d",
) -> Dataset:
    """Features (``features.build``) and labels for every symbol, stacked by symbol in the
    given order (the order is part of what makes training reproducible)."""
    parts = []
    infos = []
    closes: dict[str, pd.Series] = {}
    per_year = []
    for sym, frame in frames.items():
        if len(frame) <= features.WARMUP + horizon:
            raise DataError(
                f"{sym}: {len(frame)} bars is too few to train on; features need "
                f"{features.WARMUP} bars of warm-up and the label {horizon} more"
            )
        F = features.build(frame)
        close = frame["close"].astype("float64")
        fwd, lab = labels(close, horizon, dead_zone)
        part = F.copy()
        part.insert(0, "bar", np.arange(len(frame), dtype=np.int64))
        part.insert(0, "symbol", sym)
        part["ret_next"] = (close.shift(-1) / close - 1.0).to_numpy()
        open_next = frame["open"].astype("float64").shift(-1)
        part["gap_next"] = (open_next / close - 1.0).to_numpy()
        part["intra_next"] = (close.shift(-1) / open_next - 1.0).to_numpy()
        part["fwd_return"] = fwd.to_numpy()
        part["label"] = lab.to_numpy()
        complete = np.isfinite(F.to_numpy()).all(axis=1)
        part["complete"] = complete
        part["trainable"] = complete & lab.notna().to_numpy()
        part.index.name = "timestamp"
        parts.append(part.reset_index())
        closes[sym] = close.copy()
        per_year.append(periods_per_year(pd.DatetimeIndex(frame.index), interval, sym,
                                         frame.attrs.get("calendar")))
        attrs = frame.attrs
        infos.append(
            SymbolInfo(
                symbol=sym,
                served_as=str(attrs.get("served_as", sym)),
                proxy=bool(attrs.get("proxy", False)),
                note=str(attrs.get("proxy_note", "")),
                source=str(attrs.get("source", "")),
                adjustment=str(attrs.get("adjustment", "")),
                first=_day(frame.index.min()),
                last=_day(frame.index.max()),
                bars=len(frame),
            )
        )
    rows = pd.concat(parts, ignore_index=True)
    ppy = max(per_year)
    return Dataset(
        rows=rows,
        symbols=tuple(infos),
        notes=tuple(notes),
        horizon=horizon,
        dead_zone=dead_zone,
        closes=closes,
        periods_per_year=ppy,
        synthetic=any(bool(f.attrs.get("synthetic")) for f in frames.values()),
    )
