"""Session set-up: configs, symbols and classes, the replay window and its data, the model,
the ledger (new or resumed) and the account, in that order (:meth:`SessionSetup.prepare`)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..broker import (
    PaperBroker,
)
from ..config import (
    AssetsConfig,
    ConfigWatcher,
    config_dir,
    load_assets,
    models_dir,
    parse_symbols,
)
from ..config_overrides import risk_loader, settings_loader
from ..data.source_base import source_label
from ..errors import (
    ConfigError,
    DataError,
)
from ..features import FeatureState
from ..flags import KillSwitch, routing_mode
from ..ledger import (
    Ledger,
    LedgerState,
)
from ..ledger_columns import bulk_rows
from ..models.windows import default_start, session_windows
from ..paths import safe_id
from ..reload_policy import (
    assets_reload_problem,
    risk_reload_problem,
    session_reload_problem,
)
from ..resume import (
    check_resume,
    refuse_fixed_options,
    run_inputs,
    start_digest,
)
from ..risk import (
    RiskEngine,
    TradingState,
    refuse_identical_series,
    refuse_shared_underlying,
)
from ..run_files import (
    ledger_path,
    resolve_ledger,
)
from ..telemetry import (
    LatencyRecorder,
    get_logger,
    log_event,
    new_run_id,
    set_run_id,
)
from ..venues.broker import VenueBroker
from ..venues.setup import open_venue
from .account import Account, Desk
from .decision_log import check_level, meta_entry, open_filter
from .feeds import (
    REPLAY_ONLY_SOURCES,
    ReplayFeed,
    _check_frame,
    _fetch_window,
    _utc,
    replay_end_note,
)
from .gate import BarGate
from .live import is_network_source
from .signals import make_model, model_assets_for
from .spec import (
    CRYPTO_CALENDAR,
    RunValues,
    check_folder_options,
    check_max_steps,
    interval_seconds,
)

log = get_logger("session")


class SessionSetup:
    """The set-up half of :class:`~research_lib.paper.session.Session` (a mixin: phase 2
    turns it into a function returning the account state and the wiring)."""

    run_values: RunValues  # what this run runs with (set by prepare)

    # the run's values by their old names (read-only; replaced whole in prepare)
    source_arg = property(lambda self: self.run_values.source)
    mode = property(lambda self: self.run_values.mode)
    start_arg = property(lambda self: self.run_values.start)
    end_arg = property(lambda self: self.run_values.end)
    interval = property(lambda self: self.run_values.interval)
    dry_run = property(lambda self: self.run_values.dry_run)
    model_name = property(lambda self: self.run_values.model)
    initial_cash = property(lambda self: self.run_values.initial_cash)

    # ---------------------------------------------------------------- setup
    def _configs(self) -> None:
        from ..project import resolve_path

        cdir = resolve_path(self.spec.config_dir) if self.spec.config_dir else config_dir()
        self.config_dir = cdir
        self.w_risk = ConfigWatcher(cdir / "risk.yaml", risk_loader(self.spec.risk),
                                    check=risk_reload_problem)
        self.w_session = ConfigWatcher(cdir / "session.yaml",
                                       settings_loader(self.spec.settings),
                                       check=session_reload_problem)
        self.w_assets = ConfigWatcher(cdir / "assets.yaml", load_assets, check=lambda o, n:
                                      assets_reload_problem(o, n, getattr(self, "symbols", ())))
        # what the rules read (paper/account.py); filled in as set-up learns it
        self.desk = Desk(symbols=[], index={}, classes={}, crypto=np.zeros(0, dtype=bool),
                         limits=self.w_risk.value, settings=self.w_session.value, run_id="",
                         dry_run=False, model_label="", ks=None)  # type: ignore[arg-type]
        self.assets: AssetsConfig = self.w_assets.value
        self._reload_errors: dict[str, str | None] = {}

    def _classify(self) -> None:
        from ..asset_classes import explain

        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.classes = {s: self.assets.classify(s) for s in self.symbols}
        # an unknown symbol is never silently an equity: the class it was given and why
        self.class_notes = [c.reason for c in map(lambda s: explain(self.assets, s),
                                                   self.symbols) if c.assumed]
        for note in self.class_notes:
            log_event(log, "symbol_class_assumed", level=logging.WARNING, note=note)
        self.crypto = np.array([
            self.classes[s] == "crypto" or self.assets.asset_class(self.classes[s]).calendar
            == CRYPTO_CALENDAR for s in self.symbols])

    def _make_gate(self, attrs: dict[str, Any]) -> BarGate:
        return BarGate(self.symbols, self.settings.gate, self.assets, self.interval,
                       self.mode == "live", self.wiring.clock, attrs)

    def _resolve_run_dir(self) -> Path:
        from ..project import resolve_path

        return resolve_path(self.spec.run_dir or self.settings.session.run_dir)

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
        from ..data.parallel import fetch_all  # threads when a source reads a file per symbol

        raw = fetch_all(src, self.symbols, lambda s: _fetch_window(
            src, s, fetch_start, end, interval, self.start_arg, self.end_arg, warm))
        frames = {s: _check_frame(s, raw[s]) for s in self.symbols}
        refuse_bad_timeline(frames, interval)  # bars of another interval, or before 1971
        refuse_shared_underlying(self.symbols, {s: str(raw[s].attrs.get("served_as", s))
                                                for s in self.symbols})
        if not self.spec.replicas:
            refuse_identical_series(frames)
        self.labels = {s: raw[s].attrs.get("label", s) for s in self.symbols}
        self.proxies = {s: raw[s].attrs.get("proxy_note", "") for s in self.symbols}
        self.bar_gate = self._make_gate({s: raw[s].attrs for s in self.symbols})
        end_note = None
        if end is None:
            end = min(f.index[-1] for f in frames.values())
            end_note = replay_end_note(frames)
        if start is None:  # the last replay_years, after the deciding models' training
            start, self.start_note = default_start(
                end, end - pd.Timedelta(days=round(365.25 * self.settings.session.replay_years)),
                self.sample_windows.deciding_windows())
        if start > end and not self.end_arg:  # the end came from the data, not the user
            raise ConfigError(f"--start {self.start_arg} is after the data's last common bar "
                              f"({end.isoformat()}): "
                              + (end_note or "pass a --start before it"))
        if start > end:
            raise ConfigError(f"--start {start.date()} is after --end {end.date()}")
        firsts = [f.index[f.index >= start] for f in frames.values()]
        first_bar = min((i[0] for i in firsts if len(i)), default=start)
        cut = self._replay_cut(first_bar, end)
        out = {}
        for s, f in frames.items():
            trade = f[(f.index >= start) & (f.index <= end)]
            if cut is not None:
                trade = trade[trade.index < cut]
                if trade.empty:  # --duration shorter than the first bar: no step
                    out[s] = f[f.index < start].iloc[-warm:]
                    continue
            if trade.empty:
                raise DataError(
                    f"{s}: no bars between {start.date()} and {end.date()}; its data spans "
                    f"{f.index[0].date()} .. {f.index[-1].date()}; pass --start/--end inside it"
                )
            out[s] = pd.concat([f[f.index < start].iloc[-warm:], trade])
        if cut is not None and cut <= end:
            end = cut - pd.Timedelta(1, "ns")  # recorded: a resume replays the same window
        self.bar_gate.check_data(out, start, end)
        self.end_note = end_note
        if end_note is not None:  # said on stderr, in the summary and in the ledger
            log_event(log, "replay_ends_early", level=logging.WARNING, note=end_note)
            first = min(frames, key=lambda s: frames[s].index[-1])
            self.bar_gate.data_events.append((None, first, "data",
                                      "REPLAY_ENDS_EARLY", f"REPLAY_ENDS_EARLY: {end_note}", None))
        return out, start, end


    def _replay_cut(self, start: Any, end: Any) -> Any:
        """``--duration`` in a replay is market time: the replay decides the bars stamped in
        ``[first, first + duration)``, ``first`` the window's first bar (a live session of
        that duration sees as much).
        None without it; on a resume the recorded window stands (a replay's window is fixed
        when it starts), so --duration is refused there."""
        import pandas as pd

        from .spec import parse_duration

        self.replay_cut = None
        self.duration_note = None
        seconds = parse_duration(self.spec.duration)
        if seconds is None:
            return None
        if self.spec.resume:
            raise ConfigError("--duration with --resume of a replay: the replay's window was "
                              "fixed when it started (--duration there is market time); drop "
                              "--duration")
        cut = start + pd.Timedelta(seconds=seconds)
        if cut > end:
            return None
        self.replay_cut = cut
        span = pd.Timedelta(seconds=seconds)
        self.duration_note = (
            f"--duration {span} in a replay is market time: bars stamped from "
            f"{start.isoformat()} to before {cut.isoformat()} were replayed (a live session "
            "counts it in wall-clock time; pass --end to replay a window of history)")
        log_event(log, "replay_duration_is_market_time", note=self.duration_note)
        return cut

    def prepare(self) -> None:
        spec = self.spec
        check_max_steps(spec.max_steps)
        check_folder_options(spec)
        self._configs()
        # an unusable kill path is a config error before anything is written
        (self.wiring.kill_switch or KillSwitch(self.settings.session.kill_file)).ensure_usable()
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
            self.run_values = RunValues(  # as recorded: the spec keeps what was asked
                source=(spec.source if spec.source is not None
                        and not isinstance(spec.source, str) else run["source"]),
                mode=run["mode"], start=run["start"], end=run["end"],
                interval=run["interval"], dry_run=run["dry_run"], model=run["model"],
                initial_cash=float(m["initial_cash"]))
            if self.mode == "live":
                self.ledger.conn.execute("PRAGMA synchronous=FULL")
        else:
            self.symbols = parse_symbols(list(spec.symbols))
            if spec.run_id is not None:
                safe_id(spec.run_id, "--run-id")  # a plain name: the run folder stays in runs/
            self.run_id = spec.run_id or new_run_id("paper")
            source = spec.source or self.settings.session.source
            self.run_values = RunValues(
                source=source,
                mode=spec.mode or ("live" if is_network_source(source) and not spec.start
                                   and not spec.end else "replay"),
                start=spec.start, end=spec.end,
                interval=spec.interval or self.settings.session.interval,
                dry_run=spec.dry_run, model=spec.model,
                initial_cash=self.settings.session.initial_cash)
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
        self.assets = self.assets.for_interval(self.interval)  # its interval's models
        self._classify()
        self.n = len(self.symbols)
        # where orders go: None for the internal paper broker; an external venue is opened
        # (keys, account, a new run's account flat) before anything is written
        self.venue_link = open_venue(self)
        if self.venue_link is not None and self.state is None:  # the venue's cash
            self.run_values = dataclasses.replace(
                self.run_values, initial_cash=self.venue_link.last.account.cash)
        # the routing flag given for this run (None: the environment's, at each decision)
        # and the deciding models' training windows (research_lib.models.windows)
        self.run_flag = None if spec.flag is None else routing_mode(spec.flag)
        self.start_note: str | None = None
        self.sample_windows = session_windows(self.assets, self.classes, self.model_name,
                                              self.run_flag, self.wiring.router, models_dir())

        # data
        if self.mode == "replay":
            frames, start, end = self._load_frames(self.source_arg)
            self.feed: Any = ReplayFeed(frames, self.symbols, start)
            self.run_values = dataclasses.replace(self.run_values, start=start.isoformat(),
                                           end=end.isoformat())
        else:
            self.labels = {s: s for s in self.symbols}
            self.proxies = {s: "" for s in self.symbols}
            self.bar_gate = self._make_gate({})
            self.feed = None  # built in run(): it needs the stop predicate

        # model
        self.model_assets = model_assets_for(self.assets, self.model_name)
        self.model = make_model(self.model_name, self.symbols, self.assets, self.classes,
                                router=self.wiring.router, flag=self.run_flag,
                                interval=self.interval)
        self.model_label = (self.model_name or getattr(self.model, "session_label", None)
                            or "router")
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
                "spec": {"source": source_label(self.source_arg), "mode": self.mode,
                         "start": self.start_arg, "end": self.end_arg,
                         "interval": self.interval, "dry_run": self.dry_run,
                         "model": self.model_name},
                "config": self._snapshot(),
                "inputs": run_inputs(self),  # what a resume checks (research_lib.resume)
                "config_dir": str(self.config_dir),  # where, not what: not compared
                "engine": self.engine_name,  # how, not what: not compared
                # the deciding models' training windows (research_lib.models.windows)
                "sample_windows": self.sample_windows.to_meta(),
                **meta_entry(check_level(self.spec.decision_log)),  # only when not "full"
            }
            if self.venue_link is not None:  # broker, url, account id, venue settings
                meta["venue"] = self.venue_link.meta
            self.ledger = Ledger.create(path, meta, synchronous="FULL" if self.mode == "live"
                                        else "NORMAL")
            self.state = self.ledger.load_state()
        st = self.state
        self._bars_seen = start_digest(self)  # rolling sha256 of the bars consumed

        # account
        link = self.venue_link
        broker = (PaperBroker(self.initial_cash, self.settings.session, self.dry_run,
                              self.limits.price_band_pct) if link is None else
                  VenueBroker(self.initial_cash, self.settings.session, self.dry_run,
                              self.limits.price_band_pct, venue=link.venue)
                  ).restore(st.fills, st.open_orders, st.known_ids)
        # a live resume re-feeds nothing: a held symbol not fetched yet keeps the mark the
        # ledger recorded (never NaN: no price is not a NaN equity), until its next bar
        resume_marks: dict[int, float] = {}
        if self.mode == "live" and st.last_step >= 0:
            resume_marks = {self._index[sym]: float(m) for sym, q, m in bulk_rows(
                self.ledger.conn, "positions", ("symbol", "qty", "mark"), step=st.last_step)
                if q != 0 and m is not None and sym in self._index}
        self.acct = Account(
            broker=broker,
            engine=RiskEngine(self.limits, st.state, st.day, st.day_start_equity, st.peak,
                              dict(st.halted_symbols)),
            last_close=np.full(self.n, np.nan), prev_close=np.full(self.n, np.nan),
            last_equity=st.equity if st.equity is not None else self.initial_cash,
            resume_marks=resume_marks, venue=link)
        self.acct.decision_filter = open_filter(self.spec.decision_log, self.ledger.meta(),
                                                self.desk, self.ledger.conn, st.last_step >= 0)
        self.next_step = st.last_step + 1
        self.desk.dry_run = self.dry_run
        self.ks = self.wiring.kill_switch or KillSwitch(self.settings.session.kill_file)
        self.latency = LatencyRecorder()
        if self.engine.state is TradingState.HALTED:
            log_event(log, "account_halted_at_start", level=30, run_id=self.run_id,
                      reason=st.halt_reason,
                      note=f"only closing orders pass until `research-lib reset-halt {self.run_id}`")
        at_start = self.ks.check()
        # recorded in the first step this session commits (scope "kill_switch")
        self.ks_at_start = at_start.reason if at_start.halted else None
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

