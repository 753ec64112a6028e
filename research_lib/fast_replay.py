"""Fast replay (``research-lib paper --fast``): the same ledger as the step loop, faster.

Most steps of a replay are *quiet*: no open order to fill, nothing to buy or sell, no
limit crossed, the account ACTIVE. Their rows (``steps``, ``equity``, ``positions``,
``decisions``) are a function of prices the whole replay already holds, so this engine
computes them in numpy blocks and sends every other step, unchanged, through
:meth:`research_lib.session.Session.step`. The ledger is the same, row for row
(``tests/test_fast_replay.py`` compares :func:`~research_lib.ledger_read.deterministic_dump` of
both engines over many scenarios).

1. **Pass 1** gates every bar, moves the closes and asks the model, for the whole clock,
   before any trading: a rule baseline in numpy (the same reductions as its incremental
   path); any other model, or data with a bad bar, with the step code's own
   ``gate`` / ``observe`` / ``predict`` step by step. This is sound because none of them
   depends on the account: the features and the model see bars, not positions.
2. **Pass 2** walks the steps. From a step whose state allows it (ACTIVE, no open order,
   no tripped breaker, a finite peak, not the first step), :func:`quiet_run` marks a block
   of steps at once (equity, peak, day start, drawdown and daily-loss tests, breaker and
   position-limit tests, each symbol's plan verdict) and stops at the first step where
   anything could happen; that step runs through the step code.
   A test here may be *conservative*: calling a quiet step an event only costs time.

What differs from the step loop, by design:

* the config is read once (recorded in the ledger); no hot reload in a fast replay;
* the ledger commits every :data:`FLUSH_STEPS` steps in one transaction (a crash loses at
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

from .baselines import SMA_FAST, SMA_SLOW, BuyAndHold, Prediction, SmaCross
from .broker import round_qty
from .errors import LedgerError
from .ledger import now_iso, step_rows
from .resume import feed_digests
from .risk import EPS, TradingState, clip_target
from .telemetry import get_logger, log_event

if TYPE_CHECKING:
    from .paper.feeds import StepBars
    from .paper.session import Session

log = get_logger("session")

FLUSH_STEPS = 2048  # steps per ledger transaction
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
    """Gate verdicts, closes and predictions for every clock step of a replay."""

    def __init__(self, T: int, N: int) -> None:
        self.L = np.full((T, N), np.nan)  # last good close after step t
        self.PL = np.full((T, N), np.nan)  # the good close before it
        self.P = np.full((T, N), np.nan)  # probability (NaN: none) of a good bar at t
        self.ok = np.zeros((T, N), dtype=bool)  # a bar at t passed the gate
        self.bad: dict[int, tuple[Any, list[tuple[int, str]]]] = {}
        self.notes: dict[int, list[tuple[int, str, str]]] = {}  # jump events at step t
        self.noted = np.zeros(T, dtype=bool)  # steps with jump events: never quiet
        self.block = BLOCK_MIN  # steps quiet_run tests next (grows while whole blocks pass)
        self.known_event = -1  # a step quiet_run already found not quiet

    def preds_at(self, t: int, rows: np.ndarray) -> dict[int, Any]:  # pragma: no cover
        raise NotImplementedError

    def fields(self, t: int, i: int) -> tuple[Any, ...]:  # pragma: no cover
        """(model, probability, shadow model, shadow probability, fallback reason)."""
        raise NotImplementedError

    def step_input(self, s: Session, t: int, bars: StepBars) -> StepInput:
        gated, bad = self.bad.get(t, (bars, []))
        return StepInput(gated, bad, self.preds_at(t, gated.rows), self.L[t], self.PL[t],
                         self.notes.get(t, []))


class StepwisePass(Pass1):
    """Pass 1 by the step code itself (any model; data with bad bars)."""

    def __init__(self, s: Session) -> None:
        feed = s.feed
        T, N = len(feed), s.n
        super().__init__(T, N)
        self.label = s.model_label
        self.preds: list[dict[int, Any]] = [{}] * T
        every = feed.has.all(axis=1).tolist()
        for t in range(T):
            bars = feed.bars_at(t, every[t])
            if t < feed.n_warmup:
                s.observe(bars)  # logs a refused warm-up bar as the step loop does
            else:
                g, bad = s.gate(bars)
                if bad:
                    self.bad[t] = (g, bad)
                if s._jumps.notes:
                    self.notes[t] = list(s._jumps.notes)
                    self.noted[t] = True
                X = s.observe(g, gated=True)
                rows = g.rows
                self.ok[t, rows] = True
                if X is not None:
                    pr = s.predict(rows, X)
                    self.preds[t] = pr
                    for i, p in pr.items():
                        prob = getattr(p, "probability", None)
                        if prob is not None and math.isfinite(prob):
                            self.P[t, i] = prob
            self.L[t] = s.last_close
            self.PL[t] = s.prev_close

    def preds_at(self, t: int, rows: np.ndarray) -> dict[int, Any]:
        return self.preds[t]

    def fields(self, t: int, i: int) -> tuple[Any, ...]:
        p = self.preds[t].get(i)  # as Session.plan reads a prediction
        if p is None:
            return (self.label, None, None, None, None)
        return (getattr(p, "model", self.label), getattr(p, "probability", None),
                getattr(p, "shadow_model", None), getattr(p, "shadow_probability", None),
                getattr(p, "fallback_reason", None))


class BaselinePass(Pass1):
    """Pass 1 of a rule baseline in numpy, for data whose every bar passes the gate."""

    def __init__(self, s: Session, model: Any) -> None:
        feed = s.feed
        T, N = len(feed), s.n
        super().__init__(T, N)
        self.model = model
        self.symbols = s.symbols
        has = feed.has
        self.ok[:] = has
        self.ok[: feed.n_warmup] = False
        for j in range(N):
            idx = np.flatnonzero(has[:, j])
            c = np.ascontiguousarray(feed.C[idx, j])
            cnt = np.cumsum(has[:, j])
            self.L[:, j] = np.concatenate([[np.nan], c])[cnt]
            self.PL[:, j] = np.concatenate([[np.nan, np.nan], c])[cnt]
            prob = np.full(len(c), np.nan)
            if isinstance(model, SmaCross):
                if len(c) >= SMA_SLOW:
                    W = np.ascontiguousarray(
                        np.lib.stride_tricks.sliding_window_view(c, SMA_SLOW))
                    fast = np.mean(np.ascontiguousarray(W[:, -SMA_FAST:]), axis=1)
                    slow = np.mean(W, axis=1)
                    okm = np.isfinite(fast) & np.isfinite(slow)
                    prob[SMA_SLOW - 1:] = np.where(okm, (fast > slow).astype(np.float64),
                                                   np.nan)
            else:  # BuyAndHold: 1.0 once a finite close exists
                prob[np.isfinite(c)] = 1.0
            self.P[idx, j] = prob
        self.P[: feed.n_warmup] = np.nan

    @staticmethod
    def usable(s: Session) -> bool:
        """Every bar of the clock passes the gate, judged against the previous bar's close
        of its symbol (which is then the last good close): else pass 1 goes step by step."""
        from .data.sanity import bar_faults

        feed = s.feed
        now_ns = int(s.wiring.clock() * 1e9)
        for j in range(s.n):
            idx = np.flatnonzero(feed.has[:, j])
            c = feed.C[idx, j]
            ref = np.concatenate([[np.nan], c[:-1]])
            code = bar_faults(feed.O[idx, j], feed.H[idx, j], feed.L[idx, j], c,
                              feed.V[idx, j], ref, float(s._jump_thr[j]), feed.ns[idx],
                              now_ns, None)
            if code.any():
                return False
        return True

    def _pred(self, t: int, i: int) -> Prediction:
        m, sym = self.model, self.symbols[i]
        p = self.P[t, i]
        prob = None if math.isnan(p) else float(p)
        return Prediction(sym, m.asset_classes.get(sym, ""), m.name, prob, None, None,
                          None if prob is not None else "BASELINE_WARMUP")

    def preds_at(self, t: int, rows: np.ndarray) -> dict[int, Any]:
        return {int(i): self._pred(t, int(i)) for i in rows}

    def fields(self, t: int, i: int) -> tuple[Any, ...]:
        p = self.P[t, i]
        if math.isnan(p):
            return (self.model.name, None, None, None, "BASELINE_WARMUP")
        return (self.model.name, float(p), None, None, None)


def pass1(s: Session) -> Pass1:
    m = s.model
    if type(m) in (SmaCross, BuyAndHold) and BaselinePass.usable(s):
        return BaselinePass(s, m)
    return StepwisePass(s)


# ---------------------------------------------------------------------------- pass 2
@dataclass
class Batch:
    """Rows of several steps, per table in step order, for one transaction."""

    rows: dict[str, list[tuple[Any, ...]]]
    steps: int = 0
    last_step: int = -1

    @classmethod
    def empty(cls) -> Batch:
        return cls({"steps": []})

    def extend(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.rows.setdefault(table, []).extend(rows)

    def add_record(self, rec: Any) -> None:
        for table, rows in step_rows(rec).items():
            self.extend(table, rows)
        self.steps += 1
        self.last_step = rec.step


def _quiet_preconditions(s: Session) -> bool:
    eng = s.engine
    return (s._ks_at_start is None and not s.broker.open_orders
            and eng.state is TradingState.ACTIVE and not eng.halted_symbols
            and eng.day is not None and math.isfinite(eng.peak) and eng.peak > 0
            and math.isfinite(s.last_equity) and s.last_equity > 0)


def quiet_run(s: Session, pre: Pass1, step: int, limit: int, batch: Batch,
              days_all: np.ndarray) -> int:
    """Write the rows of the quiet steps from ``step`` (before ``limit``) into ``batch``
    and advance the account's day, peak and equity past them; returns the first step that
    is not quiet (``step`` itself when it is not)."""
    if step == 0 or step == pre.known_event or not _quiet_preconditions(s):
        return step
    t_clock = time.perf_counter()
    feed, eng, lim = s.feed, s.engine, s.limits
    sig, band = s.settings.signal, s.settings.session.rebalance_band
    w = feed.n_warmup
    t0, t1 = w + step, w + min(limit, step + pre.block)
    b = t1 - t0
    if b <= 0:
        return step
    has = feed.has[t0:t1]
    ok = pre.ok[t0:t1]
    Lb = pre.L[t0:t1]
    PLb = pre.PL[t0:t1]
    P = pre.P[t0:t1]
    event = (has != ok).any(axis=1) | pre.noted[t0:t1]  # a refused bar, a jump event

    # marks and equity, summed in the broker's order (same floats as PaperBroker.mark)
    book = s.broker.positions
    held = [(s._index[sym], p.qty) for sym, p in book.items() if p.qty]
    cash = s.broker.cash
    net = np.zeros(b)
    gross = np.zeros(b)
    Q = np.zeros(s.n)
    for j, q in held:
        v = q * Lb[:, j]
        gross = gross + np.abs(v)
        net = net + v
        Q[j] = q
    equity = cash + net
    with np.errstate(invalid="ignore", divide="ignore"):
        event |= ~(np.isfinite(equity) & (equity > 0))
        # the day's start equity, the peak, then the account limits (RiskEngine.on_mark)
        days = days_all[t0:t1]
        newday = np.empty(b, dtype=bool)
        newday[0] = days[0] > eng.day
        newday[1:] = days[1:] > days[:-1]
        prev_eq = np.concatenate([[s.last_equity], equity[:-1]])
        at = np.maximum.accumulate(np.where(newday, np.arange(b), -1))
        dse = np.where(at >= 0, prev_eq[np.maximum(at, 0)], eng.day_start_equity)
        peak = np.maximum.accumulate(np.concatenate([[eng.peak], equity]))[1:]
        event |= (1.0 - equity / peak) >= lim.max_drawdown_pct - EPS
        event |= (np.isfinite(dse) & (dse > 0)
                  & ((1.0 - equity / dse) >= lim.daily_loss_stop_pct - EPS))
        # breakers: a good bar's close outside the band around the previous good close
        ref_ok = np.isfinite(PLb) & (PLb > 0)
        event |= (ok & ref_ok & (np.abs(Lb / PLb - 1.0) > lim.price_band_pct + EPS)).any(axis=1)
        # weights: a position above the limit is trimmed (held symbols, bar or not)
        eq_col = equity[:, None]
        cur_w = Q * Lb / eq_col
        cur_w = np.where(Q != 0, cur_w, 0.0)
        over = np.abs(cur_w) > lim.max_position_pct + EPS
        event |= over.any(axis=1)

        # each good bar's plan verdict (Session.plan with an ACTIVE account, no open order)
        nosig = np.isnan(P)
        long_ = P > sig.long_threshold
        short = P < sig.short_threshold
        t_long, why_l = clip_target(sig.target_weight, lim)
        t_short, why_s = clip_target(-sig.target_weight if lim.allow_short else 0.0, lim)
        raw = long_ | short
        if why_l is not None:
            event |= (ok & long_).any(axis=1)
        if why_s is not None:
            event |= (ok & short).any(axis=1)
        tgt = np.where(long_, t_long, t_short)
        target_zero = raw & (tgt == 0)
        event |= (ok & target_zero & (Q != 0)).any(axis=1)
        sized = ok & raw & (tgt != 0)
        verdict_band = np.zeros((b, s.n), dtype=bool)
        if sized.any():
            tq = _target_qty(s, tgt, equity, Lb, sized)
            same = tgt == cur_w  # an explicit hold keeps the exact quantity
            tq = np.where(same, Q, tq)
            hold = tq == Q
            in_band = ((tq != 0) & (Q != 0) & ((tq > 0) == (Q > 0))
                       & (np.abs(tq - Q) * Lb / eq_col <= band + EPS))
            verdict_band = sized & ~hold & in_band
            event |= (sized & ~hold & ~in_band).any(axis=1)
    nq = int(np.argmax(event)) if event.any() else b
    pre.block = min(pre.block * 4, BLOCK_MAX) if nq == b else BLOCK_MIN
    if nq < b:
        pre.known_event = step + nq
    if nq == 0:
        return step

    # rows of the quiet steps [t0, t0 + nq)
    e = nq
    steps = list(range(step, step + e))
    ts = feed.ts[t0:t0 + e]
    day_l = feed.days[t0:t0 + e]
    eq_l, gross_l, net_l = equity[:e].tolist(), gross[:e].tolist(), net[:e].tolist()
    peak_l, dse_l = peak[:e].tolist(), dse[:e].tolist()
    dd_l = (1.0 - equity[:e] / peak[:e]).tolist()
    batch.extend("equity", list(zip(steps, ts, [cash] * e, eq_l, gross_l, net_l, peak_l,
                                    dse_l, dd_l, day_l, ["ACTIVE"] * e, strict=True)))
    # positions: one row per symbol and step, in symbol order
    cols = []
    for j, sym in enumerate(s.symbols):
        m = Lb[:e, j]
        shown = [x if math.isfinite(x) else None for x in m.tolist()]
        pos = book.get(sym)
        if pos is None:
            cols.append([(k, sym, 0.0, 0.0, x, 0.0, 0.0, 0.0, 0.0)
                         for k, x in zip(steps, shown, strict=True)])
        elif pos.qty:
            q, avg = pos.qty, pos.avg_price
            val = (q * m).tolist()
            unr = (q * (m - avg)).tolist()
            cols.append([(k, sym, q, avg, x, v, pos.realized, u, pos.fees)
                         for k, x, v, u in zip(steps, shown, val, unr, strict=True)])
        else:
            cols.append([(k, sym, pos.qty, pos.avg_price, x, 0.0, pos.realized, 0.0, pos.fees)
                         for k, x in zip(steps, shown, strict=True)])
    batch.extend("positions", [r for row in zip(*cols, strict=True) for r in row])

    # decisions, one per good bar, in step then symbol order
    elapsed = time.perf_counter() - t_clock
    e2d_ms = elapsed * 1e3 / e
    kk, jj = np.nonzero(ok[:e])
    cw = cur_w[:e]
    dec = []
    sym, cls = s.symbols, s.classes
    fields = pre.fields
    tgt_e = tgt[:e]
    for k, j in zip(kk.tolist(), jj.tolist(), strict=True):
        t = t0 + k
        name = sym[j]
        model, prob, shadow, shadow_p, fallback = fields(t, j)
        if prob is not None and not math.isfinite(prob):
            prob = None
        if nosig[k, j]:
            why = fallback or "NO_SIGNAL: no probability"
            dec.append((step + k, ts[k], name, cls[name], model, None, shadow, shadow_p,
                        fallback, None, "NO_SIGNAL", why, None, None, e2d_ms))
            continue
        if not raw[k, j]:
            target, reason = float(cw[k, j]), None
        else:
            target = float(tgt_e[k, j])
            reason = None
            if verdict_band[k, j]:
                reason = (f"WITHIN_REBALANCE_BAND: band={band:g} target={target:.4f} "
                          f"weight={float(cw[k, j]):.4f}")
        dec.append((step + k, ts[k], name, cls[name], model, prob, shadow, shadow_p, fallback,
                    target, "HOLD", reason, None, None, e2d_ms))
    batch.extend("decisions", dec)
    n_bars = has[:e].sum(axis=1).tolist()
    wall = now_iso()
    batch.rows["steps"].extend(zip(steps, ts, n_bars, [wall] * e, [e2d_ms] * e, strict=True))
    batch.extend("bar_digests", feed_digests(s, t0, step, e))
    batch.steps += e
    batch.last_step = step + e - 1
    s.latency.extend([elapsed / e] * e)

    # the account past these steps
    s.last_equity = eq_l[-1]
    eng.day = max(eng.day, day_l[-1])
    eng.day_start_equity = dse_l[-1]
    eng.peak = peak_l[-1]
    return step + e


def _target_qty(s: Session, tgt: np.ndarray, equity: np.ndarray, L: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """``round_qty(target * equity / price, lot)`` where ``mask``: whole units in numpy
    (exactly round_qty's floats), crypto lots by round_qty itself."""
    with np.errstate(invalid="ignore", divide="ignore"):
        q = tgt * equity[:, None] / L
        n = np.floor(np.abs(q) / 1.0 + 1e-9)
        out = np.where(q >= 0, n, -n)
        out = np.where(np.isfinite(q), out, 0.0)
    lot = s.settings.session.crypto_lot_size
    crypto = np.asarray(s.crypto, dtype=bool)
    for k, j in zip(*np.nonzero(mask & crypto[None, :]), strict=True):
        out[k, j] = round_qty(float(q[k, j]), lot)
    return np.where(mask, out, np.nan)


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
    stopped = "end_of_data"

    def flush() -> None:
        nonlocal batch, committed
        if not batch.steps:
            return
        try:
            ok = s.ledger.commit_rows(batch.rows)
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
        limit = min(limit, step + FLUSH_STEPS - batch.steps)  # a batch never passes FLUSH_STEPS
        nxt = quiet_run(s, pre, step, limit, batch, days_all)
        if nxt > step:
            quiet += nxt - step
            step = nxt
        else:
            t = w + step
            bars = feed.bars_at(t)
            s.last_close[:] = pre.L[t - 1] if t > 0 else np.nan
            s.prev_close[:] = pre.PL[t - 1] if t > 0 else np.nan
            t0 = time.perf_counter()
            rec = s.step(step, bars, t0, pre=pre.step_input(s, t, bars))
            batch.add_record(rec)
            s.last_equity = rec.rows["equity"][0][3]
            s.log_decisions(rec.log)
            slow += 1
            step += 1
        if batch.steps >= FLUSH_STEPS:
            flush()
    else:
        if s.ks.stop_requested:
            stopped = "signal"
        elif deadline is not None and time.monotonic() >= deadline:
            stopped = "duration"
    flush()
    if stopped == "end_of_data" and spec.max_steps is not None and committed >= spec.max_steps:
        stopped = "max_steps"
    log_event(log, "fast_replay", pass1=type(pre).__name__, pass1_ms=round(p1_s * 1e3, 3),
              quiet_steps=quiet, step_code_steps=slow, committed=committed)
    return stopped
