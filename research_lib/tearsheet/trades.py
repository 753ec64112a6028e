"""Round-trip trades and per-symbol attribution, built from the ledger's fills.

A **round trip** runs from the fill that opens a position from flat to the fill that
brings it back to flat. Fills in between that add to the position or reduce it belong to
the same trip; a fill that flips the position (long to short) closes one trip and opens
the next, its commission split between the two by quantity.

Profit and loss use **average cost**, exactly as the broker does: every fill goes through
:meth:`research_lib.broker.Position.apply`, and a trip's realised P&L is the change of the
position's ``realized`` over the trip. A trip's ``pnl`` is that minus every commission
paid on its fills (entry and exit), so the trips of a symbol add up to the symbol's
realised P&L less its fees, and, with the open trips marked at the last mark, all trips
add up to the change of equity. Slippage is inside the fill prices (``slippage`` column:
what it cost against the observed price).

``return`` is ``pnl`` over the cost of the entries (the sum of |qty x price| of the fills
that opened or added to the trip): the return on the capital the trip put to work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..broker import Fill, Position

TRADE_COLUMNS = ["symbol", "direction", "status", "entry_ts", "exit_ts", "holding_days",
                 "fills", "max_qty", "entry_price", "exit_price", "entry_cost", "pnl",
                 "return", "commission", "slippage"]


@dataclass
class _Trip:
    symbol: str
    direction: int  # +1 long, -1 short
    entry_ts: pd.Timestamp
    fills: int = 0
    max_qty: float = 0.0
    open_qty: float = 0.0  # sum of |qty| of opening or adding fills
    open_notional: float = 0.0
    close_qty: float = 0.0
    close_notional: float = 0.0
    realized: float = 0.0
    commission: float = 0.0
    slippage: float = 0.0
    exit_ts: pd.Timestamp | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, mark: float | None, last_ts: pd.Timestamp | None, qty: float,
            avg: float) -> dict[str, Any]:
        closed = self.exit_ts is not None
        unreal = 0.0
        if not closed and mark is not None and np.isfinite(mark):
            unreal = qty * (mark - avg)
        pnl = self.realized + unreal - self.commission
        end = self.exit_ts if closed else last_ts
        hold = (end - self.entry_ts).total_seconds() / 86400.0 if end is not None else np.nan
        return {
            "symbol": self.symbol,
            "direction": "long" if self.direction > 0 else "short",
            "status": "closed" if closed else "open (marked)",
            "entry_ts": self.entry_ts,
            "exit_ts": self.exit_ts if closed else pd.NaT,
            "holding_days": hold,
            "fills": self.fills,
            "max_qty": self.max_qty,
            "entry_price": self.open_notional / self.open_qty if self.open_qty else np.nan,
            "exit_price": (self.close_notional / self.close_qty if self.close_qty
                           else (mark if not closed and mark is not None else np.nan)),
            "entry_cost": self.open_notional,
            "pnl": pnl,
            "return": pnl / self.open_notional if self.open_notional else np.nan,
            "commission": self.commission,
            "slippage": self.slippage,
        }


def _fill_of(row: Any) -> Fill:
    return Fill(row.client_order_id, int(row.step), str(row.ts), row.symbol, float(row.qty),
                float(row.price), float(row.base_price), float(row.commission),
                float(row.cash_delta))


def round_trips(fills: pd.DataFrame, last_marks: dict[str, float] | None = None,
                last_ts: pd.Timestamp | None = None) -> pd.DataFrame:
    """Round trips from the ledger's ``fills`` table (in ledger order), open trips marked
    at ``last_marks`` (symbol -> last mark) as of ``last_ts``."""
    last_marks = last_marks or {}
    rows: list[dict[str, Any]] = []
    if fills is None or fills.empty:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    for sym, g in fills.groupby("symbol", sort=True):
        pos = Position(str(sym))
        trip: _Trip | None = None
        for r in g.itertuples(index=False):
            f = _fill_of(r)
            ts = pd.Timestamp(r.ts)
            q0 = pos.qty
            before = pos.realized
            after_pos = pos.apply(f)
            slip = abs(f.qty) * abs(f.price - f.base_price)
            if q0 == 0:  # opens from flat
                trip = _Trip(str(sym), 1 if f.qty > 0 else -1, ts)
                _add_open(trip, abs(f.qty), f.price, f.commission, slip)
            elif (q0 > 0) == (f.qty > 0):  # adds
                assert trip is not None
                _add_open(trip, abs(f.qty), f.price, f.commission, slip)
            else:  # reduces, closes or flips
                assert trip is not None
                closed = min(abs(f.qty), abs(q0))
                share = closed / abs(f.qty)
                trip.fills += 1
                trip.close_qty += closed
                trip.close_notional += closed * f.price
                trip.realized += after_pos.realized - before
                trip.commission += f.commission * share
                trip.slippage += slip * share
                if after_pos.qty == 0 or (after_pos.qty > 0) != (q0 > 0):
                    trip.exit_ts = ts
                    rows.append(trip.row(None, None, 0.0, 0.0))
                    trip = None
                    if after_pos.qty != 0:  # flipped: the rest opens the next trip
                        trip = _Trip(str(sym), 1 if after_pos.qty > 0 else -1, ts)
                        _add_open(trip, abs(after_pos.qty), f.price, f.commission * (1 - share),
                                  slip * (1 - share))
            pos = after_pos
            if trip is not None:
                trip.max_qty = max(trip.max_qty, abs(pos.qty))
        if trip is not None:
            rows.append(trip.row(last_marks.get(str(sym)), last_ts, pos.qty, pos.avg_price))
    out = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    return out.sort_values(["entry_ts", "symbol"], kind="stable").reset_index(drop=True)


def _add_open(trip: _Trip, qty: float, price: float, commission: float, slip: float) -> None:
    trip.fills += 1
    trip.open_qty += qty
    trip.open_notional += qty * price
    trip.commission += commission
    trip.slippage += slip


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Win rate and friends over **closed** round trips (open ones are not decided yet)."""
    closed = trades[trades["status"] == "closed"] if len(trades) else trades
    n = len(closed)
    wins = closed[closed["pnl"] > 0]["pnl"] if n else pd.Series(dtype="float64")
    losses = closed[closed["pnl"] < 0]["pnl"] if n else pd.Series(dtype="float64")
    return {
        "round_trips": float(n),
        "open_trips": float(len(trades) - n),
        "win_rate": float(len(wins) / n) if n else np.nan,
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else np.nan,
        "avg_win": float(wins.mean()) if len(wins) else np.nan,
        "avg_loss": float(losses.mean()) if len(losses) else np.nan,
        "avg_return": float(closed["return"].mean()) if n else np.nan,
        "avg_holding_days": float(closed["holding_days"].mean()) if n else np.nan,
    }


def attribution(trades: pd.DataFrame, weights: pd.DataFrame, initial: float,
                labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Per symbol: P&L (all its trips, open ones marked), its contribution to the return
    (P&L / initial equity), trips, win rate of its closed trips, time in market and mean
    weight (position value / equity; ``weights`` one column per symbol)."""
    labels = labels or {}
    syms = sorted(set(weights.columns) | set(trades["symbol"]) if len(trades)
                  else set(weights.columns))
    out = []
    for s in syms:
        t = trades[trades["symbol"] == s] if len(trades) else trades
        closed = t[t["status"] == "closed"] if len(t) else t
        w = weights[s] if s in weights.columns else pd.Series(dtype="float64")
        pnl = float(t["pnl"].sum()) if len(t) else 0.0
        out.append({
            "symbol": s,
            "served as": labels.get(s, s),
            "pnl": pnl,
            "contribution": pnl / initial if initial else np.nan,
            "round_trips": int(len(closed)),
            "win_rate": float((closed["pnl"] > 0).mean()) if len(closed) else np.nan,
            "time_in_market": float((w.abs() > 1e-12).mean()) if len(w) else 0.0,
            "mean_weight": float(w.mean()) if len(w) else 0.0,
            "costs": float(t["commission"].sum() + t["slippage"].sum()) if len(t) else 0.0,
        })
    df = pd.DataFrame(out)
    if df.empty:
        return df
    return df.sort_values("pnl", ascending=False, kind="stable").reset_index(drop=True)
