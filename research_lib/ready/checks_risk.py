"""Risk claim: for each limit of ``config/risk.yaml``, one order (or account mark) built to
break it is denied by the risk engine with the limit's code, and the same order built just
inside the limit passes (so the denial is the limit's doing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..config import RiskLimits
from ..risk import OrderCheck, RiskEngine, TradingState, reason_code
from .context import Context
from .verdict import Verdict, all_passed

EQUITY = 100_000.0
PRICE = 100.0
DAY = "2024-01-02"


def _order(weight: float, **kw: float) -> OrderCheck:
    """A buy of ``weight`` of equity at PRICE from flat, with cash for it."""
    base = OrderCheck(symbol="READY", qty=weight * EQUITY / PRICE, price=PRICE, reference=PRICE,
                      position=0.0, equity=EQUITY, gross=0.0, cash=EQUITY)
    return replace(base, **kw)


def _margin(limit: float) -> float:
    return min(0.01, abs(limit) * 0.1)


def _latched(lim: RiskLimits, marks: list[float]) -> RiskEngine:
    eng = RiskEngine(lim)
    eng.start_day(DAY, EQUITY)
    for m in marks:
        eng.on_mark(m)
    return eng


def _cases(lim: RiskLimits) -> dict[str, tuple[str, Callable[[], str | None],
                                               Callable[[], str | None]]]:
    """limit -> (expected code, the violation's denial, the in-limit order's denial)."""
    eng = RiskEngine(lim)
    L, G, B = lim.max_position_pct, lim.max_gross_leverage, lim.price_band_pct
    D, DD = lim.daily_loss_stop_pct, lim.max_drawdown_pct
    w = min(L, G) / 2  # a position well inside the position limit
    small = min(0.01, w)
    cases = {
        "max_position_pct": ("MAX_POSITION_EXCEEDED",
                             lambda: eng.check(_order(L + _margin(L), cash=10 * EQUITY)),
                             lambda: eng.check(_order(L - _margin(L), cash=10 * EQUITY))),
        "max_gross_leverage": ("MAX_GROSS_EXCEEDED",
                               lambda: eng.check(_order(w, gross=(G - w + _margin(G)) * EQUITY)),
                               lambda: eng.check(_order(w, gross=(G - w - _margin(G)) * EQUITY))),
        "price_band_pct": ("PRICE_BAND_BREACHED",
                           lambda: eng.check(_order(small, price=PRICE * (1 + B + _margin(B)))),
                           lambda: eng.check(_order(small, price=PRICE * (1 + B - _margin(B))))),
        "daily_loss_stop_pct": (
            "REDUCING_ONLY",
            lambda: _state_denial(lim, [EQUITY * (1 - D - _margin(D))], TradingState.REDUCING,
                                  "DAILY_LOSS_LIMIT", small),
            lambda: _in_state(_latched(lim, [EQUITY * (1 - D + _margin(D))]), small)),
        "max_drawdown_pct": (
            "HALTED_CLOSING_ONLY",
            lambda: _state_denial(lim, [EQUITY, EQUITY * (1 - DD - _margin(DD))],
                                  TradingState.HALTED, "MAX_DRAWDOWN", small),
            lambda: _not_halted(lim, [EQUITY, EQUITY * (1 - DD + _margin(DD))])),
        "buying_power": ("INSUFFICIENT_BUYING_POWER",
                         lambda: eng.check(_order(w, cash=w * EQUITY * 0.5)),
                         lambda: eng.check(_order(w, cash=w * EQUITY * 2))),
        "no_price": ("NO_PRICE",
                     lambda: eng.check(_order(small, price=float("nan"))),
                     lambda: eng.check(_order(small))),
    }
    if not lim.allow_short:
        cases["allow_short"] = ("SHORT_NOT_ALLOWED",
                                lambda: eng.check(_order(-small)),
                                lambda: eng.check(_order(-small, position=2 * small * EQUITY
                                                         / PRICE)))
    return cases


def _state_denial(lim: RiskLimits, marks: list[float], state: TradingState, latch_code: str,
                  weight: float) -> str | None:
    """Mark the account past a limit: it must latch ``state`` with ``latch_code``; then the
    denial of a buy (None when it passes)."""
    eng = RiskEngine(lim)
    eng.start_day(DAY, EQUITY)
    changes = []
    for m in marks:
        changes += eng.on_mark(m)
    if eng.state is not state:
        return f"LATCH_MISSING: the account stayed {eng.state.value} (expected {state.value})"
    codes = [reason_code(c.reason) for c in changes]
    if latch_code not in codes:
        return f"LATCH_MISSING: latched {state.value} with {codes}, not {latch_code}"
    return eng.check(_order(weight, equity=marks[-1], state=eng.state))


def _in_state(eng: RiskEngine, weight: float) -> str | None:
    """The denial of a buy at the engine's current (latched) state."""
    return eng.check(_order(weight, state=eng.state))


def _not_halted(lim: RiskLimits, marks: list[float]) -> str | None:
    eng = _latched(lim, marks)
    return f"HALTED: {eng.state.value}" if eng.state is TradingState.HALTED else None


def limits(ctx: Context) -> Verdict:
    lim = ctx.limits
    problems: dict[str, str | None] = {}
    codes: dict[str, str | None] = {}
    for name, (want, broken, inside) in _cases(lim).items():
        got = broken()
        codes[name] = reason_code(got)
        ok_inside = inside()
        if codes[name] != want:
            problems[name] = (f"the order breaking it was {'not denied' if got is None else got}"
                              f" (expected {want})")
        elif ok_inside is not None:
            problems[name] = f"the same order inside the limit was denied too: {ok_inside}"
        else:
            problems[name] = None
    return all_passed(problems, f"{len(codes)} limits: each violation denied with its code, "
                                "each in-limit order passed",
                      codes=codes, limits={k: getattr(lim, k) for k in (
                          "max_position_pct", "max_gross_leverage", "daily_loss_stop_pct",
                          "max_drawdown_pct", "price_band_pct", "allow_short")})
