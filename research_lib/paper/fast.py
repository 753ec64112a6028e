"""Fast replay (``research-lib paper --fast``): the same ledger as the step loop, faster.

Most steps of a replay are *quiet*: no open order to fill, nothing to buy or sell, no
limit crossed, the account ACTIVE. Their rows (``steps``, ``equity``, ``positions``,
``decisions``) are a function of prices the whole replay already holds, so this engine
computes them in numpy blocks and sends every other step, unchanged, through
:func:`research_lib.paper.step.run_step`. The ledger is the same, row for row
(``tests/test_fast_replay.py`` compares :func:`~research_lib.ledger_read.deterministic_dump` of
both engines over many scenarios).

1. **Pass 1** gates every bar, moves the closes and asks the model, for the whole clock,
   before any trading (:class:`Pass1`), per symbol: in one batch when every bar of the
   symbol passes the gate and the model has a batch form (a rule baseline's ``batch``,
   the ONNX router through ``features.build_arrays`` and one ``predict_columns``); else with
   the step code's own ``gate`` / ``observe`` / ``predict``, step by step. This is sound
   because none of them depends on the account: the features and the model see bars, not
   positions, and symbols share none of that state.
2. **Pass 2** walks the steps. From a step whose state allows it (ACTIVE, no open order,
   no tripped breaker, a finite peak, not the first step), :func:`quiet_run` marks a block
   of steps at once (equity, peak, day start, drawdown and daily-loss tests, breaker and
   position-limit tests, each symbol's plan verdict) and stops at the first step where
   anything could happen; that step runs through the step code.
   A test here may be *conservative*: calling a quiet step an event only costs time.

What differs from the step loop, by design:

* the config is read once (recorded in the ledger); no hot reload in a fast replay;
* the ledger commits every :data:`FLUSH_STEPS` steps (fewer when :data:`FLUSH_ROWS`
  symbol-steps come first) in one transaction, decisions and positions as column blocks
  (:mod:`research_lib.ledger_columns`; a crash loses at
  most those; ``--resume`` recomputes them, identically);
* a quiet step's decisions are in the ledger only: ``events.jsonl`` gets the records of the
  steps that ran through the step code, and a ``fast_replay`` summary record;
* the E2D latency of a quiet step is its block's time over its steps (pass 1 excluded).

Kill switches and Ctrl+C: the kill switch is still read before every order (orders only
happen in steps that run through the step code); a stop request ends the run between blocks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..baselines import BuyAndHold, Prediction, SmaCross
from ..errors import LedgerError
from ..ledger import now_iso, step_rows
from ..ledger_columns import BULK_TABLES, BlockBuilder
from ..resume import feed_digests
from ..risk import TradingState, price_band_mask
from ..telemetry import get_logger, log_event
from .rows import EquityRow, Same, StepRow, block, position_columns
from .stages import band_reason, quiet_plan_block
from .step import run_step

if TYPE_CHECKING:
    from .account import SessionLike as Session
    from .feeds import StepBars

log = get_logger("session")

FLUSH_STEPS = 2048  # steps per ledger transaction, at most
FLUSH_ROWS = 400_000  # symbol-steps per transaction, at most: memory flat in bars and symbols
PREDICT_ROWS = 65_536  # symbol-bars of features per batched inference call, about
BLOCK_MIN, BLOCK_MAX = 16, 4096  # steps tested at once for quiet: grows while all are


# ---------------------------------------------------------------------------- pass 1
@dataclass(slots=True)
class StepInput:
    """What :meth:`Session.step` takes from pass 1 for one step."""

    bars: Any  # the bars that passed the gate
    bad: list[tuple[int, str]]
    preds: dict[int, Any]
    last: np.ndarray  # last good closes after the step's bars
    prev: np.ndarray  # the good closes before those
    notes: list[tuple[int, str, str]]  # the gate's jump events (research_lib.data.jumps)


class Pass1:
    """Gate verdicts, closes and predictions for every clock step of a replay.

    Per symbol, one of two ways, with the same numbers: **batched** when every bar of the
    symbol passes the gate and the model has a batch form (a rule baseline's ``batch``;
    the ONNX router through :func:`research_lib.features.build_arrays` and one
    ``predict_columns``, no object per row); else **step by step** through the step code's own ``gate`` /
    ``observe`` / ``predict`` (any model; a symbol with a refused or held bar). Symbols do
    not share gate, feature or model state, and a row's prediction does not depend on the
    rows predicted with it, so the split changes no decision."""

    def __init__(self, s: Session) -> None:
        feed = s.feed
        T, N = len(feed), s.n
        self.L = np.full((T, N), np.nan)  # last good close after step t
        self.PL = np.full((T, N), np.nan)  # the good close before it
        self.P = np.full((T, N), np.nan)  # probability (NaN: none) of a good bar at t
        self.ok = np.zeros((T, N), dtype=bool)  # a bar at t passed the gate
        self.bad: dict[int, tuple[Any, list[tuple[int, str]]]] = {}
        self.notes: dict[int, list[tuple[int, str, str]]] = {}  # jump events at step t
        self.noted = np.zeros(T, dtype=bool)  # steps with jump events: never quiet
        self.block = BLOCK_MIN  # steps quiet_run tests next (grows while whole blocks pass)
        self.known_event = -1  # a step quiet_run already found not quiet
        self.label = s.model_label
        self.model = s.model
        self.symbols = s.symbols
        self.sym_arr = np.asarray(s.symbols, dtype=object)
        self.cls_arr = np.asarray([s.desk.classes[x] for x in s.symbols], dtype=object)
        self.preds: list[dict[int, Any]] = [{} for _ in range(T)]  # step by step
        self.cols: Any = None  # the router's batch: PredictionColumns, row_of[t, j] a row
        self.row_of = np.full((T, N), -1, dtype=np.int64)
        kind = batch_kind(s)
        self.batched = clean_symbols(s) if kind else np.zeros(N, dtype=bool)
        self.rule = kind == "baseline"
        if self.batched.any():
            try:
                self._batch(s, kind)
            except Exception as exc:  # the model failed on the batch: every symbol goes
                log_event(log, "fast_replay_batch_inference_failed", level=30,  # step by
                          error=f"{type(exc).__name__}: {exc}")  # step (no signal there)
                self.batched[:] = False
                self.rule = False
                for a in (self.L, self.PL, self.P):
                    a[:] = np.nan
                self.ok[:] = False
                self.preds = [{} for _ in range(T)]
                self.cols, self.row_of[:] = None, -1
        if not self.batched.all():
            self._stepwise(s, ~self.batched)

    def _batch(self, s: Session, kind: str | None) -> None:
        feed, cols = s.feed, np.flatnonzero(self.batched)
        w = feed.n_warmup
        closes_over_clock(feed, self.L, self.PL, cols)
        self.ok[w:, cols] = feed.has[w:, cols]
        if kind == "baseline":
            for j in cols.tolist():
                idx = np.flatnonzero(feed.has[:, j])
                self.P[idx, j] = self.model.batch(np.ascontiguousarray(feed.C[idx, j]))
            self.P[:w] = np.nan
            return
        from ..features import N_FEATURES, build_arrays

        # features per symbol, predicted in chunks of about PREDICT_ROWS rows: the feature
        # matrix in memory stays bounded whatever the history (a row's prediction does
        # not depend on the rows predicted with it)
        t_rows: list[np.ndarray] = []
        j_rows: list[np.ndarray] = []
        X_rows: list[np.ndarray] = []
        chunks: list[Any] = []
        pending = 0

        def predict() -> None:
            nonlocal pending
            if pending:
                chunks.append(s.predict_columns(np.concatenate(j_rows[-len(X_rows):]),
                                                np.concatenate(X_rows)))
                X_rows.clear()
                pending = 0

        for j in cols.tolist():
            idx = np.flatnonzero(feed.has[:, j])
            X = build_arrays(feed.dow[idx], feed.H[idx, j], feed.L[idx, j], feed.C[idx, j],
                             feed.V[idx, j])
            keep = idx >= w
            t_rows.append(idx[keep])
            j_rows.append(np.full(int(keep.sum()), j))
            X_rows.append(X[keep])
            pending += int(keep.sum())
            if pending >= PREDICT_ROWS:
                predict()
        predict()
        if not chunks:  # every bar in the warm-up: nothing to predict
            chunks.append(s.predict_columns(np.zeros(0, dtype=np.int64),
                                            np.zeros((0, N_FEATURES))))
        t_all, j_all = np.concatenate(t_rows), np.concatenate(j_rows)
        self.cols = type(chunks[0]).concat(chunks)
        self.row_of[t_all, j_all] = np.arange(len(t_all))
        self.P[t_all, j_all] = self.cols.probability  # NaN: no signal

    def _stepwise(self, s: Session, cols: np.ndarray) -> None:
        """The step code's inputs stage, step by step, for the symbols in ``cols`` (mask),
        over the steps where one of them has a bar (their marks hold in between)."""
        feed = s.feed
        acct = s.acct
        has = feed.has[:, cols]
        active = has.any(axis=1)
        steps = np.flatnonzero(active)
        every = has.all(axis=1)[steps].tolist()
        sub = np.flatnonzero(cols)
        for t, all_here in zip(steps.tolist(), every, strict=True):
            bars = feed.bars_at(t, bool(feed.has[t].all()))
            mine = cols[bars.rows]
            if not (all_here and mine.all()):
                bars = bars.select(mine)
            if t < feed.n_warmup:
                s.observe(bars)  # logs a refused warm-up bar as the step loop does
            else:
                g, bad = s.gate(bars)
                if bad:
                    self.bad[t] = bad
                if s.bar_gate.jumps.notes:
                    self.notes[t] = list(s.bar_gate.jumps.notes)
                    self.noted[t] = True
                X = s.observe(g, gated=True)
                rows = g.rows
                self.ok[t, rows] = True
                if X is not None:
                    pr = s.predict(rows, X)
                    self.preds[t].update(pr)
                    for i, p in pr.items():
                        prob = getattr(p, "probability", None)
                        if prob is not None and math.isfinite(prob):
                            self.P[t, i] = prob
            self.L[t, sub] = acct.last_close[sub]
            self.PL[t, sub] = acct.prev_close[sub]
        # the steps between: the marks of the last active step (NaN before the first)
        last = np.maximum.accumulate(np.where(active, np.arange(len(active)), -1))
        gap = ~active & (last >= 0)
        for a in (self.L, self.PL):
            a[np.ix_(np.flatnonzero(gap), sub)] = a[np.ix_(last[gap], sub)]

    def _baseline_pred(self, t: int, i: int) -> Prediction:
        m, sym = self.model, self.symbols[i]
        p = self.P[t, i]
        prob = None if math.isnan(p) else float(p)
        return Prediction(sym, m.asset_classes.get(sym, ""), m.name, prob, None, None,
                          None if prob is not None else "BASELINE_WARMUP")

    def _router_pred(self, r: int, i: int) -> Prediction:
        c = self.cols
        p, sm, sp = c.probability[r], c.shadow_model[r], c.shadow_probability[r]
        return Prediction(self.symbols[i], c.asset_class[r], c.model[r],
                          None if math.isnan(p) else float(p), sm,
                          None if sm is None or math.isnan(sp) else float(sp),
                          c.fallback_reason[r])

    def preds_at(self, t: int, rows: np.ndarray) -> dict[int, Any]:
        out = self.preds[t]
        if self.rule or self.cols is not None:  # the batched symbols', built when asked
            out = dict(out)
            for i in rows.tolist():
                if not self.batched[i]:
                    continue
                if self.rule:
                    out[i] = self._baseline_pred(t, i)
                elif self.row_of[t, i] >= 0:
                    out[i] = self._router_pred(int(self.row_of[t, i]), i)
        return out

    def fields(self, t: int, i: int) -> tuple[Any, ...]:
        """(model, probability, shadow model, shadow probability, fallback reason), as
        ``stages.plan`` reads a prediction."""
        if self.rule and self.batched[i]:
            p = self.P[t, i]
            if math.isnan(p):
                return (self.model.name, None, None, None, "BASELINE_WARMUP")
            return (self.model.name, float(p), None, None, None)
        p = self.preds[t].get(i)
        if p is None and self.row_of[t, i] >= 0:
            p = self._router_pred(int(self.row_of[t, i]), i)
        if p is None:
            return (self.label, None, None, None, None)
        return (getattr(p, "model", self.label), getattr(p, "probability", None),
                getattr(p, "shadow_model", None), getattr(p, "shadow_probability", None),
                getattr(p, "fallback_reason", None))

    def field_columns(self, tt: np.ndarray, jj: np.ndarray) -> tuple[Any, ...]:
        """:meth:`fields` of the cells ``(tt[i], jj[i])`` as columns: model (object),
        probability (float, NaN: none; a non-finite one is none, as ``plan`` reads it),
        shadow model, shadow probability, fallback reason (object, None: none)."""
        n = len(tt)
        if self.rule and self.batched[jj].all():  # a rule's batch: no object per cell
            p = self.P[tt, jj]
            fallback = np.where(np.isnan(p), "BASELINE_WARMUP", None).astype(object)
            return (np.full(n, self.model.name, dtype=object), p, Same(None), Same(None),
                    fallback)
        r = self.row_of[tt, jj]
        if self.cols is not None and (r >= 0).all():  # the router's batch: gathered
            c = self.cols
            return (c.model[r], c.probability[r], c.shadow_model[r],
                    c.shadow_probability[r], c.fallback_reason[r])
        cells = [self.fields(t, j) for t, j in zip(tt.tolist(), jj.tolist(), strict=True)]
        model, prob, shadow, shadow_p, fallback = (
            [list(c) for c in zip(*cells, strict=True)] if cells else [[] for _ in range(5)])
        pr = np.asarray(prob, dtype=np.float64).reshape(n)
        pr[~np.isfinite(pr)] = np.nan
        return (np.asarray(model, dtype=object).reshape(n), pr,
                np.asarray(shadow, dtype=object).reshape(n),
                np.asarray(shadow_p, dtype=np.float64).reshape(n),
                np.asarray(fallback, dtype=object).reshape(n))

    def step_input(self, s: Session, t: int, bars: StepBars) -> StepInput:
        bad = self.bad.get(t, [])
        gated = bars
        if bad:
            refused = np.zeros(s.n, dtype=bool)
            refused[[i for i, _ in bad]] = True
            gated = bars.select(~refused[bars.rows])
        return StepInput(gated, bad, self.preds_at(t, gated.rows), self.L[t], self.PL[t],
                         self.notes.get(t, []))


def closes_over_clock(feed: Any, L: np.ndarray, PL: np.ndarray, cols: np.ndarray) -> None:
    """The last good close after each step and the one before it, for the symbols in
    ``cols`` whose every bar passes the gate (what ``observe`` leaves in the marks)."""
    for j in cols.tolist():
        idx = np.flatnonzero(feed.has[:, j])
        c = np.ascontiguousarray(feed.C[idx, j])
        cnt = np.cumsum(feed.has[:, j])
        L[:, j] = np.concatenate([[np.nan], c])[cnt]
        PL[:, j] = np.concatenate([[np.nan, np.nan], c])[cnt]


def batch_kind(s: Session) -> str | None:
    """``baseline`` (a rule with a batch form), ``router`` (the ONNX router: predictions
    of a row do not depend on other rows), or None (any other model: step by step)."""
    from ..models.router import Router
    from .signals import RouterModel

    m = s.model
    if type(m) in (SmaCross, BuyAndHold):
        return "baseline"
    if type(m) is RouterModel and type(m.router) is Router:
        return "router"
    return None


def clean_symbols(s: Session) -> np.ndarray:
    """Per symbol: every bar of the clock passes the gate, judged against the previous
    bar's close of its symbol (which is then the last good close)."""
    from ..data.sanity import bar_faults

    feed = s.feed
    now_ns = int(s.wiring.clock() * 1e9)
    out = np.zeros(s.n, dtype=bool)
    for j in range(s.n):
        idx = np.flatnonzero(feed.has[:, j])
        c = feed.C[idx, j]
        ref = np.concatenate([[np.nan], c[:-1]])
        code = bar_faults(feed.O[idx, j], feed.H[idx, j], feed.L[idx, j], c, feed.V[idx, j],
                          ref, float(s.bar_gate.jump_thr[j]), feed.ns[idx], now_ns, None)
        out[j] = not code.any()
    return out


def pass1(s: Session) -> Pass1:
    return Pass1(s)


# ---------------------------------------------------------------------------- pass 2
@dataclass
class Batch:
    """Rows of several steps, per table in step order, for one transaction: the bulk tables
    (decisions, positions) as column blocks (:mod:`research_lib.ledger_columns`), the
    others as rows."""

    rows: dict[str, list[tuple[Any, ...]]]
    bulk: dict[str, BlockBuilder]
    steps: int = 0
    last_step: int = -1

    @classmethod
    def empty(cls) -> Batch:
        return cls({"steps": []}, {t: BlockBuilder(t) for t in BULK_TABLES})

    def extend(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if table in self.bulk:
            self.bulk[table].add_rows(rows)
        elif rows:
            self.rows.setdefault(table, []).extend(rows)

    def add_record(self, rec: Any) -> None:
        for table, rows in step_rows(rec).items():
            self.extend(table, rows)
        self.steps += 1
        self.last_step = rec.step

    def to_commit(self) -> dict[str, Any]:
        """What :meth:`~research_lib.ledger.Ledger.commit_rows` takes: ``steps`` first."""
        return {**self.rows, **{t: b.encode() for t, b in self.bulk.items() if b.n}}


def _quiet_preconditions(s: Session) -> bool:
    acct = s.acct
    eng = acct.engine
    return (s.ks_at_start is None and not acct.broker.open_orders
            and eng.state is TradingState.ACTIVE and not eng.halted_symbols
            and eng.day is not None and math.isfinite(eng.peak) and eng.peak > 0
            and math.isfinite(acct.last_equity) and acct.last_equity > 0)


def quiet_run(s: Session, pre: Pass1, step: int, limit: int, batch: Batch,
              days_all: np.ndarray) -> int:
    """Write the rows of the quiet steps from ``step`` (before ``limit``) into ``batch``
    and advance the account's day, peak and equity past them; returns the first step that
    is not quiet (``step`` itself when it is not). Every rule here is the vectorised twin
    of the step's (:mod:`.stages`): no arithmetic of its own."""
    if step == 0 or step == pre.known_event or not _quiet_preconditions(s):
        return step
    t_clock = time.perf_counter()
    feed, desk, acct = s.feed, s.desk, s.acct
    eng, broker = acct.engine, acct.broker
    w = feed.n_warmup
    t0, t1 = w + step, w + min(limit, step + pre.block)
    b = t1 - t0
    if b <= 0:
        return step
    has = feed.has[t0:t1]
    ok = pre.ok[t0:t1]
    Lb = pre.L[t0:t1]
    event = (has != ok).any(axis=1) | pre.noted[t0:t1]  # a refused bar, a jump event

    # mark (broker), start_day and on_mark (risk engine), breakers, plans: each rule's twin
    equity, gross, net = broker.mark_block(Lb, desk.index)
    with np.errstate(invalid="ignore"):
        event |= ~(np.isfinite(equity) & (equity > 0))
    dse, peak, breach = eng.marks_block(equity, days_all[t0:t1], acct.last_equity)
    event |= breach
    event |= (ok & price_band_mask(Lb, pre.PL[t0:t1], desk.limits.price_band_pct)).any(axis=1)
    Q = np.zeros(s.n)
    for sym, q in broker.book.held():
        Q[desk.index[sym]] = q
    plans = quiet_plan_block(desk, pre.P[t0:t1], ok, Q, Lb, equity)
    event |= plans.event
    nq = int(np.argmax(event)) if event.any() else b
    pre.block = min(pre.block * 4, BLOCK_MAX) if nq == b else BLOCK_MIN
    if nq < b:
        pre.known_event = step + nq
    if nq == 0:
        return step

    # rows of the quiet steps [t0, t0 + e): the record stage's rows, a block at a time
    e = nq
    steps = list(range(step, step + e))
    ts = feed.ts[t0:t0 + e]
    day_l = feed.days[t0:t0 + e]
    eq_l, peak_l, dse_l = equity[:e].tolist(), peak[:e].tolist(), dse[:e].tolist()
    batch.extend("equity", block(
        EquityRow, step=steps, ts=ts, cash=Same(broker.cash), equity=eq_l,
        gross=gross[:e].tolist(), net=net[:e].tolist(), peak=peak_l, day_start_equity=dse_l,
        drawdown=(1.0 - equity[:e] / peak[:e]).tolist(), day=day_l, state=Same("ACTIVE")))
    batch.bulk["positions"].add_columns(
        e * s.n, **position_columns(steps, desk.symbols, broker.book, Lb[:e]))

    # decisions, one per good bar, in step then symbol order: HOLD or NO_SIGNAL
    elapsed = time.perf_counter() - t_clock
    e2d_ms = elapsed * 1e3 / e
    kk, jj = np.nonzero(ok[:e])
    tt = t0 + kk
    model, prob, shadow, shadow_p, fallback = pre.field_columns(tt, jj)
    nosig = np.isnan(pre.P[tt, jj])
    cur_w = np.where(Q != 0, Q * Lb[:e] / equity[:e, None], 0.0)[kk, jj]
    moves = plans.moves[kk, jj] & ~nosig
    target = np.where(nosig, np.nan, np.where(moves, plans.target[kk, jj], cur_w))
    verdict = np.where(nosig, "NO_SIGNAL", "HOLD").astype(object)
    reason = np.full(len(kk), None, dtype=object)
    for i in np.flatnonzero(nosig).tolist():
        reason[i] = fallback[i] or "NO_SIGNAL: no probability"
    band = desk.settings.session.rebalance_band
    for i in np.flatnonzero(moves & plans.in_band[kk, jj]).tolist():
        reason[i] = band_reason(band, float(target[i]), float(cur_w[i]))
    cols: dict[str, Any] = dict(
        step=step + kk, ts=np.asarray(ts, dtype=object)[kk], symbol=pre.sym_arr[jj],
        asset_class=pre.cls_arr[jj], model=model, probability=prob, shadow_model=shadow,
        shadow_probability=shadow_p, fallback_reason=fallback, target=target, verdict=verdict,
        reason=reason)
    flt = acct.decision_filter  # decision_log "changes" (paper.decision_log); None: full
    if flt is not None:  # the same filter as the step code's, row by row in step order
        def at(c: Any, i: int) -> Any:
            return c.value if isinstance(c, Same) else c[i]

        keep = np.array([flt.keep_values(
            desk, pre.sym_arr[jj[i]], at(model, i), None if math.isnan(prob[i]) else prob[i],
            at(shadow, i), verdict[i], reason[i]) for i in range(len(kk))], dtype=bool)
        cols = {f: v if isinstance(v, Same) else v[keep] for f, v in cols.items()}
    n_kept = len(cols["step"])
    batch.bulk["decisions"].add_columns(
        n_kept, **cols, client_order_id=Same(None), qty=Same(None), latency_ms=Same(e2d_ms))
    batch.rows["steps"].extend(block(
        StepRow, step=steps, ts=ts, n_bars=has[:e].sum(axis=1).tolist(),
        wall_ts=Same(now_iso()), e2d_ms=Same(e2d_ms)))
    batch.extend("bar_digests", feed_digests(s, t0, step, e))
    batch.steps += e
    batch.last_step = step + e - 1
    s.latency.extend([elapsed / e] * e)

    # the account past these steps
    acct.last_equity = eq_l[-1]
    eng.day = max(eng.day, day_l[-1])
    eng.day_start_equity = dse_l[-1]
    eng.peak = peak_l[-1]
    return step + e


def steps_per_batch(n_symbols: int) -> int:
    """Steps a ledger transaction holds: :data:`FLUSH_STEPS`, fewer when that many steps of
    ``n_symbols`` would pass :data:`FLUSH_ROWS` symbol-steps (never under ``BLOCK_MIN``)."""
    return max(BLOCK_MIN, min(FLUSH_STEPS, FLUSH_ROWS // max(1, n_symbols)))


def run_fast(s: Session, deadline: float | None, counted: Callable[[int], None]) -> str:
    """Pass 1, then pass 2 with batched commits; returns why the run stopped."""
    spec, feed = s.spec, s.feed
    t_p1 = time.perf_counter()
    pre = pass1(s)
    p1_s = time.perf_counter() - t_p1
    w = feed.n_warmup
    n_steps = len(feed) - w
    step = s.next_step
    if 0 < step <= n_steps and s.state is not None and s.state.last_ts:
        s._check_resume_clock(step - 1, feed.bars_at(w + step - 1))
    committed, quiet, slow = 0, 0, 0
    days_all = np.asarray(feed.days)
    batch = Batch.empty()
    per_batch = steps_per_batch(s.n)
    stopped = "end_of_data"

    def flush() -> None:
        nonlocal batch, committed
        if not batch.steps:
            return
        try:
            ok = s.ledger.commit_rows(batch.to_commit())
        except LedgerError as exc:
            raise LedgerError(s._halt_on_write_failure(batch.last_step, exc)) from exc
        if not ok:
            raise LedgerError(f"{s.ledger.path}: a step of {batch.rows['steps'][0][0]}.."
                              f"{batch.last_step} was already committed; refusing to continue "
                              "a run that is written twice")
        committed += batch.steps
        counted(committed)
        batch = Batch.empty()

    while step < n_steps:
        if s.ks.stop_requested:
            stopped = "signal"
            break
        if deadline is not None and time.monotonic() >= deadline:
            stopped = "duration"
            break
        done = committed + batch.steps
        if spec.max_steps is not None and done >= spec.max_steps:
            stopped = "max_steps"
            break
        limit = n_steps if spec.max_steps is None else min(n_steps, step + spec.max_steps - done)
        limit = min(limit, step + per_batch - batch.steps)  # a batch never passes per_batch
        nxt = quiet_run(s, pre, step, limit, batch, days_all)
        if nxt > step:
            quiet += nxt - step
            step = nxt
        else:
            t = w + step
            bars = feed.bars_at(t)
            s.acct.last_close[:] = pre.L[t - 1] if t > 0 else np.nan
            s.acct.prev_close[:] = pre.PL[t - 1] if t > 0 else np.nan
            t0 = time.perf_counter()
            rec = run_step(s, step, bars, t0, pre=pre.step_input(s, t, bars))
            batch.add_record(rec)
            s.acct.last_equity = rec.rows["equity"][0].equity
            s.log_decisions(rec.log)
            slow += 1
            step += 1
        if batch.steps >= per_batch:
            flush()
    else:
        if s.ks.stop_requested:
            stopped = "signal"
        elif deadline is not None and time.monotonic() >= deadline:
            stopped = "duration"
    flush()
    if stopped == "end_of_data" and spec.max_steps is not None and committed >= spec.max_steps:
        stopped = "max_steps"
    log_event(log, "fast_replay", pass1_batched=int(pre.batched.sum()),
              pass1_stepwise=int((~pre.batched).sum()), pass1_ms=round(p1_s * 1e3, 3),
              quiet_steps=quiet, step_code_steps=slow, committed=committed)
    return stopped
