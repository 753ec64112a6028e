"""Sharing one account among many symbols (issue 15, "Big universes").

Two rules, both independent of the order the symbols are given in:

* **Position size** (:func:`universe_weight`): a full position is
  ``min(signal.target_weight, budget / N)`` of equity, where ``N`` is the number of the
  session's symbols and ``budget = min(risk.max_gross_leverage, (1 - risk.cash_buffer_pct)
  / (1 + costs))`` is what the account can hold long at once (costs: slippage and
  commission bps of a buy). Every symbol can then hold a full position at
  the same time; with few symbols (``N * target_weight <= budget``: the shipped 0.10 up to
  9 symbols) it is the configured weight, unchanged. :func:`plan` and its fast-path twin
  :func:`~research_lib.paper.stages.quiet_plan_block` both size with it.
* **Fair allocation** (:func:`scale_increases`): when the buys of a step want more cash
  (or the increases more gross room) than the account has, every competing order is
  scaled by the same factor (pro rata to its wanted notional), rounded down to whole
  units or lots, before any is sent; one ``CASH_SCALED`` / ``GROSS_SCALED`` risk event per
  step says how many orders, the factor and the amounts, and each scaled decision says
  what it wanted. Before, orders were sized one after the other in symbol order, so the
  first symbols took the cash and the rest were clipped, every bar. A lone order clipped
  by cash or gross room keeps the per-order ``CASH_CLIPPED`` / ``GROSS_CLIPPED`` rule in
  :func:`~research_lib.paper.stages.execute` (one order has no order to depend on).

What a step cannot fund is never redistributed to later steps or other symbols: the
rounding remainder stays in cash.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..broker import QTY_DIGITS, round_qty
from .rows import RiskEventRow

if TYPE_CHECKING:
    from ..config import RiskLimits
    from ..ledger import StepRecord
    from .account import Account, Desk

# scaled quantities are taken a hair under the exact share, so that rounding (round_qty
# adds 1e-9 of a unit) can never push the sum of a step's orders past the room
_MARGIN = 1e-7
SCALED_CODES = ("CASH_SCALED", "GROSS_SCALED")


def long_budget(lim: RiskLimits, cost_rate: float = 0.0) -> float:
    """What the account can hold long at once, as a share of equity: the gross limit, or
    the cash above the buffer less the buys' costs (slippage and commission in bps)."""
    return min(lim.max_gross_leverage, (1.0 - lim.cash_buffer_pct) / (1.0 + cost_rate))


def universe_weight(target_weight: float, lim: RiskLimits, n_symbols: int,
                    cost_rate: float = 0.0) -> float:
    """The weight of a full position when ``n_symbols`` share the account:
    ``min(target_weight, long_budget / n_symbols)`` (module docstring)."""
    if n_symbols <= 0:
        return target_weight
    return min(target_weight, long_budget(lim, cost_rate) / n_symbols)


def bps_rate(session: Any) -> float:
    """Slippage and commission of a buy as a share of notional (the per-share commission,
    which depends on the price, is left to the fair allocation)."""
    return (float(session.slippage_bps) + float(session.commission_bps)) / 1e4


def desk_weight(desk: Desk) -> float:
    """:func:`universe_weight` for the desk's symbols and current limits and settings."""
    st = desk.settings
    return universe_weight(st.signal.target_weight, desk.limits, len(desk.symbols),
                           bps_rate(st.session))


def _need(desk: Desk, acct: Account, p: Any, oq: dict[str, float]
          ) -> tuple[float, float, float, float, float]:
    """(cur, new exposure (signed quantity beyond the base), base, cash need, gross need)
    of an increasing plan: the new exposure is what the order adds beyond the held
    quantity (beyond zero when it flips sides)."""
    s, i = p.symbol, p.i
    price = float(acct.last_close[i])
    cur = acct.broker.qty(s) + oq.get(s, 0)
    tq = float(p.target_qty)
    flip = cur != 0 and tq * cur < 0
    base = 0.0 if flip else cur
    e = tq - base
    rate = desk.cost_rate(i, price)
    cash = 0.0
    if e > 0:  # buying: the new long part, plus the costs of covering a short first
        cash = e * price * (1 + rate) + (abs(cur) * price * rate if flip else 0.0)
    return cur, e, base, cash, abs(e) * price


def scale_increases(desk: Desk, acct: Account, rec: StepRecord, plans: list[Any],
                    equity: float, room: dict[str, float], oq: dict[str, float]) -> None:
    """Scale the step's increasing orders (``plans``, after the reductions were sent) pro
    rata when two or more compete for cash or gross room that cannot fund them all; the
    same factor for every competing order, whatever the symbols' order."""
    lim = desk.limits
    sized = []
    for p in plans:
        price = float(acct.last_close[p.i])
        if p.target_qty is None or not (math.isfinite(price) and price > 0):
            continue
        sized.append((p, *_need(desk, acct, p, oq)))
    buys = [x for x in sized if x[4] > 0]
    incs = [x for x in sized if x[5] > 0]
    f_cash = f_gross = 1.0
    avail_cash = room["cash"] - lim.cash_buffer_pct * equity
    want_cash = math.fsum(x[4] for x in buys)
    if len(buys) >= 2 and want_cash > avail_cash:
        f_cash = max(avail_cash, 0.0) / want_cash
    avail_gross = lim.max_gross_leverage * equity - room["gross"]
    want_gross = math.fsum(x[5] for x in incs)
    if len(incs) >= 2 and want_gross > avail_gross:
        f_gross = max(avail_gross, 0.0) / want_gross
    if f_cash >= 1.0 and f_gross >= 1.0:
        return
    n_cash = n_gross = 0
    for p, cur, e, base, cash, gross in sized:
        f = min(f_cash if cash > 0 else 1.0, f_gross if gross > 0 else 1.0)
        if f >= 1.0:
            continue
        n_cash += cash > 0 and f_cash < 1.0
        n_gross += gross > 0 and f_gross < 1.0
        wanted = round(p.target_qty - cur, QTY_DIGITS)
        new_e = round_qty(e * f * (1.0 - _MARGIN), desk.lot(p.i))
        p.target_qty = round(base + new_e, QTY_DIGITS)
        allowed = round(p.target_qty - cur, QTY_DIGITS)
        code = "CASH_SCALED" if (cash > 0 and f == f_cash) else "GROSS_SCALED"
        p.note = f"{code}: wanted={wanted:.10g} allowed={allowed:.10g} factor={f:.6f}"
    buf = lim.cash_buffer_pct
    if n_cash:
        rec.add("risk_events", RiskEventRow(
            rec.step, rec.ts, None, "clip", "CASH_SCALED",
            f"CASH_SCALED: orders={n_cash} factor={f_cash:.6f} wanted={want_cash:.2f} "
            f"available={avail_cash:.2f} cash={room['cash']:.2f} buffer={buf:g}", None))
    if n_gross:
        rec.add("risk_events", RiskEventRow(
            rec.step, rec.ts, None, "clip", "GROSS_SCALED",
            f"GROSS_SCALED: orders={n_gross} factor={f_gross:.6f} limit="
            f"{lim.max_gross_leverage:g} wanted={want_gross:.2f} available={avail_gross:.2f}",
            None))


# ------------------------------------------------------------------------ summary
def _count_in(reason: str) -> int:
    """A folded row's count: its first ``orders=N`` or ``symbols=N`` (else one)."""
    for part in reason.split():
        for key in ("orders=", "symbols="):
            if part.startswith(key):
                return int(part[len(key):])
    return 1


def allocation_summary(c: sqlite3.Connection, symbols: list[str] | tuple[str, ...],
                       config: dict[str, Any] | None) -> dict[str, Any]:
    """The summary's allocation keys: orders cut by cash or gross room (``clipped``, one
    per cut order: a ``*_SCALED`` event counts its orders), every clip by code
    (``clips_by_reason``: targets clipped, trims, scaled and clipped orders), how many
    symbols ever filled (``symbols_traded``), and the position size rule
    (``position_size``) from the run's recorded config."""
    clips: Counter[str] = Counter(dict(c.execute(
        "SELECT code, COUNT(*) FROM risk_events WHERE kind='clip' AND symbol IS NOT NULL "
        "GROUP BY code")))
    for code, reason in c.execute(  # a row per step for many: its count counted
            "SELECT code, reason FROM risk_events WHERE kind='clip' AND symbol IS NULL"):
        clips[code] += _count_in(reason)
    cut = sum(clips[k] for k in ("CASH_CLIPPED", "GROSS_CLIPPED", *SCALED_CODES))
    traded = c.execute("SELECT COUNT(DISTINCT symbol) FROM fills").fetchone()[0]
    out: dict[str, Any] = {"clipped": cut, "clips_by_reason": dict(sorted(clips.items())),
                           "symbols_traded": traded}
    if config and "risk" in config and "signal" in config:
        from types import SimpleNamespace

        from ..config import RiskLimits

        lim = RiskLimits(**config["risk"])
        tw = float(config["signal"]["target_weight"])
        n = len(symbols)
        rate = bps_rate(SimpleNamespace(**config.get("session", {})))
        out["position_size"] = {"configured": tw,
                                "per_symbol": universe_weight(tw, lim, n, rate),
                                "symbols": n, "budget": long_budget(lim, rate)}
    return out
