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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import Prediction
from ..broker import (
    QTY_DIGITS,
    Order,
    OrderFilled,
    PaperBroker,
    client_order_id,
    round_qty,
)
from ..config import (
    AssetsConfig,
    ConfigWatcher,
    RiskLimits,
    SessionSettings,
    config_dir,
    load_assets,
    load_risk,
    load_session,
    parse_symbols,
    project_root,
)
from ..errors import (
    ConfigError,
    DataError,
    FeedError,
    LedgerBusyError,
    LedgerError,
)
from ..features import FeatureState
from ..flags import KillSwitch
from ..ledger import (
    LEDGER_WRITE_FAILED,
    Ledger,
    LedgerState,
    StepRecord,
    discard_empty_run,
    ledger_path,
    now_iso,
    resolve_ledger,
)
from ..paths import safe_id
from ..reload_policy import (
    assets_reload_problem,
    risk_reload_problem,
    session_reload_problem,
)
from ..resume import (
    check_consumed_bars,
    check_resume,
    record_reload,
    refuse_fixed_options,
    run_inputs,
    start_digest,
    step_digest,
)
from ..risk import (
    EPS,
    OrderCheck,
    RiskEngine,
    StateChange,
    TradingState,
    clip_target,
    reason_code,
    refuse_shared_underlying,
)
from ..telemetry import (
    JsonFormatter,
    LatencyRecorder,
    get_logger,
    log_event,
    log_rows,
    new_run_id,
    set_run_id,
)
from .feeds import (
    REPLAY_ONLY_SOURCES,
    LiveFeed,
    ReplayFeed,
    StepBars,
    _check_frame,
    _fetch_window,
    _utc,
    replay_end_note,
)
from .reload import reload_step
from .rows import (
    DECISION,
    EquityRow,
    FillRow,
    OrderEventRow,
    OrderRow,
    RiskEventRow,
    StateChangeRow,
)
from .signals import checked_prediction, force_model, make_model, signal_target
from .spec import (
    CRYPTO_CALENDAR,
    SessionResult,
    SessionSpec,
    _step_delay_seconds,
    check_max_steps,
    interval_seconds,
    parse_duration,
)
from .summary import compute_summary

log = get_logger("session")
# the fields of the JSON records a step logs (risk_events rows, decisions)
_RISK_EVENT_KEYS = ("step", "bar_ts", "symbol", "kind", "code", "reason", "client_order_id")
_DECISION_KEYS = ("step", "bar_ts", "symbol", "asset_class", "model", "probability", "target",
                  "verdict", "reason", "order", "fill", "latency_ms")



@dataclass(slots=True)
class _Plan:
    i: int
    symbol: str
    pred: Any
    target: float | None
    target_qty: float
    kind: str
    decision: list[Any] = field(default_factory=list)  # a DecisionRow, filled in stages


class Session:
    """One paper session (use :func:`run_session`)."""

    def __init__(self, spec: SessionSpec) -> None:
        self.spec = spec

    # ---------------------------------------------------------------- setup
    def _configs(self) -> None:
        cdir = Path(self.spec.config_dir) if self.spec.config_dir else config_dir()
        self.config_dir = cdir
        self.w_risk = ConfigWatcher(cdir / "risk.yaml", load_risk, check=risk_reload_problem)
        self.w_session = ConfigWatcher(cdir / "session.yaml", load_session,
                                       check=session_reload_problem)
        self.w_assets = ConfigWatcher(cdir / "assets.yaml", load_assets, check=lambda o, n:
                                      assets_reload_problem(o, n, getattr(self, "symbols", ())))
        self.limits: RiskLimits = self.w_risk.value
        self.settings: SessionSettings = self.w_session.value
        self.assets: AssetsConfig = self.w_assets.value
        self._reload_errors: dict[str, str | None] = {}

    def _classify(self) -> None:
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.classes = {s: self.assets.classify(s) for s in self.symbols}
        self.crypto = np.array([
            self.classes[s] == "crypto" or self.assets.asset_class(self.classes[s]).calendar
            == CRYPTO_CALENDAR for s in self.symbols])

    def _resolve_run_dir(self) -> Path:
        rd = Path(self.spec.run_dir or self.settings.session.run_dir)
        return rd if rd.is_absolute() else project_root() / rd

    def _load_frames(self, source: Any) -> tuple[dict[str, Any], Any, Any]:
        import pandas as pd

        from ..data import get_source
        from ..data.sanity import refuse_bad_timeline

        src = get_source(source)
        interval = self.interval
        start = _utc(self.start_arg, "--start") if self.start_arg else None
        end = _utc(self.end_arg, "--end") if self.end_arg else None
        if start is not None and end is not None and start > end:
            raise ConfigError(f"--start {self.start_arg} is after --end {self.end_arg}; pass a "
                              "--start on or before --end")
        warm = self.settings.session.warmup_bars
        fetch_start = (start - pd.Timedelta(seconds=warm * interval_seconds(interval) * 2)
                       - pd.Timedelta(days=10)) if start is not None else None
        raw = {s: _fetch_window(src, s, fetch_start, end, interval, self.start_arg,
                                self.end_arg, warm) for s in self.symbols}
        frames = {s: _check_frame(s, raw[s]) for s in self.symbols}
        refuse_bad_timeline(frames, interval)  # bars of another interval, or before 1971
        refuse_shared_underlying(self.symbols, {s: str(raw[s].attrs.get("served_as", s))
                                                for s in self.symbols})
        self.labels = {s: raw[s].attrs.get("label", s) for s in self.symbols}
        self.proxies = {s: raw[s].attrs.get("proxy_note", "") for s in self.symbols}
        self._init_gate({s: raw[s].attrs for s in self.symbols})
        end_note = None
        if end is None:
            end = min(f.index[-1] for f in frames.values())
            end_note = replay_end_note(frames)
        if start is None:
            start = end - pd.Timedelta(days=round(365.25 * self.settings.session.replay_years))
        if start > end and not self.end_arg:  # the end came from the data, not the user
            raise ConfigError(f"--start {self.start_arg} is after the data's last common bar "
                              f"({end.isoformat()}): "
                              + (end_note or "pass a --start before it"))
        if start > end:
            raise ConfigError(f"--start {start.date()} is after --end {end.date()}")
        out = {}
        for s, f in frames.items():
            trade = f[(f.index >= start) & (f.index <= end)]
            if trade.empty:
                raise DataError(
                    f"{s}: no bars between {start.date()} and {end.date()}; its data spans "
                    f"{f.index[0].date()} .. {f.index[-1].date()}; pass --start/--end inside it"
                )
            out[s] = pd.concat([f[f.index < start].iloc[-warm:], trade])
        self._check_data(out, start, end)
        self.end_note = end_note
        if end_note is not None:  # said on stderr, in the summary and in the ledger
            log_event(log, "replay_ends_early", level=logging.WARNING, note=end_note)
            first = min(frames, key=lambda s: frames[s].index[-1])
            self._data_events.append((None, first, "data",
                                      "REPLAY_ENDS_EARLY", f"REPLAY_ENDS_EARLY: {end_note}", None))
        return out, start, end

    # ---------------------------------------------------------------- bad data
    def _init_gate(self, attrs: dict[str, Any]) -> None:
        """Per symbol: its calendar and the jump threshold the sanity suite uses for it."""
        from ..data.jumps import JumpGate
        from ..data.sanity import jump_threshold_for

        gate = self.settings.gate
        self._jumps = JumpGate(gate.jump_confirm_bars, gate.split_tolerance)
        self._data_events: list[tuple[Any, ...]] = []
        self._interval_s = interval_seconds(self.interval)
        self._cal = [str(attrs.get(s, {}).get("calendar") or self.assets.calendar_for(s))
                     for s in self.symbols]
        self._jump_thr = np.array([
            jump_threshold_for(str(attrs.get(s, {}).get("served_as", s)), c,
                               per_calendar=gate.thresholds())
            for s, c in zip(self.symbols, self._cal, strict=True)])

    def _check_data(self, frames: dict[str, Any], start: Any, end: Any) -> None:
        """The whole-frame sanity suite on what the session replays. Its error and warning
        findings become ``data`` risk events at the run's first step (and a log record):
        in the warm-up history they are warnings only; inside the window the bar gate
        judges each bar at its step. Missing sessions are flagged, never filled."""
        import pandas as pd

        from ..data.sanity import (
            ERROR,
            INFO,
            WARNING,
            Finding,
            SanityConfig,
            check_frame,
            stale_bar,
        )

        now = pd.Timestamp(self.spec.clock(), unit="s", tz="UTC")
        cap = 20  # events per symbol and code; the rest are counted in one more
        for j, (s, f) in enumerate(frames.items()):
            found = check_frame(f, s, SanityConfig(calendar=self._cal[j], now=now,
                                                   interval=self.interval,
                                                   jump_threshold=float(self._jump_thr[j])))
            last = f.index[-1]
            if stale_bar(self._cal[j], self._interval_s, last, end):
                found.append(Finding(
                    "STALE_LAST_BAR", WARNING, s, last, len(f) - 1,
                    f"last bar {last.isoformat()} is a full session or more before the "
                    f"session's end {end.isoformat()}; {s} gets no decision after it and is "
                    "marked at that close"))
            found = [x for x in found if x.severity != INFO]
            if not found:
                continue
            seen: Counter[str] = Counter()
            for x in found:
                seen[x.code] += 1
                if seen[x.code] > cap:
                    continue
                ts = x.timestamp.isoformat() if x.timestamp is not None else None
                where = ""
                if x.timestamp is not None and x.severity == ERROR:
                    where = (" (warm-up history before the window: warned, never traded on)"
                             if x.timestamp < start else
                             " (inside the window: the bar gate checks it at its step)")
                self._data_events.append((ts, s, "data", x.code,
                                          f"{x.code}: {x.message} severity={x.severity} "
                                          f"symbol={s} at={ts}{where}", None))
            for code, k in seen.items():
                if k > cap:
                    self._data_events.append((None, s, "data", code,
                                              f"{code}: {k - cap} more finding(s) not listed "
                                              f"symbol={s}; run `research-lib data check`", None))
            errors = sum(x.severity == ERROR for x in found)
            log_event(log, "data_findings", level=logging.WARNING if errors else logging.INFO,
                      symbol=s, errors=errors, warnings=len(found) - errors,
                      codes=dict(sorted(seen.items())))

    def gate(self, bars: StepBars) -> tuple[StepBars, list[tuple[int, str]]]:
        """The bar gate (fail closed): each new bar must have finite positive prices,
        consistent OHLC, no negative volume, a stamp not after now (live: not stale), and a
        close within its calendar's jump threshold of the last good close (the rules and
        thresholds of :mod:`research_lib.data.sanity`). Returns the bars that pass and
        ``(row, "BAD_BAR: CODE: ...")`` for the others, which the step records and uses for
        nothing: no features, no mark (the last good close stays), no order, no fill."""
        from ..data.sanity import bar_faults, describe_bar_fault

        rows = bars.rows
        if not len(rows):
            self._jumps.clear()
            return bars, []
        now_ns = int(self.spec.clock() * 1e9)
        stale = None
        if self.mode == "live" and not bars.warmup and bars.bar_ns is not None:
            import pandas as pd

            from ..data.sanity import stale_bar

            now = pd.Timestamp(now_ns, unit="ns", tz="UTC")
            stale = np.array([stale_bar(self._cal[i], self._interval_s,
                                        pd.Timestamp(int(ns), unit="ns", tz="UTC"), now)
                              for i, ns in zip(rows, bars.bar_ns, strict=True)], dtype=bool)
        ref, thr = self.last_close[rows], self._jump_thr[rows]
        code = bar_faults(bars.open, bars.high, bars.low, bars.close, bars.volume, ref, thr,
                          bars.bar_ns, now_ns, stale)
        held = self._jumps.review(rows, code, bars, ref, thr,  # jumps: held, split, confirmed
                                  lambda i: self.features.volumes[i, -1])
        if not code.any():
            return bars, []
        import pandas as pd

        bad = []
        for k in np.flatnonzero(code):
            i = int(rows[k])
            stamp = ("" if bars.bar_ns is None
                     else pd.Timestamp(int(bars.bar_ns[k]), unit="ns", tz="UTC").isoformat())
            why = describe_bar_fault(
                int(code[k]), float(bars.open[k]), float(bars.high[k]), float(bars.low[k]),
                float(bars.close[k]), float(bars.volume[k]), float(ref[k]), float(thr[k]),
                stamp, pd.Timestamp(now_ns, unit="ns", tz="UTC").isoformat())
            bad.append((i, f"BAD_BAR: {why}{held.get(int(k), '')} symbol={self.symbols[i]}"))
        ok = code == 0
        return dataclasses.replace(
            bars, rows=rows[ok], open=bars.open[ok], high=bars.high[ok], low=bars.low[ok],
            close=bars.close[ok], volume=bars.volume[ok], dow=bars.dow[ok],
            bar_ns=None if bars.bar_ns is None else bars.bar_ns[ok]), bad

    def _gate_fills(self, bars: StepBars, bad: list[tuple[int, str]]) -> np.ndarray:
        """Fill prices that pass the gate: none from a bad bar; finite, positive and within
        the jump threshold of the last good close."""
        from ..data.sanity import jump_exceeds

        fp = bars.fill_prices
        if bad:
            fp = fp.copy()
            fp[[i for i, _ in bad]] = np.nan
        with np.errstate(invalid="ignore"):
            ok = (fp > 0) & (fp < np.inf) & ~jump_exceeds(fp, self.last_close, self._jump_thr)
        return np.where(ok, fp, np.nan)

    def _cancel_if_killed(self, rec: StepRecord, ts: str) -> None:
        """A kill switch set at the fill stage cancels every open order (none fills while
        it is set, none is left to fill after it clears), each recorded with the reason."""
        halt = self.ks.check()
        if not halt.halted:
            return
        for ev in self.broker.cancel_open(f"KILL_SWITCH: {halt.reason}"):
            cid, sym = ev.order.client_order_id, ev.order.symbol
            reason = f"{ev.reason} symbol={sym}"
            rec.add("order_events", OrderEventRow(rec.step, ts, cid, "OrderCancelled", reason))
            rec.add("risk_events", RiskEventRow(rec.step, ts, sym, "cancellation", reason_code(reason),
                                    reason, cid))
            log_event(log, "order_cancelled", level=30, client_order_id=cid, symbol=sym,
                      qty=ev.order.qty, reason=reason)

    def _bad_bar_plan(self, rec: StepRecord, i: int, why: str) -> _Plan:
        s = self.symbols[i]
        plan = _Plan(i, s, None, None, None, "bad_bar")  # type: ignore[arg-type]
        plan.decision = [rec.step, rec.ts, s, self.classes[s], self.model_label, None, None,
                         None, None, None, "BAD_BAR", why, None, None]
        return plan

    def prepare(self) -> None:
        spec = self.spec
        check_max_steps(spec.max_steps)
        self._configs()
        # an unusable kill path is a config error before anything is written
        (spec.kill_switch or KillSwitch(self.settings.session.kill_file)).ensure_usable()
        self.run_dir = self._resolve_run_dir()
        self.state: LedgerState | None = None
        if spec.resume:
            path = resolve_ledger(spec.resume, self.run_dir)
            self.ledger = Ledger.open(path)
            self.state = self.ledger.load_state()
            m = self.state.meta
            self.run_id = m["run_id"]
            refuse_fixed_options(spec, m, self.run_id)  # the run keeps what it recorded
            self.symbols = list(m["symbols"])
            run = m["spec"]
            # a Source object cannot be stored: the caller passes it again on resume
            self.source_arg = (spec.source if spec.source is not None
                               and not isinstance(spec.source, str) else run["source"])
            self.mode = run["mode"]
            self.start_arg, self.end_arg = run["start"], run["end"]
            self.interval, self.dry_run, self.model_name = (run["interval"], run["dry_run"],
                                                            run["model"])
            self.initial_cash = float(m["initial_cash"])
            if self.mode == "live":
                self.ledger.conn.execute("PRAGMA synchronous=FULL")
        else:
            self.symbols = parse_symbols(list(spec.symbols))
            if spec.run_id is not None:
                safe_id(spec.run_id, "--run-id")  # a plain name: the run folder stays in runs/
            self.run_id = spec.run_id or new_run_id("paper")
            self.source_arg = spec.source or self.settings.session.source
            self.interval = spec.interval or self.settings.session.interval
            self.mode = spec.mode or (
                "live" if self.source_arg == "yfinance" and not spec.start and not spec.end
                else "replay")
            self.start_arg, self.end_arg = spec.start, spec.end
            self.dry_run, self.model_name = spec.dry_run, spec.model
            self.initial_cash = self.settings.session.initial_cash
        if self.mode not in ("replay", "live"):
            raise ConfigError(f"--mode must be replay or live, got {self.mode!r}")
        if self.mode == "live" and self.source_arg in REPLAY_ONLY_SOURCES:
            raise ConfigError(
                f"--mode live with --source {self.source_arg}: that source is fixed history "
                "and never gets a new bar, so a live session would poll it forever; drop "
                "--mode live to replay it, or use --source yfinance (or a csv:PATH another "
                "process appends to)")
        if spec.fast and self.mode != "replay":
            raise ConfigError("--fast replays history only; a live session runs step by step "
                              "(drop --fast, or pass --start/--end or a replay source)")
        self.engine_name = "fast" if spec.fast else "step"
        set_run_id(self.run_id)
        refuse_shared_underlying(self.symbols)  # one position cap per underlying
        self._classify()
        self.n = len(self.symbols)

        # data
        if self.mode == "replay":
            frames, start, end = self._load_frames(self.source_arg)
            self.feed: Any = ReplayFeed(frames, self.symbols, start)
            self.start_arg, self.end_arg = start.isoformat(), end.isoformat()
        else:
            self.labels = {s: s for s in self.symbols}
            self.proxies = {s: "" for s in self.symbols}
            self._init_gate({})
            self.feed = None  # built in run(): it needs the stop predicate

        # model
        model_assets = (force_model(self.assets, self.model_name)
                        if self.model_name and not self.model_name.startswith("baseline:")
                        else self.assets)
        self.model_assets = model_assets
        self.model = make_model(self.model_name, self.symbols, self.assets, self.classes,
                                router=spec.router)
        self.model_label = self.model_name or "router"
        self.model.warm(self.symbols)
        self.features = FeatureState(self.n)
        if self.state is not None:
            check_resume(self)  # same config and models, or refuse (bars: in run())

        # ledger
        if self.state is None:
            path = ledger_path(self.run_dir, self.run_id, "--run-id")
            meta = {
                "run_id": self.run_id,
                "symbols": self.symbols,
                "labels": self.labels,
                "proxies": self.proxies,
                "asset_classes": self.classes,
                "crypto_symbols": [s for s, c in zip(self.symbols, self.crypto, strict=True) if c],
                "initial_cash": self.initial_cash,
                "spec": {"source": str(self.source_arg), "mode": self.mode,
                         "start": self.start_arg, "end": self.end_arg,
                         "interval": self.interval, "dry_run": self.dry_run,
                         "model": self.model_name},
                "config": self._snapshot(),
                "inputs": run_inputs(self),  # what a resume checks (research_lib.resume)
                "config_dir": str(self.config_dir),  # where, not what: not compared
                "engine": self.engine_name,  # how, not what: not compared
            }
            self.ledger = Ledger.create(path, meta, synchronous="FULL" if self.mode == "live"
                                        else "NORMAL")
            self.state = self.ledger.load_state()
        st = self.state
        self._bars_seen = start_digest(self)  # rolling sha256 of the bars consumed

        # account
        self.broker = PaperBroker(self.initial_cash, self.settings.session, self.dry_run,
                                  self.limits.price_band_pct)
        self.broker = self.broker.restore(st.fills, st.open_orders, st.known_ids)
        self.engine = RiskEngine(self.limits, st.state, st.day, st.day_start_equity, st.peak,
                                 dict(st.halted_symbols))
        self.last_equity = st.equity if st.equity is not None else self.initial_cash
        self.next_step = st.last_step + 1
        self.last_close = np.full(self.n, np.nan)
        self.prev_close = np.full(self.n, np.nan)
        self.ks = spec.kill_switch or KillSwitch(self.settings.session.kill_file)
        self.latency = LatencyRecorder()
        if self.engine.state is TradingState.HALTED:
            log_event(log, "account_halted_at_start", level=30, run_id=self.run_id,
                      reason=st.halt_reason,
                      note=f"only closing orders pass until `research-lib reset-halt {self.run_id}`")
        at_start = self.ks.check()
        # recorded in the first step this session commits (scope "kill_switch")
        self._ks_at_start = at_start.reason if at_start.halted else None
        if at_start.halted:
            log_event(log, "kill_switch_engaged_at_start", level=30, reason=at_start.reason,
                      note="no order will pass while it is set")

    def _snapshot(self) -> dict[str, Any]:
        return {
            "risk": dataclasses.asdict(self.limits),
            "session": dataclasses.asdict(self.settings.session),
            "signal": dataclasses.asdict(self.settings.signal),
            "gate": dataclasses.asdict(self.settings.gate),
            "assets": {"universal_model": self.assets.universal_model,
                       "classes": {c.name: {"model": c.model, "calendar": c.calendar}
                                   for c in self.assets.classes}},
            "model": self.model_name or "router",
        }

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

    def _open_qty_by_symbol(self) -> dict[str, float]:
        """``broker.open_qty(s)`` for every symbol with open orders, summed in the same
        order. Taken once per step after the fills: each symbol gets at most one order per
        step, decided after its own lookups, so the map holds for the whole step."""
        out: dict[str, float] = {}
        for o in self.broker.open_orders.values():
            out[o.symbol] = out.get(o.symbol, 0) + o.qty
        return out

    def _breaker_rows(self, rows: np.ndarray) -> list[int]:
        """Rows whose per-symbol breaker may change this step: a close outside the price
        band around the previous close (numpy, the same arithmetic as
        :func:`research_lib.risk.price_band_breached`) or a symbol already halted."""
        if len(rows) <= 8:
            return rows.tolist()
        ref = self.prev_close[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (np.isfinite(ref) & (ref > 0) & (np.abs(self.last_close[rows] / ref - 1.0)
                                                   > self.engine.limits.price_band_pct + EPS))
        halted, sym = self.engine.halted_symbols, self.symbols
        return [i for i, b in zip(rows.tolist(), out.tolist(), strict=True)
                if b or sym[i] in halted]

    def _cost_rate(self, symbol: str, price: float) -> float:
        c = self.settings.session
        rate = (c.slippage_bps + c.commission_bps) / 1e4
        i = self._index[symbol]
        if not self.crypto[i] and price > 0:
            rate += c.commission_per_share / price
        return rate

    def _lot(self, i: int) -> float | None:
        return self.settings.session.crypto_lot_size if self.crypto[i] else None

    def _over_limit(self, i: int, equity: float, oq: dict[str, float]) -> bool:
        """The symbol's held + pending quantity, at its last close, above max_position_pct."""
        s = self.symbols[i]
        price = float(self.last_close[i])
        if not (math.isfinite(price) and price > 0 and equity > 0):
            return False
        cur = self.broker.qty(s) + oq.get(s, 0)
        return abs(cur * price / equity) > self.limits.max_position_pct + EPS

    def _increases(self, p: _Plan, oq: dict[str, float]) -> bool:
        cur = self.broker.qty(p.symbol) + oq.get(p.symbol, 0)
        return abs(p.target_qty) > abs(cur) or (p.target_qty * cur < 0)

    def plan(self, rec: StepRecord, i: int, pred: Any, equity: float,
              oq: dict[str, float]) -> _Plan:
        s = self.symbols[i]
        lim, sig = self.limits, self.settings.signal
        eng = self.engine
        price = float(self.last_close[i])
        cur = self.broker.qty(s) + oq.get(s, 0)
        if pred is None:
            model, prob, shadow, shadow_prob, fallback = self.model_label, None, None, None, None
        else:
            model = getattr(pred, "model", self.model_label)
            prob = getattr(pred, "probability", None)
            shadow = getattr(pred, "shadow_model", None)
            shadow_prob = getattr(pred, "shadow_probability", None)
            fallback = getattr(pred, "fallback_reason", None)
        if prob is not None and not math.isfinite(prob):
            prob = None
        plan = _Plan(i, s, pred, None, None, "signal",  # type: ignore[arg-type]
                     [rec.step, rec.ts, s, self.classes[s], model, prob, shadow, shadow_prob,
                      fallback])

        def verdict(v: str, reason: str | None = None, target: float | None = None) -> _Plan:
            plan.decision += [target, v, reason, None, None]
            plan.target_qty = None  # type: ignore[assignment]
            return plan

        if not math.isfinite(price) or price <= 0:
            reason = f"NO_PRICE: price={price} symbol={s}"
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "denial", "NO_PRICE", reason, None))
            return verdict("NO_PRICE", reason)
        cur_w = cur * price / equity if equity > 0 else 0.0
        # above the limit at the current mark (held + pending): always trimmed back to it,
        # whatever the signal, the rebalance band or a missing prediction say
        over = abs(cur_w) > lim.max_position_pct + EPS
        if eng.state is TradingState.HALTED:
            if cur == 0:
                return verdict("HALTED", "HALTED: no position to close", 0.0)
            target_w, plan.kind = 0.0, "flatten"
        else:
            raw: float | None = None
            if pred is None or prob is None:
                if not over:
                    why = getattr(pred, "fallback_reason", None) or "NO_SIGNAL: no probability"
                    return verdict("NO_SIGNAL", why)
            else:
                raw = signal_target(prob, sig.long_threshold, sig.short_threshold,
                                    sig.target_weight, lim.allow_short)
            if raw is None:  # hold; a position above the limit is trimmed to it
                target_w = cur_w
                if over:
                    target_w = math.copysign(lim.max_position_pct, cur_w)
                    plan.kind = "trim"
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "POSITION_TRIMMED",
                                            f"POSITION_TRIMMED: limit={lim.max_position_pct:g} "
                                            f"weight={cur_w:.4f} symbol={s}", None))
            else:
                target_w, why = clip_target(raw, lim)
                if why is not None:
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "TARGET_CLIPPED",
                                            f"{why} symbol={s}", None))
            if eng.state is TradingState.REDUCING:
                lo, hi = (0.0, cur_w) if cur_w >= 0 else (cur_w, 0.0)
                clipped = min(max(target_w, lo), hi)
                if clipped != target_w:
                    rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "REDUCING_ONLY_CLIPPED",
                                            f"REDUCING_ONLY_CLIPPED: target={target_w:.4f} "
                                            f"clipped={clipped:.4f} symbol={s}", None))
                    target_w = clipped
        plan.target = target_w
        tq = round_qty(target_w * equity / price, self._lot(i)) if target_w else 0.0
        if target_w == cur_w and plan.kind == "signal":
            tq = cur  # an explicit hold keeps the exact quantity
        if tq == cur:
            return verdict("HOLD", None, target_w)
        if (tq != 0 and cur != 0 and (tq > 0) == (cur > 0) and eng.state is TradingState.ACTIVE
                and not over
                and abs(tq - cur) * price / equity <= self.settings.session.rebalance_band + EPS):
            return verdict("HOLD", f"WITHIN_REBALANCE_BAND: band="
                           f"{self.settings.session.rebalance_band:g} target={target_w:.4f} "
                           f"weight={cur_w:.4f}", target_w)
        plan.target_qty = tq
        return plan

    def execute(self, rec: StepRecord, p: _Plan, equity: float, book: dict[str, float],
                 oq: dict[str, float]) -> None:
        s, i = p.symbol, p.i
        lim = self.limits
        broker = self.broker
        price = float(self.last_close[i])
        cur = broker.qty(s) + oq.get(s, 0)
        qty = round(p.target_qty - cur, QTY_DIGITS)
        rate = self._cost_rate(s, price)
        lot = self._lot(i)
        reducing = abs(cur + qty) < abs(cur) and (cur + qty) * cur >= 0
        if qty > 0 and not reducing:  # buying power, with the cash buffer kept back
            room = book["cash"] - lim.cash_buffer_pct * equity
            if cur < 0:
                room += -cur * price  # covering a short first
            max_q = max(round_qty(room / (price * (1 + rate)), lot), 0.0)
            if qty > max_q:
                rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "CASH_CLIPPED",
                                        f"CASH_CLIPPED: wanted={qty:.10g} allowed={max_q:.10g} "
                                        f"cash={book['cash']:.2f} buffer={lim.cash_buffer_pct:g} "
                                        f"symbol={s}", None))
                qty = max_q
        if not reducing and qty != 0:  # gross room
            room = lim.max_gross_leverage * equity - (book["gross"] - abs(cur * price))
            max_abs = max(round_qty(room / price, lot), 0.0)
            if abs(cur + qty) > max_abs and abs(cur + qty) > abs(cur):
                new_after = math.copysign(max(max_abs, abs(cur)), cur + qty)
                new_qty = round(new_after - cur, QTY_DIGITS)
                rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "clip", "GROSS_CLIPPED",
                                        f"GROSS_CLIPPED: limit={lim.max_gross_leverage:g} "
                                        f"wanted={qty:.10g} allowed={new_qty:.10g} symbol={s}",
                                        None))
                qty = new_qty
        if qty == 0:
            p.decision += [p.target, "HOLD", "CLIPPED_TO_ZERO", None, None]
            return
        cid = client_order_id(self.run_id, rec.step, s)
        order = Order(cid, rec.step, rec.ts, s, qty, price, p.kind, self.classes[s],
                      bool(self.crypto[i]))
        check = OrderCheck(s, qty, price, float(self.prev_close[i]), cur, equity, book["gross"],
                           book["cash"], self.engine.state, rate)
        reason = self.engine.check(check)
        if reason is None:
            halt = self.ks.check()  # immediately before this order, every time
            if halt.halted:
                reason = f"KILL_SWITCH: {halt.reason} symbol={s}"
        rec.add("orders", OrderRow(cid, rec.step, rec.ts, s, self.classes[s], order.side, qty, price,
                           p.kind, int(self.dry_run)))
        if reason is not None:
            ev = broker.deny(order, reason)
            if ev is None:
                p.decision += [p.target, "DUPLICATE", cid, cid, qty]
                return
            rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderDenied", reason))
            rec.add("risk_events", RiskEventRow(rec.step, rec.ts, s, "denial", reason_code(reason), reason,
                                    cid))
            log_event(log, "order_denied", client_order_id=cid, symbol=s, qty=qty,
                      reason=reason)
            p.decision += [p.target, "DENIED", reason, cid, qty]
            return
        sub = broker.submit(order)
        if sub is None:
            p.decision += [p.target, "DUPLICATE", cid, cid, qty]
            return
        rec.add("order_events", OrderEventRow(rec.step, rec.ts, cid, "OrderSubmitted",
                                 "DRY_RUN" if sub.dry_run else None))
        if qty > 0:
            book["cash"] -= qty * price * (1 + rate)
        book["gross"] += abs((cur + qty) * price) - abs(cur * price)
        p.decision += [p.target, "DRY_RUN" if sub.dry_run else "SUBMITTED", None, cid, qty]

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
        if spec.install_signal_handlers:
            self.ks.install_signal_handlers()
        stopped, exit_code = "end_of_data", 0
        committed = 0

        def should_stop() -> bool:
            return self.ks.stop_requested or (deadline is not None and time.monotonic() >= deadline)

        if self.mode == "live":
            from ..data import get_source

            poll = spec.poll_seconds or interval_seconds(self.interval)
            self.feed = LiveFeed(get_source(self.source_arg), self.symbols, self.interval, poll,
                                 self.settings.session.warmup_bars, should_stop,
                                 clock=spec.clock, sleep=spec.sleep,
                                 should_abort=lambda: self.ks.force)
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
            if spec.install_signal_handlers and spec.restore_signal_handlers:
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

    def log_decisions(self, pending: Any) -> None:
        """A committed step's JSON records (``rec.log``: plans, fills, risk events)."""
        if not log.isEnabledFor(logging.INFO):
            return
        plans, fills_now, events = pending
        # batches (telemetry.log_rows): the same JSON records, one write per step
        # clips, denials, rejections, breaches (rejections also at ERROR)
        log_rows(log, "risk_event", _RISK_EVENT_KEYS, events)
        D = DECISION  # column indices: the decision is a plain list in DecisionRow order
        log_rows(log, "decision", _DECISION_KEYS, [
            (d[D.step], d[D.ts], d[D.symbol], d[D.asset_class], d[D.model], d[D.probability],
             d[D.target], d[D.verdict], d[D.reason],
             None if d[D.client_order_id] is None
             else {"client_order_id": d[D.client_order_id], "qty": d[D.qty]},
             fills_now.get(d[D.symbol]), d[D.latency_ms])
            for d in (p.decision for p in plans)])

    def _attach_log(self) -> logging.Handler | None:
        if not self.spec.log_file:
            return None
        root = logging.getLogger("research_lib")
        path = self.ledger.path.parent / "events.jsonl"
        h = logging.FileHandler(path, encoding="utf-8")
        h.setFormatter(JsonFormatter())
        h.setLevel(logging.INFO)
        self._saved_levels = (root.level, [(x, x.level) for x in root.handlers])
        floor = root.getEffectiveLevel()
        for x in root.handlers:  # stderr keeps the level the user asked for
            if x.level < floor:
                x.setLevel(floor)
        root.addHandler(h)
        root.setLevel(min(floor, logging.INFO))
        return h

    def _detach_log(self, h: logging.Handler | None) -> None:
        if h is None:
            return
        root = logging.getLogger("research_lib")
        root.removeHandler(h)
        h.close()
        level, handlers = self._saved_levels
        root.setLevel(level)
        for x, lv in handlers:
            x.setLevel(lv)

    # ---------------------------------------------------------------- summary
    def summary(self, stopped: str, committed: int, error: str | None) -> dict[str, Any]:
        """The session's summary (:func:`research_lib.paper.summary.compute_summary`)."""
        return compute_summary(
            self.ledger.conn, run_id=self.run_id, ledger=str(self.ledger.path), mode=self.mode,
            engine=getattr(self, "engine_name", "step"), dry_run=self.dry_run,
            model=self.model_label, symbols=self.symbols,
            proxies=getattr(self, "proxies", None) or {}, initial_cash=self.initial_cash,
            state=self.engine.state.value, latency_ms=self.latency.summary_ms(),
            stopped=stopped, committed=committed, error=error,
            notes=[n for n in (getattr(self, "end_note", None),) if n])


def run_session(spec: SessionSpec | None = None, **kwargs: Any) -> SessionResult:
    """Run one paper session: ``run_session(symbols=["SPY", "QQQ"], model="baseline:sma_cross")``."""
    if spec is None:
        spec = SessionSpec(**kwargs)
    elif kwargs:
        spec = dataclasses.replace(spec, **kwargs)
    return Session(spec).run()

