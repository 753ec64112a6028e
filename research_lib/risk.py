"""Pre-trade risk: small pure rules, a latched account state, and the engine that joins them.

* Each rule is a pure function ``rule(check, limits) -> str | None``: a coded denial
  reason carrying the numbers (``MAX_POSITION_EXCEEDED: limit=0.15 after=0.1712 symbol=SPY``)
  or ``None``. A denial is an outcome, never an exception.
* :class:`TradingState`: ``ACTIVE``; ``REDUCING`` after a daily loss (only orders that shrink
  a position pass, until the next session day); ``HALTED`` after the drawdown cut (the
  session flattens, only closing orders pass, until a person runs ``research-lib reset-halt``).
  Both are latched in the ledger and rebuilt from it on restart.
* :func:`clip_target` is what sizing calls first, so most targets never reach a limit;
  the engine still checks every order.

Limits are compared with a tolerance of ``EPS`` (1e-9 of equity) so that float noise in
``qty * price / equity`` never denies an order that is exactly at a limit; anything a hair
above (1e-6) is denied.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .config import RiskLimits

__all__ = [
    "EPS",
    "OrderCheck",
    "RiskEngine",
    "RiskLimits",
    "StateChange",
    "TradingState",
    "clip_target",
    "daily_loss_breached",
    "drawdown_breached",
    "reason_code",
    "refuse_shared_underlying",
    "underlying_key",
]

EPS = 1e-9


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


def _n(x: float) -> str:
    """Numbers in reasons: 4 decimals for ratios, plain for others, stable across runs."""
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.2f}"


def _above(x: float, limit: float) -> str:
    """``x`` (above ``limit``) with enough digits that it does not read as the limit."""
    s = _n(x)
    return s if s != _n(limit) else f"{x:.10g}"


def _q(x: float) -> str:
    return f"{x:.10g}"


def reason_code(reason: str | None) -> str | None:
    """``"MAX_POSITION_EXCEEDED: limit=..."`` -> ``"MAX_POSITION_EXCEEDED"``."""
    if reason is None:
        return None
    return reason.split(":", 1)[0].strip()


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """Everything a rule may look at, valued at decision prices (the last known close).

    ``position`` is the projected quantity before this order (held + open orders);
    ``gross`` the projected gross exposure (currency) of the whole book before it;
    ``cash`` the projected cash (cash minus what open buys will cost).
    """

    symbol: str
    qty: float
    price: float
    reference: float
    position: float
    equity: float
    gross: float
    cash: float
    state: TradingState = TradingState.ACTIVE
    cost_rate: float = 0.0  # slippage + commission share of notional, for buying power

    @property
    def after(self) -> float:
        return self.position + self.qty

    @property
    def reduces(self) -> bool:
        """True when the order moves the position toward zero without crossing it. An
        ``after`` within :data:`EPS` of zero is zero: quantities are sums of rounded fills,
        so a full close can leave float noise (25.302899999999996 - 25.3029) that must not
        turn a closing order into a new short."""
        p, a = self.position, self.after
        if abs(a) <= EPS:
            a = 0.0
        if p > 0:
            return 0 <= a < p
        if p < 0:
            return p < a <= 0
        return False


# ----------------------------------------------------------------------------- rules
def rule_equity(c: OrderCheck, lim: RiskLimits) -> str | None:
    if not math.isfinite(c.equity) or c.equity <= 0:
        return f"NO_EQUITY: equity={_n(c.equity)} symbol={c.symbol}"
    return None


def rule_price(c: OrderCheck, lim: RiskLimits) -> str | None:
    if c.price is None or not math.isfinite(c.price) or c.price <= 0:
        return f"NO_PRICE: price={c.price} symbol={c.symbol}"
    return None


def rule_quantity(c: OrderCheck, lim: RiskLimits) -> str | None:
    if not math.isfinite(c.qty) or c.qty == 0:
        return f"BAD_QUANTITY: qty={c.qty} symbol={c.symbol}"
    return None


def rule_price_band(c: OrderCheck, lim: RiskLimits) -> str | None:
    """Circuit breaker: a price outside the band around the reference (previous close)."""
    return price_band_breached(c.symbol, c.price, c.reference, lim.price_band_pct)


def price_band_breached(symbol: str, price: float, reference: float, band: float) -> str | None:
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return None  # first bar of a symbol: nothing to compare with
    move = price / reference - 1.0
    if abs(move) > band + EPS:
        return (f"PRICE_BAND_BREACHED: band={_n(band)} move={_n(move)} price={_q(price)} "
                f"reference={_q(reference)} symbol={symbol}")
    return None


def price_band_mask(price: np.ndarray, reference: np.ndarray, band: float) -> np.ndarray:
    """:func:`price_band_breached` over arrays (the fast path): True where a finite, positive
    reference exists and the move is outside the band, with the same arithmetic."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(reference) & (reference > 0)
        return ok & (np.abs(price / reference - 1.0) > band + EPS)


def rule_trading_state(c: OrderCheck, lim: RiskLimits) -> str | None:
    if c.state is TradingState.HALTED and not c.reduces:
        return (f"HALTED_CLOSING_ONLY: position={_q(c.position)} after={_q(c.after)} "
                f"symbol={c.symbol}")
    if c.state is TradingState.REDUCING and not c.reduces:
        return f"REDUCING_ONLY: position={_q(c.position)} after={_q(c.after)} symbol={c.symbol}"
    return None


def rule_short(c: OrderCheck, lim: RiskLimits) -> str | None:
    if not lim.allow_short and c.after < -EPS:
        return f"SHORT_NOT_ALLOWED: position={_q(c.position)} after={_q(c.after)} symbol={c.symbol}"
    return None


def rule_max_position(c: OrderCheck, lim: RiskLimits) -> str | None:
    """|position after| / equity <= max_position_pct; an order that shrinks a position
    already above the limit passes (it lowers risk)."""
    w_after = abs(c.after * c.price) / c.equity
    if w_after > lim.max_position_pct + EPS and abs(c.after) > abs(c.position):
        return (f"MAX_POSITION_EXCEEDED: limit={_n(lim.max_position_pct)} "
                f"after={_above(w_after, lim.max_position_pct)} "
                f"symbol={c.symbol}")
    return None


def rule_max_gross(c: OrderCheck, lim: RiskLimits) -> str | None:
    before = c.gross / c.equity
    g_after = (c.gross - abs(c.position * c.price) + abs(c.after * c.price)) / c.equity
    if g_after > lim.max_gross_leverage + EPS and g_after > before:
        return (f"MAX_GROSS_EXCEEDED: limit={_n(lim.max_gross_leverage)} "
                f"after={_above(g_after, lim.max_gross_leverage)} "
                f"symbol={c.symbol}")
    return None


def rule_buying_power(c: OrderCheck, lim: RiskLimits) -> str | None:
    """A buy must be payable from projected cash at the decision price plus costs."""
    if c.qty <= 0 or c.reduces:
        return None
    need = c.qty * c.price * (1.0 + c.cost_rate)
    if need > c.cash + EPS * c.equity:
        return f"INSUFFICIENT_BUYING_POWER: need={_n(need)} cash={_n(c.cash)} symbol={c.symbol}"
    return None


RULES = (
    rule_equity,
    rule_price,
    rule_quantity,
    rule_price_band,
    rule_trading_state,
    rule_short,
    rule_max_position,
    rule_max_gross,
    rule_buying_power,
)


# ------------------------------------------------------------------ account limits
def daily_loss_breached(equity: float, day_start: float, limit: float) -> str | None:
    """Loss since the day's starting equity at or beyond ``limit`` (0.03 = 3%)."""
    if not (math.isfinite(equity) and math.isfinite(day_start)) or day_start <= 0:
        return None
    loss = 1.0 - equity / day_start
    if loss >= limit - EPS:
        return (f"DAILY_LOSS_LIMIT: limit={_n(limit)} loss={_n(loss)} equity={_n(equity)} "
                f"day_start={_n(day_start)}")
    return None


def drawdown_breached(equity: float, peak: float, limit: float) -> str | None:
    """Drawdown from peak equity at or beyond ``limit`` (0.20 = 20%)."""
    if not (math.isfinite(equity) and math.isfinite(peak)) or peak <= 0:
        return None
    dd = 1.0 - equity / peak
    if dd >= limit - EPS:
        return f"MAX_DRAWDOWN: limit={_n(limit)} drawdown={_n(dd)} equity={_n(equity)} peak={_n(peak)}"
    return None


def account_limits_block(equity: np.ndarray, peak: np.ndarray, day_start: np.ndarray,
                         lim: RiskLimits) -> np.ndarray:
    """:func:`drawdown_breached` or :func:`daily_loss_breached` over arrays (the fast path):
    True where either limit is reached, with the same arithmetic and tolerance."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = (np.isfinite(equity) & np.isfinite(peak) & (peak > 0)
              & ((1.0 - equity / peak) >= lim.max_drawdown_pct - EPS))
        dl = (np.isfinite(equity) & np.isfinite(day_start) & (day_start > 0)
              & ((1.0 - equity / day_start) >= lim.daily_loss_stop_pct - EPS))
    return dd | dl


# ------------------------------------------------------------- one underlying
# A crypto pair quoted in a dollar or a dollar stablecoin is its base coin: BTC-USD,
# BTCUSDT, BTC/USD and BTC-USDT are one exposure (the sample serves BTCUSDT as BTC-USD).
_DOLLAR_PAIR = re.compile(r"^([A-Z0-9]{2,10}?)[-/_]?(USD|USDT|USDC)$")


def underlying_key(symbol: str, served_as: str | None = None) -> str:
    """What a symbol is an exposure to: the series the source serves it as (``SPY`` on the
    sample is ``^GSPC``), the base coin of a dollar crypto pair, case-insensitive."""
    name = re.sub(r"\s+", "", str(served_as or symbol)).upper()  # OCC with or without space
    m = _DOLLAR_PAIR.match(name)
    return m.group(1) if m else name


def refuse_shared_underlying(symbols: list[str], served: dict[str, str] | None = None,
                             where: str = "--symbols") -> None:
    """Position limits are per underlying instrument, and a session holds one cap per
    symbol: two symbols that resolve to the same underlying (``BTC-USD,BTCUSDT``; ``SPY``
    and ``^GSPC`` on the sample, which serves one as the other) would get two caps on one
    exposure. Refused (:class:`~research_lib.errors.ConfigError`), naming both."""
    from .errors import ConfigError

    seen: dict[str, str] = {}
    for s in symbols:
        key = underlying_key(s, (served or {}).get(s))
        if key in seen:
            other = seen[key]
            via = (served or {}).get(s) or (served or {}).get(other)
            how = f" (both served as {via})" if via and via not in (s, other) else ""
            raise ConfigError(
                f"{where}: {other} and {s} are the same underlying {key}{how}; each symbol "
                "gets its own position cap, so together they would hold up to twice "
                f"max_position_pct in {key}; list only one of them")
        seen[key] = s


def refuse_identical_series(frames: dict[str, Any], where: str = "--symbols") -> None:
    """One series under two names (``AAA.csv`` copied to ``AAA2.csv``) would get two
    position caps on one exposure, as two names of one underlying do: two symbols whose
    bars are identical (the same timestamps and closes) are refused, naming both. A
    benchmark that replays deliberate copies of a real series as separate instruments says
    so with ``replicas=True`` (``SessionSpec``), which skips this check."""
    import hashlib

    import numpy as np

    from .errors import ConfigError

    seen: dict[bytes, str] = {}
    for s, df in frames.items():
        if not len(df):
            continue
        h = hashlib.sha256(np.asarray(df.index.asi8, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(df["close"].to_numpy(dtype=np.float64)).tobytes())
        key = h.digest()
        if key in seen:
            raise ConfigError(
                f"{where}: {seen[key]} and {s} have identical bars ({len(df)} bars, "
                f"{df.index[0].date()} .. {df.index[-1].date()}): one series under two names "
                "would get two position caps; list only one of them (a benchmark replaying "
                "deliberate copies as separate instruments passes replicas=True)")
        seen[key] = s


def clip_target(weight: float, limits: RiskLimits) -> tuple[float, str | None]:
    """Clip a target weight to ``[-max, max]`` (``[0, max]`` long-only); say why when clipped."""
    w = weight
    if not limits.allow_short and w < 0:
        w = 0.0
    cap = limits.max_position_pct
    if w > cap:
        w = cap
    elif w < -cap:
        w = -cap
    if w != weight:
        return w, f"TARGET_CLIPPED: limit={_n(cap)} target={_n(weight)} clipped={_n(w)}"
    return w, None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A transition of the account (``scope="account"``) or of one symbol's breaker."""

    scope: str
    from_state: str
    to_state: str
    reason: str


@dataclass
class RiskEngine:
    """Checks orders against the limits and holds the latched account state.

    ``day`` is the session day the state was last evaluated on; ``day_start_equity`` the
    equity the day began with; ``peak`` the highest marked equity (reset by reset-halt).
    """

    limits: RiskLimits = field(default_factory=RiskLimits)
    state: TradingState = TradingState.ACTIVE
    day: str | None = None
    day_start_equity: float = float("nan")
    peak: float = float("nan")
    halted_symbols: dict[str, str] = field(default_factory=dict)

    def check(self, c: OrderCheck) -> str | None:
        """The first denial reason for this order, or ``None`` if it may be sent."""
        for rule in RULES:
            reason = rule(c, self.limits)
            if reason is not None:
                return reason
        return None

    # -- account state -----------------------------------------------------------
    def _to(self, new: TradingState, reason: str) -> StateChange:
        old = self.state
        self.state = new
        return StateChange("account", old.value, new.value, reason)

    def start_day(self, day: str, equity: float) -> list[StateChange]:
        """Called at the first step of each session day with the equity the day starts at."""
        out: list[StateChange] = []
        if self.day is not None and day <= self.day:
            return out
        prev, self.day = self.day, day
        self.day_start_equity = equity
        if not math.isfinite(self.peak):
            self.peak = equity
        if self.state is TradingState.REDUCING:
            out.append(self._to(TradingState.ACTIVE,
                                f"NEW_SESSION_DAY: day={day} previous={prev}"))
        return out

    def on_mark(self, equity: float) -> list[StateChange]:
        """After the step's fills and marks: latch REDUCING / HALTED when a limit is hit."""
        out: list[StateChange] = []
        if math.isfinite(equity) and (not math.isfinite(self.peak) or equity > self.peak):
            self.peak = equity
        if self.state is not TradingState.HALTED:
            dd = drawdown_breached(equity, self.peak, self.limits.max_drawdown_pct)
            if dd is not None:
                out.append(self._to(TradingState.HALTED, dd))
                return out
        if self.state is TradingState.ACTIVE:
            dl = daily_loss_breached(equity, self.day_start_equity,
                                     self.limits.daily_loss_stop_pct)
            if dl is not None:
                out.append(self._to(TradingState.REDUCING, dl))
        return out

    def marks_block(self, equity: np.ndarray, days: np.ndarray, last_equity: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`start_day` then :meth:`on_mark` over a block of steps of an ACTIVE account
        whose day is set (the fast path): the day-start equity and peak after each step, and
        where a limit is reached (from that step on, the step code runs). Changes nothing."""
        b = len(equity)
        newday = np.empty(b, dtype=bool)
        newday[0] = days[0] > self.day
        newday[1:] = days[1:] > days[:-1]
        prev_eq = np.concatenate([[last_equity], equity[:-1]])
        at = np.maximum.accumulate(np.where(newday, np.arange(b), -1))
        day_start = np.where(at >= 0, prev_eq[np.maximum(at, 0)], self.day_start_equity)
        peak = np.maximum.accumulate(np.concatenate([[self.peak], equity]))[1:]
        return day_start, peak, account_limits_block(equity, peak, day_start, self.limits)

    def reset_halt(self, equity: float, reason: str) -> StateChange:
        """A person cleared the halt: ACTIVE again, with the peak reset to today's equity."""
        self.peak = equity
        return self._to(TradingState.ACTIVE, f"RESET_HALT: {reason}")

    # -- per-symbol circuit breaker ---------------------------------------------
    def observe_price(self, symbol: str, price: float, reference: float) -> StateChange | None:
        """Record a symbol's breaker tripping (price outside the band around the previous
        close) or clearing (back inside); orders are denied by :func:`rule_price_band`."""
        breach = price_band_breached(symbol, price, reference, self.limits.price_band_pct)
        if breach is not None and symbol not in self.halted_symbols:
            self.halted_symbols[symbol] = breach
            return StateChange(symbol, TradingState.ACTIVE.value, TradingState.HALTED.value, breach)
        if breach is None and symbol in self.halted_symbols:
            del self.halted_symbols[symbol]
            return StateChange(symbol, TradingState.HALTED.value, TradingState.ACTIVE.value,
                               f"PRICE_BAND_CLEARED: price={_q(price)} reference={_q(reference)}")
        return None
