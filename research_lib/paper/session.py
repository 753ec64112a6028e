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
import time
from typing import Any

import numpy as np

from ..baselines import Prediction
from ..errors import (
    FeedError,
    LedgerBusyError,
    LedgerError,
    VenueError,
)
from ..ledger import (
    StepRecord,
)
from ..models.windows import sample_section
from ..resume import (
    check_consumed_bars,
)
from ..risk import (
    TradingState,
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
    StepBars,
)
from .live import LiveFeed
from .reload import reload_step
from .setup import SessionSetup
from .signals import checked_prediction
from .spec import (
    RunSpec,
    SessionResult,
    SessionSpec,
    Wiring,
    _step_delay_seconds,
    parse_duration,
)
from .step import run_step
from .summary import compute_summary

log = get_logger("session")

def _alias(holder: str, name: str) -> property:
    """``session.name`` reads and writes ``session.<holder>.name`` (the set-up, reload and
    resume helpers use the old names; the stages take the Desk and the Account)."""
    return property(lambda self: getattr(getattr(self, holder), name),
                    lambda self, v: setattr(getattr(self, holder), name, v))


class Session(SessionSetup, EventLog):
    """One paper session (use :func:`run_session`): set-up (:mod:`.setup`), then the loop
    below, each step :func:`~research_lib.paper.step.run_step` over the session's
    :class:`~.account.Desk` and :class:`~.account.Account`."""

    # what the rules read (Desk) and what a step changes (Account), by their old names
    symbols = _alias("desk", "symbols")
    _index = _alias("desk", "index")
    classes = _alias("desk", "classes")
    crypto = _alias("desk", "crypto")
    limits = _alias("desk", "limits")
    settings = _alias("desk", "settings")
    run_id = _alias("desk", "run_id")
    model_label = _alias("desk", "model_label")
    ks = _alias("desk", "ks")
    broker = _alias("acct", "broker")
    engine = _alias("acct", "engine")
    last_close = _alias("acct", "last_close")
    prev_close = _alias("acct", "prev_close")
    last_equity = _alias("acct", "last_equity")

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

    # ---------------------------------------------------------------- inputs
    def gate(self, bars: StepBars) -> tuple[StepBars, list[tuple[int, str]]]:
        """The bar gate (:class:`~.gate.BarGate`) against the last good closes."""
        return self.bar_gate.check(bars, self.acct.last_close,
                                   lambda i: self.features.volumes[i, -1])

    def observe(self, bars: StepBars, gated: bool = False) -> np.ndarray | None:
        """Prices known now, features and the model's own history for the new bars that
        pass the bar gate (``gated``: the caller already ran :meth:`gate`)."""
        if not gated:
            bars, bad = self.gate(bars)
            for i, why in bad:  # warm-up or resume re-feed: the start-up findings list them
                log_event(log, "bad_bar_skipped", ts=bars.ts, symbol=self.symbols[i],
                          reason=why)
            for i, code, why in self.bar_gate.jumps.notes:  # a jump confirmed or dropped here
                log_event(log, "bar_jump_" + code.lower(), ts=bars.ts, symbol=self.symbols[i],
                          reason=why)
        rows = bars.rows
        if not len(rows):
            return None
        if self.bar_gate.jumps.release:
            self._feed_held()
        acct = self.acct
        acct.prev_close[rows] = acct.last_close[rows]
        acct.last_close[rows] = bars.close
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
        acct = self.acct
        for i, (dow, h, lo, c, v) in self.bar_gate.jumps.release:
            r = np.array([i])
            acct.prev_close[i] = acct.last_close[i]
            acct.last_close[i] = c
            if self.model.needs_features:
                self.features.update(r, np.array([dow]), np.array([h]), np.array([lo]),
                                     np.array([c]), np.array([v]))
            else:
                self.features.push(r, np.array([c]), np.array([v]))
            self.model.observe(r, np.array([c]))
        self.bar_gate.jumps.release = []

    def step(self, step: int, bars: StepBars, t0: float, pre: Any = None) -> StepRecord:
        """One step (:func:`~research_lib.paper.step.run_step`)."""
        return run_step(self, step, bars, t0, pre)

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

    def predict_columns(self, rows: np.ndarray, X: np.ndarray) -> Any:
        """:meth:`predict` over many bars at once, as columns (the fast replay's batch pass,
        for the ONNX router): row ``k`` is symbol ``rows[k]`` with features ``X[k]``; the
        same checks, one model call per model, no object per row. A model error is raised
        here (the caller then goes step by step, where it is no signal for that step's
        symbols, as :meth:`predict` records it)."""
        from ..models.router import PredictionColumns

        sym, label = np.asarray(self.symbols, dtype=object), self.model_label
        n = len(rows)
        names = sym[rows]
        cls = np.asarray([self.classes[s] for s in self.symbols], dtype=object)[rows]
        out = PredictionColumns(cls, np.full(n, label, dtype=object), np.full(n, np.nan),
                                np.full(n, None, dtype=object), np.full(n, np.nan),
                                np.full(n, None, dtype=object))
        ok = np.isfinite(X).all(axis=1)
        out.fallback_reason[~ok] = "FEATURES_NOT_READY: warm-up or NaN input"
        sel = np.flatnonzero(ok)
        if len(sel):
            pc = self.model.router.predict_columns(names[sel].tolist(), X[sel])
            for f in dataclasses.fields(out):
                getattr(out, f.name)[sel] = getattr(pc, f.name)
        p, sp = out.probability, out.shadow_probability
        with np.errstate(invalid="ignore"):
            bad = ((p < 0) | (p > 1)) | ((sp < 0) | (sp > 1))
        for k in np.flatnonzero(bad).tolist():  # what checked_prediction makes of a row
            pr = checked_prediction(Prediction(
                names[k], cls[k], out.model[k], None if np.isnan(p[k]) else float(p[k]),
                out.shadow_model[k], None if np.isnan(sp[k]) else float(sp[k]),
                out.fallback_reason[k]), names[k], cls[k], label)
            p[k] = np.nan if pr.probability is None else pr.probability
            sp[k] = np.nan if pr.shadow_probability is None else pr.shadow_probability
            out.fallback_reason[k] = pr.fallback_reason
        return out

    # ---------------------------------------------------------------- the loop
    def run(self) -> SessionResult:
        spec = self.spec
        step_delay = _step_delay_seconds()
        try:
            self.prepare()
            check_consumed_bars(self)  # a resume re-reads the bars it consumed, or refuses
            if self.venue_link is not None:  # the venue against the ledger, before deciding
                self.venue_link.at_start(self)
        except BaseException:
            if getattr(self, "ledger", None) is not None:
                self.ledger.close()  # releases the run lock
                if not spec.resume:  # a run this setup created and that failed: no trace
                    discard_empty_run(self.ledger.path)
            raise
        # --duration: wall-clock time in a live session (the session's clock); in a replay
        # it is market time and already cut the replayed window (setup.replay_cut)
        duration = parse_duration(spec.duration) if self.mode == "live" else None
        clock = self.wiring.clock
        deadline = None if duration is None else clock() + duration
        handler = self._attach_log()
        if self.wiring.install_signal_handlers:
            self.ks.install_signal_handlers()
        stopped, exit_code = "end_of_data", 0
        committed = 0
        progress, total = self.wiring.progress, self._progress_total()

        def should_stop() -> bool:
            return self.ks.stop_requested or (deadline is not None and clock() >= deadline)

        if self.mode == "live":
            from ..data import get_source

            self.feed = LiveFeed(get_source(self.source_arg), self.symbols, self.interval,
                                 self.wiring.poll_seconds, self.settings.session.warmup_bars,
                                 should_stop, clock=clock, sleep=self.wiring.sleep,
                                 should_abort=lambda: self.ks.force,
                                 is_stale=self.bar_gate.stale_fill, replicas=self.spec.replicas,
                                 calendars=self.bar_gate.cal,
                                 start_after=self.state.last_ts if self.next_step else None)
        log_event(log, "session_started", run_id=self.run_id, mode=self.mode,
                  symbols=self.symbols, resume_from=self.next_step, dry_run=self.dry_run,
                  model=self.model_label, ledger=str(self.ledger.path))
        try:
            if spec.fast:
                from .fast import run_fast

                def counted(n: int) -> None:
                    nonlocal committed
                    committed = n
                    if progress is not None:
                        progress(self.next_step + n, total)

                stopped = run_fast(self, deadline, counted)
                if stopped == "end_of_data" and getattr(self, "replay_cut", None) is not None:
                    stopped = "duration"  # the replay's window ended at --duration
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
                if deadline is not None and clock() >= deadline:
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
                if progress is not None:
                    progress(step + 1, total)
                if spec.max_steps is not None and committed >= spec.max_steps:
                    stopped = "max_steps"
                    break
            else:
                if self.ks.stop_requested:
                    stopped = "signal"
                elif deadline is not None and clock() >= deadline:
                    stopped = "duration"
                elif getattr(self, "replay_cut", None) is not None:
                    stopped = "duration"
            self._record_feed_leftovers()
            summary = self.finish(stopped, committed, None)
        except LedgerBusyError as exc:  # another writer: refuse, never latch HALTED
            log_event(log, "session_refused_ledger_busy", level=40, error=str(exc))
            self.finish("ledger_busy", committed, str(exc))
            raise
        except FeedError as exc:  # a live feed that brings nothing: stop loudly, recorded
            log_event(log, "session_stopped_feed_failed", level=40, error=str(exc))
            self._record_feed_leftovers()
            self.ledger.append_risk_event("session", "FEED_FAILED", f"FEED_FAILED: {exc}")
            self.finish("feed_failed", committed, str(exc))
            raise
        except VenueError as exc:  # the step in progress was not recorded (fail closed)
            log_event(log, "session_stopped_venue_error", level=40, error=str(exc))
            self.ledger.append_risk_event("venue", "VENUE_UNAVAILABLE",
                                          f"VENUE_UNAVAILABLE: {exc}")
            summary, exit_code = self.finish("venue_error", committed, str(exc)), 4
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

    def _record_feed_leftovers(self) -> None:
        """What a live feed learned after its last step (a fetch error, a late bar) is
        recorded after that step, not lost."""
        feed = getattr(self, "feed", None)
        for _ts, _sym, code, why in getattr(feed, "events", None) or ():
            self.ledger.append_risk_event("data", code, why)
        if feed is not None and hasattr(feed, "events"):
            feed.events = []

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

    def _progress_total(self) -> int | None:
        """Steps the run will have in its ledger when it ends (a replay: the window, capped
        by --max-steps); None for a live session."""
        feed = getattr(self, "feed", None)
        if self.mode != "replay" or feed is None:
            return None
        n = len(feed) - feed.n_warmup
        if self.spec.max_steps is not None:
            n = min(n, self.next_step + self.spec.max_steps)
        return n

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
            proxies={**(getattr(self, "proxies", None) or {}),
                     **getattr(getattr(self, "feed", None), "alias_notes", {})},
            initial_cash=self.initial_cash,
            state=self.engine.state.value, latency_ms=self.latency.summary_ms(),
            stopped=stopped, committed=committed, error=error,
            notes=[n for n in (getattr(self, "end_note", None),
                               getattr(self, "start_note", None),
                               getattr(self, "duration_note", None),
                               *getattr(self, "class_notes", ()),
                               *getattr(getattr(self, "feed", None), "notes", ())) if n])
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


