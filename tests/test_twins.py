"""Each vectorised twin of a rule (the fast replay's form) against its scalar rule, on the
same inputs: the same floats, the same verdicts, and where a twin only screens (``event``)
it is conservative: a step it calls quiet is one where the scalar rule does nothing but a
HOLD or NO_SIGNAL decision."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research_lib.baselines import BuyAndHold, SmaCross
from research_lib.broker import Fill, PaperBroker, round_qty, round_qty_array
from research_lib.config import RiskLimits, SessionSettings, SignalConfig
from research_lib.ledger import StepRecord
from research_lib.paper.account import Account, Desk
from research_lib.paper.rows import EquityRow, PositionRow, Same, block, position_rows
from research_lib.paper.stages import candidates, plan, quiet_plan_block
from research_lib.risk import (
    RiskEngine,
    TradingState,
    daily_loss_breached,
    drawdown_breached,
    price_band_breached,
    price_band_mask,
)

prices = st.floats(min_value=0.01, max_value=5e4, allow_nan=False)
maybe_price = st.one_of(prices, st.just(float("nan")), st.just(0.0), st.just(-1.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(maybe_price, maybe_price), min_size=1, max_size=30),
       st.floats(min_value=0.001, max_value=2.0))
def test_price_band_mask_when_compared_then_equals_price_band_breached(pairs, band):
    p = np.array([a for a, _ in pairs])
    r = np.array([b for _, b in pairs])
    want = [price_band_breached("X", a, b, band) is not None for a, b in pairs]
    assert price_band_mask(p, r, band).tolist() == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=50_000, max_value=150_000), min_size=1, max_size=40),
       st.lists(st.integers(0, 2), min_size=40, max_size=40),
       st.floats(min_value=80_000, max_value=120_000))
def test_marks_block_when_stepped_then_same_day_start_peak_and_first_breach(eqs, gaps, start):
    lim = RiskLimits()
    days, d = [], 10
    for k in range(len(eqs)):
        d += gaps[k]
        days.append(f"2020-01-{d:02d}")
    eng = RiskEngine(lim, TradingState.ACTIVE, "2020-01-10", start, start)
    eq = np.array(eqs)
    dse, peak, breach = eng.marks_block(eq, np.array(days), start)
    # the scalar path: start_day, then on_mark, step by step, on a copy
    e2 = dataclasses.replace(eng, halted_symbols={})
    last = start
    for k, x in enumerate(eqs):
        e2.start_day(days[k], last)
        changes = e2.on_mark(x)
        scalar_breach = (drawdown_breached(x, e2.peak, lim.max_drawdown_pct) is not None
                         or daily_loss_breached(x, e2.day_start_equity,
                                                lim.daily_loss_stop_pct) is not None)
        assert bool(breach[k]) == scalar_breach
        if changes:  # the twin stops the block here: the step code takes over
            assert breach[k]
            break
        assert dse[k] == e2.day_start_equity and peak[k] == e2.peak
        last = x
    assert eng.state is TradingState.ACTIVE and eng.peak == start  # the twin changes nothing


def _broker_with(fills: list[tuple[str, float, float]]) -> PaperBroker:
    return PaperBroker(100_000.0).restore(
        [Fill(f"c{k}", k, "t", sym, q, px, px, 0.5, -(q * px) - 0.5)
         for k, (sym, q, px) in enumerate(fills)], [], [])


fill_lists = st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D"]),
                                st.floats(min_value=-50, max_value=50).map(lambda q: round(q, 3)),
                                st.floats(min_value=1, max_value=500)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(fill_lists, st.lists(st.lists(maybe_price, min_size=4, max_size=4), min_size=1,
                            max_size=6))
def test_mark_block_when_compared_then_each_row_equals_mark(fills, rows):
    b = _broker_with([f for f in fills if f[1] != 0])
    syms = ["A", "B", "C", "D"]
    M = np.array(rows)
    eq, gross, net = b.mark_block(M, {s: j for j, s in enumerate(syms)})
    for k, row in enumerate(rows):
        want = b.mark(dict(zip(syms, row, strict=True)))
        got = (float(eq[k]), float(gross[k]), float(net[k]))
        assert all((g == w) or (math.isnan(g) and math.isnan(w))
                   for g, w in zip(got, want, strict=True)), (got, want)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(min_value=-1e7, max_value=1e7), st.just(float("nan")),
                          st.just(float("inf"))), min_size=1, max_size=20),
       st.lists(st.booleans(), min_size=20, max_size=20),
       st.sampled_from([0.0001, 0.001, 0.01]))
def test_round_qty_array_when_compared_then_equals_round_qty(qs, lots, lot):
    q = np.array(qs)
    mask = np.array(lots[: len(qs)])
    got = round_qty_array(q, mask, lot)
    want = [round_qty(x, lot if m else None) for x, m in zip(qs, mask.tolist(), strict=True)]
    assert got.tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(prices, st.just(float("nan"))), min_size=0, max_size=60))
def test_baseline_batch_when_compared_then_equals_the_incremental_rule(closes):
    for cls in (SmaCross, BuyAndHold):
        m = cls(["X"])
        inc = []
        for c in closes:
            m.observe(np.array([0]), np.array([c]))
            p = m.predict(["X"])[0].probability
            inc.append(np.nan if p is None else p)
        got = m.batch(np.array(closes, dtype=float))
        assert np.array_equal(got, np.array(inc, dtype=float), equal_nan=True), cls.__name__


def _desk(n: int, crypto: list[bool], limits: RiskLimits, signal: SignalConfig) -> Desk:
    syms = [f"S{j}" for j in range(n)]
    return Desk(syms, {s: j for j, s in enumerate(syms)}, {s: "equities" for s in syms},
                np.array(crypto), limits, SessionSettings(signal=signal), "run", False, "m",
                None)  # type: ignore[arg-type]


class _P:
    def __init__(self, p: float | None) -> None:
        self.model, self.probability = "m", p
        self.shadow_model = self.shadow_probability = self.fallback_reason = None


def _symbol_columns(lo: int, hi: int) -> st.SearchStrategy:
    """Per symbol: probability (NaN: none), price, held quantity, crypto (lots),
    and whether its bar passed the gate."""
    return st.lists(st.tuples(st.one_of(st.just(float("nan")), st.floats(0, 1)),
                              st.floats(min_value=5, max_value=800),
                              st.sampled_from([0.0, 0.0, 3.0, 25.0, 140.0, -10.0]),
                              st.booleans(), st.booleans()), min_size=lo, max_size=hi)


@settings(max_examples=120, deadline=None)
@given(_symbol_columns(1, 5),
       st.floats(min_value=0.02, max_value=0.3), st.booleans(), st.floats(0.3, 0.6))
def test_quiet_plan_block_when_a_step_is_quiet_then_plan_gives_the_same_decision(
        cols, target_weight, allow_short, long_t):
    _quiet_plan_twin(cols, target_weight, allow_short, long_t)


# many symbols: the full position shrinks to the budget's share (allocation.universe_weight)
@settings(max_examples=40, deadline=None)
@given(_symbol_columns(10, 60),
       st.floats(min_value=0.02, max_value=0.3), st.booleans(), st.floats(0.3, 0.6))
def test_quiet_plan_block_when_many_symbols_share_the_account_then_plan_gives_the_same(
        cols, target_weight, allow_short, long_t):
    _quiet_plan_twin(cols, target_weight, allow_short, long_t)


def _quiet_plan_twin(cols, target_weight, allow_short, long_t):
    n = len(cols)
    lim = RiskLimits(allow_short=allow_short)
    sig = SignalConfig(long_threshold=long_t, short_threshold=long_t - 0.1,
                       target_weight=target_weight)
    desk = _desk(n, [c[3] for c in cols], lim, sig)
    b = _broker_with([(f"S{j}", c[2], c[1]) for j, c in enumerate(cols) if c[2]])
    L = np.array([[c[1] for c in cols]])
    P = np.array([[c[0] for c in cols]])
    ok = np.array([[c[4] for c in cols]])
    Q = np.array([[b.qty(f"S{j}") for j in range(n)]])[0]
    equity, _, _ = b.mark_block(L, desk.index)
    if not (equity[0] > 0):
        return
    acct = Account(b, RiskEngine(lim, TradingState.ACTIVE, "d", equity[0], equity[0]),
                   L[0].copy(), L[0].copy(), float(equity[0]))
    q = quiet_plan_block(desk, P, ok, Q, L, equity)
    rec = StepRecord(1, "t", n)
    plans = {}
    for j in candidates(desk, acct, np.flatnonzero(ok[0]), float(equity[0]), {}):
        pr = None if math.isnan(P[0, j]) else _P(float(P[0, j]))
        plans[j] = plan(desk, acct, rec, j, pr, float(equity[0]), {})
    scalar_event = bool(rec.rows.get("risk_events")) or any(
        p.target_qty is not None for p in plans.values())
    if scalar_event:
        assert q.event[0], "the twin called a step quiet where the rule orders or clips"
        return
    if q.event[0]:
        return  # conservative: allowed, it only costs time
    for j, p in plans.items():
        if not ok[0, j]:
            continue
        d = p.decision
        if math.isnan(P[0, j]):
            assert d[10] == "NO_SIGNAL"
            continue
        assert d[10] == "HOLD"
        if q.moves[0, j]:
            assert d[9] == float(q.target[0, j])
        assert (d[11] is not None) == bool(q.in_band[0, j])


def test_position_rows_when_one_step_then_the_fold_of_each_position():
    b = _broker_with([("B", 3.0, 10.0), ("A", -2.0, 5.0), ("C", 1.0, 7.0), ("C", -1.0, 8.0)])
    syms = ["A", "B", "C", "D"]
    marks = [6.0, float("nan"), 9.0, 4.0]
    rows = [PositionRow(*r) for r in position_rows([7], syms, b.book, np.array([marks]))]
    for r, s, m in zip(rows, syms, marks, strict=True):
        p = b.position(s)
        assert (r.step, r.symbol, r.qty, r.avg_price, r.realized, r.fees) == (
            7, s, p.qty, p.avg_price, p.realized, p.fees)
        assert r.mark == (m if math.isfinite(m) else None)
        if p.qty and math.isfinite(m):
            assert (r.value, r.unrealized) == (p.value(m), p.unrealized(m))
        elif not p.qty:
            assert (r.value, r.unrealized) == (0.0, 0.0)


def test_block_when_a_column_is_missing_or_unknown_then_type_error_naming_it():
    cols = dict(step=[1, 2], ts=["a", "b"], cash=Same(1.0), equity=[1.0, 2.0], gross=[0, 0],
                net=[0, 0], peak=[1, 2], day_start_equity=[1, 1], drawdown=[0, 0],
                day=["d", "d"], state=Same("ACTIVE"))
    rows = block(EquityRow, **cols)
    assert [EquityRow(*r).equity for r in rows] == [1.0, 2.0]
    assert rows[1] == (2, "b", 1.0, 2.0, 0, 0, 2, 1, 0, "d", "ACTIVE")
    with pytest.raises(TypeError, match="missing \\['state'\\]"):
        block(EquityRow, **{k: v for k, v in cols.items() if k != "state"})
    with pytest.raises(TypeError, match="unknown \\['colour'\\]"):
        block(EquityRow, **cols, colour=[1, 2])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sym=st.integers(1, 4), holes=st.booleans())
def test_feed_digests_of_a_block_when_hashed_step_by_step_then_the_same_bytes(seed, n_sym,
                                                                             holes):
    """The fast replay's bar digests of a quiet block (one sha256 update per step when
    every symbol has a bar) are the step code's rolling digest, step by step."""
    from types import SimpleNamespace

    from research_lib.resume import _feed_digest, feed_digests

    rng = np.random.default_rng(seed)
    T = 12
    has = rng.random((T, n_sym)) > 0.3 if holes else np.ones((T, n_sym), dtype=bool)
    arrays = {k: np.where(has, rng.random((T, n_sym)) * 100, np.nan) for k in "OHLCV"}
    feed = SimpleNamespace(has=has, ts=[f"2020-01-{t + 1:02d}T00:00:00+00:00" for t in range(T)],
                           **arrays)
    s = SimpleNamespace(feed=feed, _bars_seen=b"start")
    got = feed_digests(s, 2, 7, 9)
    d, want = b"start", []
    for i in range(9):
        d = _feed_digest(d, feed, 2 + i)
        want.append((7 + i, d.hex()))
    assert got == want and s._bars_seen == d
