"""The one loop: a replay of history and a live paper session are the same code.

Each step: *bars in* -> fill open orders at this step's prices -> mark equity -> latch
REDUCING / HALTED -> features (incremental, vectorised across symbols) -> route and
predict -> signal to target weight -> size (clipped to the limits first, logged) -> risk
engine -> kill switch (asked right before **each** order) -> submit -> **commit the step in
one ledger transaction**. The end-to-decision latency (E2D) runs from the bars being handed
to the step until the last order of the step is decided (``time.perf_counter``).

* **Replay** (``sample``, ``csv:PATH``, ``cache``, or any source with ``--start``): the clock
  is the union of the symbols' bar timestamps (equities follow their exchange sessions,
  crypto trades 24/7; a symbol without a bar at a step simply has no new bar). Orders
  decided at a bar fill at the symbol's next bar open. Runs as fast as it can;
  ``--duration`` caps the wall time.
* **Live** (``yfinance`` without ``--start``): polls the source every interval for the
  duration; orders fill at the next observed price.
* ``--dry-run``: everything runs and the intended orders are recorded; nothing fills.
* ``--resume RUN``: the account is rebuilt from the ledger (fills, open orders, latched
  states), indicators are re-fed the same bars, and the clock continues after the last
  committed step. A ledger that cannot be trusted stops the session (fail closed).
* SIGINT / SIGTERM: the current step finishes and commits, the session ends with exit 0
  and its summary; a second signal ends it right after the current transaction.

Per step and symbol, a ``decision`` JSON record (run_id, symbol, class, model, probability,
target, verdict, order, fill, latency) goes to ``<run>/events.jsonl``.
"""


from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import numpy as np

from ..baselines import Prediction
from ..broker import (
    OrderFilled,
)
from ..errors import (
    FeedError,
    LedgerBusyError,
    LedgerError,
)
from ..ledger import (
    StepRecord,
    now_iso,
)
from ..models.windows import sample_section
from ..resume import (
    check_consumed_bars,
    record_reload,
    step_digest,
)
from ..risk import (
    StateChange,
    TradingState,
    reason_code,
)
from ..run_files import (
    LEDGER_WRITE_FAILED,
    discard_empty_run,
)
from ..telemetry import (
    get_logger,
    log_event,
)
from .events import EventLog
from .feeds import (
    LiveFeed,
    StepBars,
)
from .gate import BarGate
from .orders import OrderStages, _Plan
from .reload import reload_step
from .rows import (
    EquityRow,
    FillRow,
    OrderEventRow,
    RiskEventRow,
    StateChangeRow,
)
from .setup import SessionSetup
from .signals import checked_prediction
from .spec import (
    RunSpec,
    SessionResult,
    SessionSpec,
    Wiring,
    _step_delay_seconds,
    interval_seconds,
    parse_duration,
)
from .summary import compute_summary

log = get_logger("session")

class Session(SessionSetup, BarGate, OrderStages, EventLog):
    """One paper session (use :func:`run_session`)."""

    def __init__(self, spec: SessionSpec | RunSpec, wiring: Wiring | None = None) -> None:
        """``Session(RunSpec(...), Wiring(...))``, or ``Session(SessionSpec(...))`` (both in
        one keyword form, split here)."""
        if isinstance(spec, SessionSpec):
            spec, split_wiring = spec.split()
            wiring = wiring or split_wiring
        self.spec: RunSpec = spec  # what to run (on a resume: as asked, not as recorded)
        self.wiring: Wiring = wiring or Wiring()

    # ---------------------------------------------------------------- hot reload
    def reload(self, rec: StepRecord) -> None:
        """The config files that changed apply from this step (:mod:`.reload`)."""
        reload_step(self, rec)

    # ---------------------------------------------------------------- one step
    def _state_row(self, rec: StepRecord, ch: StateChange) -> None:
        rec.add("state_changes", StateChangeRow(rec.step, rec.ts, ch.scope, ch.from_state, ch.to_state,
                                  ch.reason, self.last_equity, self.engine.peak,
                                  self.engine.day, now_iso()))
        level = (logging.WARNING if (ch.scope == "account" and ch.to_state == "HALTED")
                 or ch.to_state == "REJECTED" else logging.INFO)
        log_event(log, "state_changed", level=level, step=rec.step, scope=ch.scope,
                  from_state=ch.from_state, to_state=ch.to_state, reason=ch.reason)

    def observe(self, bars: StepBars, gated: bool = False) -> np.ndarray | None:
        """Prices known now, features and the model's own history for the new bars that
        pass the bar gate (``gated``: the caller already ran :meth:`gate`)."""
        if not gated:
            bars, bad = self.gate(bars)
            for i, why in bad:  # warm-up or resume re-feed: the start-up findings list them
                log_event(log, "bad_bar_skipped", ts=bars.ts, symbol=self.symbols[i],
                          reason=why)
            for i, code, why in self._jumps.notes:  # a jump confirmed or dropped here
                log_event(log, "bar_jump_" + code.lower(), ts=bars.ts, symbol=self.symbols[i],
                          reason=why)
        rows = bars.rows
        if not len(rows):
            return None
        if self._jumps.release:
            self._feed_held()
        self.prev_close[rows] = self.last_close[rows]
        self.last_close[rows] = bars.close
        if self.model.needs_features:
            X = self.features.update(rows, bars.dow, bars.high, bars.low, bars.close,
                                     bars.volume)
        else:  # a rule baseline reads closes only: the windows move, no feature is computed
            self.features.push(rows, bars.close, bars.volume)
            X = np.empty((len(rows), 0))
        self.model.observe(rows, bars.close)
        return X

    def _feed_held(self) -> None:
        """The bars a confirmed jump held back, to the closes, the features and the model,
        in order, before the step's own bars (:mod:`research_lib.data.jumps`)."""
        for i, (dow, h, lo, c, v) in self._jumps.release:
            r = np.array([i])
            self.prev_close[i] = self.last_close[i]
            self.last_close[i] = c
            if self.model.needs_features:
                self.features.update(r, np.array([dow]), np.array([h]), np.array([lo]),
                                     np.array([c]), np.array([v]))
            else:
                self.features.push(r, np.array([c]), np.array([v]))
            self.model.observe(r, np.array([c]))
        self._jumps.release = []

    def step(self, step: int, bars: StepBars, t0: float, pre: Any = None) -> StepRecord:
        """One step. ``pre`` (fast replay, :mod:`research_lib.fast_replay`): the step's gate
        verdicts, predictions and closes, computed in a batch pass with this same code;
        the config is not re-read."""
        rec = StepRecord(step, bars.ts, len(bars.rows))
        rec.rows["bar_digests"] = step_digest(self, step, bars)
        if pre is None:
            self.reload(rec)
            record_reload(self, rec)
        if self._ks_at_start is not None:  # the session starts halted: say why, once
            self._state_row(rec, StateChange("kill_switch", "CLEAR", "ENGAGED",
                                             f"KILL_SWITCH_AT_START: {self._ks_at_start}"))
            self._ks_at_start = None
        sym = self.symbols
        eng = self.engine
        broker = self.broker
        for ch in eng.start_day(bars.day, self.last_equity):
            self._state_row(rec, ch)
        if step == 0:  # the start-up data findings, once per run
            for ev in self._data_events:
                rec.add("risk_events", RiskEventRow(step, *ev))
        # the bar gate: a bad bar is recorded and used for nothing (fail closed)
        bars, bad = self.gate(bars) if pre is None else (pre.bars, pre.bad)
        for i, why in bad:
            rec.add("risk_events", RiskEventRow(step, bars.ts, sym[i], "data", "BAD_BAR", why, None))
        for i, code, why in (self._jumps.notes if pre is None else pre.notes):
            rec.add("risk_events", RiskEventRow(step, bars.ts, sym[i], "data", code, why, None))

        # fills of open orders at this step's prices; none while a kill switch is set
        fills_now: dict[str, Any] = {}
        if broker.open_orders:
            self._cancel_if_killed(rec, bars.ts)
        if broker.open_orders:
            idx = self._index
            fill = self._gate_fills(bars, bad)
            prices = {o.symbol: float(fill[idx[o.symbol]])
                      for o in broker.open_orders.values()}
            for ev in broker.fill_open(step, bars.ts, prices):
                cid = ev.order.client_order_id
                if isinstance(ev, OrderFilled):
                    f = ev.fill
                    rec.add("fills", FillRow(cid, f.step, f.ts, f.symbol, f.qty, f.price, f.base_price,
                                      f.commission, f.cash_delta))
                    rec.add("order_events", OrderEventRow(step, bars.ts, cid, "OrderFilled", None))
                    fills_now[f.symbol] = {"client_order_id": cid, "qty": f.qty, "price": f.price}
                else:
                    rec.add("order_events", OrderEventRow(step, bars.ts, cid, "OrderRejected", ev.reason))
                    rec.add("risk_events", RiskEventRow(step, bars.ts, ev.order.symbol, "rejection",
                                            reason_code(ev.reason), ev.reason, cid))

        # prices known now (features too), marks, latched account states, the breaker
        rows = bars.rows
        if pre is None:
            X = self.observe(bars, gated=True)
        else:
            X = None
            self.last_close[:] = pre.last
            self.prev_close[:] = pre.prev
        last = self.last_close.tolist()
        if self._resume_marks:  # live resume: valued at the recorded mark (no price to
            for i in list(self._resume_marks):  # trade at) until the symbol's first bar
                if math.isfinite(last[i]):
                    del self._resume_marks[i]
                else:
                    last[i] = self._resume_marks[i]
        marks = dict(zip(sym, last, strict=True))
        equity, gross, net = broker.mark(marks)
        for ch in eng.on_mark(equity):
            self._state_row(rec, ch)
            rec.add("risk_events", RiskEventRow(step, bars.ts, None, "breach", reason_code(ch.reason),
                                    ch.reason, None))
        for i in self._breaker_rows(rows):
            ch = eng.observe_price(sym[i], last[i], float(self.prev_close[i]))
            if ch is not None:
                self._state_row(rec, ch)

        # features and predictions for the symbols with a new bar
        preds: dict[int, Any] = {}
        if eng.state is not TradingState.HALTED:
            if pre is not None:
                preds = pre.preds
            elif X is not None:
                preds = self.predict(rows, X)

        # targets: HALTED flattens everything it holds; otherwise the signal decides, and a
        # position above max_position_pct is trimmed even when its symbol has no new bar
        # (its market is closed while others move the equity): the order waits for its open
        plans: list[_Plan] = []
        held = {s for s, p in broker.positions.items() if p.qty}
        oq = self._open_qty_by_symbol()  # this step's open quantities, passed on explicitly
        cands = rows.tolist()
        extra = []
        if held or oq:
            new = set(cands)
            extra = [i for i, s in enumerate(sym) if (s in held or oq.get(s, 0)) and i not in new]
        if eng.state is not TradingState.HALTED:
            extra = [i for i in extra if self._over_limit(i, equity, oq)]
        if extra:
            cands = sorted(set(cands) | set(extra))
        if bad:  # no order for a symbol whose bar was refused; one decision says why
            refused = {i for i, _ in bad}
            cands = [i for i in cands if i not in refused]
            plans += [self._bad_bar_plan(rec, i, why) for i, why in bad]
        for i in cands:
            plans.append(self.plan(rec, i, preds.get(i), equity, oq))

        # reductions first (they free gross room), then increases; each in symbol order
        proj_cash = broker.cash - sum(
            o.qty * o.decision_price * (1 + self._cost_rate(o.symbol, o.decision_price))
            for o in broker.open_orders.values() if o.qty > 0)
        proj_gross = sum(abs((broker.qty(s) + oq.get(s, 0)) * marks[s])
                         for s in sym if (s in held or oq.get(s, 0)))
        state = {"cash": proj_cash, "gross": proj_gross}
        orders = [p for p in plans if p.target_qty is not None]
        orders.sort(key=lambda p: (self._increases(p, oq), p.i))
        for p in orders:
            self.execute(rec, p, equity, state, oq)

        e2d = time.perf_counter() - t0
        self.latency.add(e2d)
        rec.e2d_ms = e2d * 1e3
        e2d_ms = rec.e2d_ms
        decisions = rec.rows.setdefault("decisions", [])
        for p in plans:
            p.decision.append(e2d_ms)
            decisions.append(tuple(p.decision))

        # orders fill later, so the marks above are the step's closing marks
        dd = 1.0 - equity / eng.peak if eng.peak and math.isfinite(eng.peak) else 0.0
        rec.add("equity", EquityRow(step, bars.ts, broker.cash, equity, gross, net, eng.peak,
                           eng.day_start_equity, dd, bars.day, eng.state.value))
        book = broker.positions
        snap = rec.rows.setdefault("positions", [])
        for s, m in zip(sym, last, strict=True):
            pos = book.get(s)
            shown = m if math.isfinite(m) else None
            # plain tuples in PositionRow order: one per symbol and step, no object each
            if pos is None:  # never traded: what Position(s) gives
                snap.append((step, s, 0.0, 0.0, shown, 0.0, 0.0, 0.0, 0.0))
            else:
                snap.append((step, s, pos.qty, pos.avg_price, shown,
                             pos.value(m) if pos.qty else 0.0, pos.realized,
                             pos.unrealized(m) if pos.qty else 0.0, pos.fees))
        rec.log = (plans, fills_now, rec.rows.get("risk_events", ()))  # after the commit
        return rec

    def predict(self, rows: np.ndarray, X: np.ndarray) -> dict[int, Any]:
        sym = self.symbols
        out: dict[int, Any] = {}
        if self.model.needs_features:
            ok = np.isfinite(X).all(axis=1)
            if ok.all():  # after warm-up, the usual case: every row goes to the model
                sel, Xs = rows, X
            else:
                for k in np.flatnonzero(~ok):
                    i = int(rows[k])
                    out[i] = Prediction(sym[i], self.classes[sym[i]], self.model_label, None,
                                        fallback_reason="FEATURES_NOT_READY: warm-up or NaN input")
                sel = rows[ok]
                Xs = X[ok]
        else:
            sel, Xs = rows, X
        if len(sel):
            names = [sym[i] for i in sel]
            try:
                res = self.model.predict(names, Xs)
                if len(res) != len(names):
                    raise ValueError(f"model returned {len(res)} predictions for {len(names)} symbols")
            except Exception as exc:  # fail closed: no signal, loudly
                log_event(log, "model_failed", level=40, error=f"{type(exc).__name__}: {exc}",
                          symbols=names)
                res = [Prediction(s, self.classes[s], self.model_label, None,
                                  fallback_reason=f"MODEL_ERROR: {type(exc).__name__}: {exc}")
                       for s in names]
            for i, pr in zip(sel, res, strict=True):
                out[int(i)] = checked_prediction(pr, sym[int(i)], self.classes[sym[int(i)]],
                                                 self.model_label)
        return out

    # ---------------------------------------------------------------- the loop
    def run(self) -> SessionResult:
        spec = self.spec
        t_start = time.monotonic()
        step_delay = _step_delay_seconds()
        try:
            self.prepare()
            check_consumed_bars(self)  # a resume re-reads the bars it consumed, or refuses
        except BaseException:
            if getattr(self, "ledger", None) is not None:
                self.ledger.close()  # releases the run lock
                if not spec.resume:  # a run this setup created and that failed: no trace
                    discard_empty_run(self.ledger.path)
            raise
        duration = parse_duration(spec.duration)
        deadline = None if duration is None else t_start + duration
        handler = self._attach_log()
        if self.wiring.install_signal_handlers:
            self.ks.install_signal_handlers()
        stopped, exit_code = "end_of_data", 0
        committed = 0

        def should_stop() -> bool:
            return self.ks.stop_requested or (deadline is not None and time.monotonic() >= deadline)

        if self.mode == "live":
            from ..data import get_source

            poll = self.wiring.poll_seconds or interval_seconds(self.interval)
            self.feed = LiveFeed(get_source(self.source_arg), self.symbols, self.interval, poll,
                                 self.settings.session.warmup_bars, should_stop,
                                 clock=self.wiring.clock, sleep=self.wiring.sleep,
                                 should_abort=lambda: self.ks.force,
                                 is_stale=self._stale_fill, replicas=self.spec.replicas)
        log_event(log, "session_started", run_id=self.run_id, mode=self.mode,
                  symbols=self.symbols, resume_from=self.next_step, dry_run=self.dry_run,
                  model=self.model_label, ledger=str(self.ledger.path))
        try:
            if spec.fast:
                from ..fast_replay import run_fast

                def counted(n: int) -> None:
                    nonlocal committed
                    committed = n

                stopped = run_fast(self, deadline, counted)
                summary = self.finish(stopped, committed, None)
                return SessionResult(self.run_id, self.ledger.path, summary, exit_code)
            step = -1
            for bars in self.feed:
                if bars.warmup:
                    self.observe(bars)
                    continue
                if self.mode == "replay":
                    step += 1
                else:
                    step = max(step + 1, self.next_step) if step >= 0 else self.next_step
                if step < self.next_step:  # already in the ledger: re-feed indicators only
                    self._check_resume_clock(step, bars)
                    self.observe(bars)
                    continue
                if self.ks.stop_requested:
                    stopped = "signal"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    stopped = "duration"
                    break
                t0 = time.perf_counter()
                rec = self.step(step, bars, t0)
                if step_delay:  # drills only: half decided-not-written, half in the transaction
                    time.sleep(step_delay / 2)
                try:
                    committed_now = self.ledger.commit_step(rec, pause=step_delay / 2)
                except LedgerError as exc:  # rolled back: halt the account, then stop
                    raise LedgerError(self._halt_on_write_failure(step, exc)) from exc
                if not committed_now:  # another writer got there first
                    raise LedgerError(f"{self.ledger.path}: step {step} was already committed; "
                                      "refusing to continue a run that is written twice")
                self.last_equity = rec.rows["equity"][0].equity
                committed += 1
                self.log_decisions(rec.log)
                if spec.max_steps is not None and committed >= spec.max_steps:
                    stopped = "max_steps"
                    break
            else:
                if self.ks.stop_requested:
                    stopped = "signal"
                elif deadline is not None and time.monotonic() >= deadline:
                    stopped = "duration"
            summary = self.finish(stopped, committed, None)
        except LedgerBusyError as exc:  # another writer: refuse, never latch HALTED
            log_event(log, "session_refused_ledger_busy", level=40, error=str(exc))
            self.finish("ledger_busy", committed, str(exc))
            raise
        except FeedError as exc:  # a live feed that brings nothing: stop loudly, recorded
            log_event(log, "session_stopped_feed_failed", level=40, error=str(exc))
            self.ledger.append_risk_event("session", "FEED_FAILED", f"FEED_FAILED: {exc}")
            self.finish("feed_failed", committed, str(exc))
            raise
        except LedgerError as exc:
            log_event(log, "session_halted_ledger_error", level=50, error=str(exc))
            summary, exit_code = self.finish("ledger_error", committed, str(exc)), 3
        finally:
            # signals stay ours until the summary is written: a second Ctrl+C never
            # interrupts the last commit or the summary
            self.ledger.close()
            self._detach_log(handler)
            if self.wiring.install_signal_handlers and self.wiring.restore_signal_handlers:
                self.ks.restore_signal_handlers()
        return SessionResult(self.run_id, self.ledger.path, summary, exit_code)

    def _halt_on_write_failure(self, step: int, exc: LedgerError) -> str:
        """A step the ledger could not take was rolled back: latch the account HALTED (in the
        ledger if it still takes a row, else in a marker file beside it) and say so.
        A ledger busy with another process's write is re-raised as is: not latched."""
        if isinstance(exc, LedgerBusyError):
            raise exc
        reason = f"{LEDGER_WRITE_FAILED}: step={step} {exc}"
        where = self.ledger.latch_halt(reason, self.last_equity)
        self.engine.state = TradingState.HALTED
        recorded = ("recorded in the ledger" if where == "ledger" else
                    f"recorded in {where}" if where else
                    "NOT recorded: nothing could be written; a resume fails the same way "
                    "until the disk has room")
        log_event(log, "account_halted_ledger_write_failed", level=50, step=step,
                  error=str(exc), recorded=where or None)
        return (f"{exc}. The account is HALTED ({recorded}); free disk space or make the run "
                f"folder writable, check the run, then `research-lib reset-halt {self.run_id}` "
                f"and `research-lib paper --resume {self.run_id}`")

    def finish(self, stopped: str, committed: int, error: str | None) -> dict[str, Any]:
        summary = self.summary(stopped, committed, error)
        log_event(log, "session_finished", **{k: v for k, v in summary.items()
                                              if k not in ("run_id",)})
        return summary

    def _check_resume_clock(self, step: int, bars: StepBars) -> None:
        if step == self.next_step - 1 and self.state is not None and self.state.last_ts:
            if self.state.last_ts != bars.ts:
                raise LedgerError(
                    f"{self.ledger.path}: step {step} was at {self.state.last_ts} but the data "
                    f"now puts it at {bars.ts}; the data changed since the run started; "
                    "refusing to resume"
                )

    # ---------------------------------------------------------------- summary
    def summary(self, stopped: str, committed: int, error: str | None) -> dict[str, Any]:
        """The session's summary (:func:`research_lib.paper.summary.compute_summary`)."""
        out = compute_summary(
            self.ledger.conn, run_id=self.run_id, ledger=str(self.ledger.path), mode=self.mode,
            engine=getattr(self, "engine_name", "step"), dry_run=self.dry_run,
            model=self.model_label, symbols=self.symbols,
            proxies=getattr(self, "proxies", None) or {}, initial_cash=self.initial_cash,
            state=self.engine.state.value, latency_ms=self.latency.summary_ms(),
            stopped=stopped, committed=committed, error=error,
            notes=[n for n in (getattr(self, "end_note", None),
                               getattr(self, "start_note", None)) if n])
        w = self.sample_windows  # IN-SAMPLE / OUT-OF-SAMPLE (research_lib.models.windows)
        out["sample"] = sample_section(self.ledger.conn, w.named, w.deciding, w.default)
        return out


def run_session(spec: SessionSpec | None = None, **kwargs: Any) -> SessionResult:
    """Run one paper session: ``run_session(symbols=["SPY", "QQQ"], model="baseline:sma_cross")``.

    From a notebook (:mod:`research_lib.paper.api`): ``frames=`` (a DataFrame with
    ``symbol=``, or a dict symbol -> DataFrame), ``model=`` (a registry name, a baseline, a
    model object or an ONNX file with its card), ``flag=0|1|"shadow"`` and
    ``risk={"max_position_pct": 0.1}``; the result's ``equity``, ``trades``, ``positions``
    and ``decisions`` are DataFrames::

        import research_lib as rl
        frames = rl.load(["SPY"], start="2015-01-01", end="2018-12-31")
        res = rl.run_session(frames=frames, model="baseline:sma_cross",
                             risk={"max_position_pct": 0.1}, run_dir="runs/notebook")
        res.equity["equity"].plot(); res.summary["sample"]["stamp"]
    """
    from .api import notebook_kwargs

    kwargs = notebook_kwargs(spec, kwargs)
    if spec is None:  # each keyword goes to the RunSpec or the Wiring (SessionSpec.split)
        spec = SessionSpec(**kwargs)
    elif kwargs:
        spec = dataclasses.replace(spec, **kwargs)
    return Session(spec).run()


