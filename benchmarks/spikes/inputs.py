"""What both prototypes take: the replay's arrays (research_lib's own ``ReplayFeed``: the
union clock, opens, closes, fill prices), the SMA(10)/SMA(20) probabilities for the whole
clock (the arithmetic of ``research_lib.paper.fast.Pass1 (batched baselines)``), the limits and costs
as one float array, the account state as arrays over symbols, and the record layouts
(numpy structured arrays, one per ledger table, codes instead of reason strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# -------------------------------------------------------------------------- codes
ACTIVE, REDUCING, HALTED = 0, 1, 2
STATES = ("ACTIVE", "REDUCING", "HALTED")
# decision verdicts
V_HOLD, V_SUBMITTED, V_DENIED, V_NO_SIGNAL, V_NO_PRICE, V_HALTED = range(6)
VERDICTS = ("HOLD", "SUBMITTED", "DENIED", "NO_SIGNAL", "NO_PRICE", "HALTED")
# reasons (decisions) and codes (risk events); 0: none
R_NONE, R_BAND, R_CLIPPED_TO_ZERO, R_WARMUP = 0, 1, 2, 3
D_NO_EQUITY, D_NO_PRICE, D_BAD_QTY, D_PRICE_BAND, D_HALTED_ONLY, D_REDUCING_ONLY = range(10, 16)
D_SHORT, D_MAX_POSITION, D_MAX_GROSS, D_BUYING_POWER = range(16, 20)
C_TARGET_CLIPPED, C_TRIMMED, C_REDUCING_CLIPPED, C_CASH_CLIPPED, C_GROSS_CLIPPED = range(30, 35)
J_PRICE_BAND_AT_FILL, J_INSUFFICIENT_CASH = 40, 41
B_DAILY_LOSS, B_DRAWDOWN = 50, 51
S_NEW_DAY, S_BREAKER_TRIP, S_BREAKER_CLEAR = 60, 61, 62
CODES = {
    R_BAND: "WITHIN_REBALANCE_BAND", R_CLIPPED_TO_ZERO: "CLIPPED_TO_ZERO",
    R_WARMUP: "BASELINE_WARMUP", D_NO_EQUITY: "NO_EQUITY", D_NO_PRICE: "NO_PRICE",
    D_BAD_QTY: "BAD_QUANTITY", D_PRICE_BAND: "PRICE_BAND_BREACHED",
    D_HALTED_ONLY: "HALTED_CLOSING_ONLY", D_REDUCING_ONLY: "REDUCING_ONLY",
    D_SHORT: "SHORT_NOT_ALLOWED", D_MAX_POSITION: "MAX_POSITION_EXCEEDED",
    D_MAX_GROSS: "MAX_GROSS_EXCEEDED", D_BUYING_POWER: "INSUFFICIENT_BUYING_POWER",
    C_TARGET_CLIPPED: "TARGET_CLIPPED", C_TRIMMED: "POSITION_TRIMMED",
    C_REDUCING_CLIPPED: "REDUCING_ONLY_CLIPPED", C_CASH_CLIPPED: "CASH_CLIPPED",
    C_GROSS_CLIPPED: "GROSS_CLIPPED", J_PRICE_BAND_AT_FILL: "PRICE_BAND_AT_FILL",
    J_INSUFFICIENT_CASH: "INSUFFICIENT_CASH", B_DAILY_LOSS: "DAILY_LOSS_LIMIT",
    B_DRAWDOWN: "MAX_DRAWDOWN", S_NEW_DAY: "NEW_SESSION_DAY",
    S_BREAKER_TRIP: "PRICE_BAND_BREACHED", S_BREAKER_CLEAR: "PRICE_BAND_CLEARED",
}
# risk event kinds
K_CLIP, K_DENIAL, K_REJECTION, K_BREACH = 0, 1, 2, 3
KINDS = ("clip", "denial", "rejection", "breach")
# order kinds
O_SIGNAL, O_TRIM, O_FLATTEN = 0, 1, 2
ORDER_KINDS = ("signal", "trim", "flatten")

# params (one float64 array)
(P_SLIP, P_COMM_BPS, P_PER_SHARE, P_LOT, P_MAX_POS, P_MAX_GROSS, P_DAILY_LOSS, P_MAX_DD,
 P_BAND, P_BUFFER, P_ALLOW_SHORT, P_LONG_THR, P_SHORT_THR, P_TARGET_W, P_REBALANCE,
 N_PARAMS) = range(16)
# account scalars (one float64 array)
A_CASH, A_LAST_EQUITY, A_PEAK, A_DSE, A_STATE, A_DAY, A_SEQ, A_NBOOK, N_ACCT = range(9)
# record counters (one int64 array)
N_EQ, N_POS, N_DEC, N_ORD, N_FILL, N_RISK, N_STATE, N_COUNTS = range(8)

# ------------------------------------------------------------------------ records
EQUITY = np.dtype([("step", "i8"), ("cash", "f8"), ("equity", "f8"), ("gross", "f8"),
                   ("net", "f8"), ("peak", "f8"), ("day_start_equity", "f8"),
                   ("drawdown", "f8"), ("day", "i8"), ("state", "i1")], align=True)
POSITION = np.dtype([("step", "i8"), ("symbol", "i4"), ("qty", "f8"), ("avg_price", "f8"),
                     ("mark", "f8"), ("value", "f8"), ("realized", "f8"),
                     ("unrealized", "f8"), ("fees", "f8")], align=True)
DECISION = np.dtype([("step", "i8"), ("symbol", "i4"), ("probability", "f8"),
                     ("target", "f8"), ("verdict", "i1"), ("reason", "i1"), ("qty", "f8")],
                    align=True)
ORDER = np.dtype([("step", "i8"), ("symbol", "i4"), ("qty", "f8"), ("decision_price", "f8"),
                  ("kind", "i1"), ("denied", "i1")], align=True)
FILL = np.dtype([("step", "i8"), ("symbol", "i4"), ("order_step", "i8"), ("qty", "f8"),
                 ("price", "f8"), ("base_price", "f8"), ("commission", "f8"),
                 ("cash_delta", "f8")], align=True)
RISK = np.dtype([("step", "i8"), ("symbol", "i4"), ("kind", "i1"), ("code", "i1"),
                 ("a", "f8"), ("b", "f8")], align=True)  # a, b: the numbers of the reason
STATE = np.dtype([("step", "i8"), ("scope", "i4"), ("from_state", "i1"), ("to_state", "i1"),
                  ("code", "i1"), ("equity", "f8"), ("peak", "f8")], align=True)
TABLES = {"equity": EQUITY, "positions": POSITION, "decisions": DECISION, "orders": ORDER,
          "fills": FILL, "risk_events": RISK, "state_changes": STATE}


@dataclass
class Inputs:
    symbols: list[str]
    OPEN: np.ndarray  # (T, N) opens
    C: np.ndarray  # (T, N) closes
    FILLP: np.ndarray  # (T, N) the fill price of a bar (open, else close), NaN: no bar
    HAS: np.ndarray  # (T, N) a bar exists
    P: np.ndarray  # (T, N) SMA probability 1.0/0.0, NaN: warm-up or no bar
    DAY: np.ndarray  # (T,) session day as YYYYMMDD
    CRYPTO: np.ndarray  # (N,) bool
    prm: np.ndarray  # (N_PARAMS,)
    initial_cash: float
    n_warmup: int
    ts: list[str]


@dataclass
class Account:
    """The account as arrays over symbols (and a few scalars)."""

    acct: np.ndarray
    qty: np.ndarray
    avg: np.ndarray
    realized: np.ndarray
    fees: np.ndarray
    last: np.ndarray
    prev: np.ndarray
    breaker: np.ndarray  # a symbol's price-band breaker is tripped
    book: np.ndarray  # symbols in the order of their first fill (the broker's dict order)
    o_qty: np.ndarray  # the open order of a symbol (0: none)
    o_dp: np.ndarray  # its decision price
    o_step: np.ndarray
    o_seq: np.ndarray  # submission order
    # scratch for one step (kept here so a compiled loop allocates nothing)
    s_cur: np.ndarray
    s_tq: np.ndarray
    s_target: np.ndarray
    s_prob: np.ndarray
    s_kind: np.ndarray
    s_verdict: np.ndarray
    s_reason: np.ndarray
    s_dqty: np.ndarray
    s_cand: np.ndarray
    s_order: np.ndarray

    @classmethod
    def new(cls, n: int, cash: float) -> Account:
        acct = np.zeros(N_ACCT)
        acct[A_CASH] = cash
        acct[A_LAST_EQUITY] = cash
        acct[A_PEAK] = np.nan
        acct[A_DSE] = np.nan
        acct[A_DAY] = -1
        f = np.zeros
        nan = np.full(n, np.nan)
        return cls(acct, f(n), f(n), f(n), f(n), nan.copy(), nan.copy(), f(n, np.bool_),
                   f(n, np.int64), f(n), f(n), f(n, np.int64), f(n, np.int64),
                   f(n), f(n), f(n), f(n), f(n, np.int8), f(n, np.int8), f(n, np.int8), f(n),
                   f(n, np.int64), f(n, np.int64))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.acct, self.qty, self.avg, self.realized, self.fees, self.last, self.prev,
                self.breaker, self.book, self.o_qty, self.o_dp, self.o_step, self.o_seq,
                self.s_cur, self.s_tq, self.s_target, self.s_prob, self.s_kind,
                self.s_verdict, self.s_reason, self.s_dqty, self.s_cand, self.s_order)


class Records:
    """Preallocated record arrays for ``steps`` steps of ``n`` symbols (one chunk)."""

    def __init__(self, steps: int, n: int) -> None:
        cap = steps * n
        self.eq = np.zeros(steps, EQUITY)
        self.pos = np.zeros(cap, POSITION)
        self.dec = np.zeros(cap, DECISION)
        self.ord = np.zeros(cap, ORDER)
        self.fill = np.zeros(cap, FILL)
        self.risk = np.zeros(2 * cap + 16, RISK)
        self.st = np.zeros(cap + 16, STATE)
        self.counts = np.zeros(N_COUNTS, np.int64)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.eq, self.pos, self.dec, self.ord, self.fill, self.risk, self.st,
                self.counts)

    def tables(self) -> dict[str, np.ndarray]:
        c = self.counts
        return {"equity": self.eq[: c[N_EQ]], "positions": self.pos[: c[N_POS]],
                "decisions": self.dec[: c[N_DEC]], "orders": self.ord[: c[N_ORD]],
                "fills": self.fill[: c[N_FILL]], "risk_events": self.risk[: c[N_RISK]],
                "state_changes": self.st[: c[N_STATE]]}


# ------------------------------------------------------------------------- inputs
def sma_probabilities(feed: Any) -> np.ndarray:
    """1.0 when SMA(10) > SMA(20) of a symbol's closes, 0.0 otherwise, NaN in warm-up or
    where the symbol has no bar: the batch pass's arithmetic (means of C-contiguous rows,
    the same floats as the incremental baseline)."""
    from numpy.lib.stride_tricks import sliding_window_view

    T, N = feed.has.shape
    P = np.full((T, N), np.nan)
    for j in range(N):
        idx = np.flatnonzero(feed.has[:, j])
        c = np.ascontiguousarray(feed.C[idx, j])
        prob = np.full(len(c), np.nan)
        if len(c) >= 20:
            W = np.ascontiguousarray(sliding_window_view(c, 20))
            fast = np.mean(np.ascontiguousarray(W[:, -10:]), axis=1)
            slow = np.mean(W, axis=1)
            okm = np.isfinite(fast) & np.isfinite(slow)
            prob[19:] = np.where(okm, (fast > slow).astype(np.float64), np.nan)
        P[idx, j] = prob
    P[: feed.n_warmup] = np.nan
    return P


def build(frames: dict[str, Any], symbols: list[str], start: Any, config: Path) -> Inputs:
    """The arrays of one replay of ``symbols`` from ``start`` under the config dir."""
    from research_lib.config import load_assets, load_risk, load_session
    from research_lib.session import CRYPTO_CALENDAR, ReplayFeed

    risk = load_risk(config / "risk.yaml")
    settings = load_session(config / "session.yaml")
    assets = load_assets(config / "assets.yaml")
    ses, sig = settings.session, settings.signal
    feed = ReplayFeed(frames, symbols, start)
    crypto = np.array([assets.classify(s) == "crypto"
                       or assets.asset_class(assets.classify(s)).calendar == CRYPTO_CALENDAR
                       for s in symbols])
    prm = np.zeros(N_PARAMS)
    prm[P_SLIP] = ses.slippage_bps
    prm[P_COMM_BPS] = ses.commission_bps
    prm[P_PER_SHARE] = ses.commission_per_share
    prm[P_LOT] = ses.crypto_lot_size
    prm[P_MAX_POS] = risk.max_position_pct
    prm[P_MAX_GROSS] = risk.max_gross_leverage
    prm[P_DAILY_LOSS] = risk.daily_loss_stop_pct
    prm[P_MAX_DD] = risk.max_drawdown_pct
    prm[P_BAND] = risk.price_band_pct
    prm[P_BUFFER] = risk.cash_buffer_pct
    prm[P_ALLOW_SHORT] = float(risk.allow_short)
    prm[P_LONG_THR] = sig.long_threshold
    prm[P_SHORT_THR] = sig.short_threshold
    prm[P_TARGET_W] = sig.target_weight
    prm[P_REBALANCE] = ses.rebalance_band
    day = np.array([int(d.replace("-", "")) for d in feed.days], dtype=np.int64)
    return Inputs(list(symbols), feed.O, feed.C, feed.fill, feed.has, sma_probabilities(feed),
                  day, crypto, prm, float(ses.initial_cash), int(feed.n_warmup), feed.ts)


def warm_up(inp: Inputs, acc: Account) -> None:
    """Closes of the warm-up bars (before the start): the last and previous close."""
    w = inp.n_warmup
    for j in range(inp.C.shape[1]):
        idx = np.flatnonzero(inp.HAS[:w, j])
        if len(idx):
            acc.last[j] = inp.C[idx[-1], j]
        if len(idx) > 1:
            acc.prev[j] = inp.C[idx[-2], j]
