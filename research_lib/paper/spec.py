"""What to run: the session spec, its validation, and the duration/interval parsers."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ConfigError,
)
from ..flags import KillSwitch

CRYPTO_CALENDAR = "24/7"

# ------------------------------------------------------------------------ parsing
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hr|hrs|hour|hours|d|day|days)?\s*$")
_DUR_UNIT = {"ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600,
             "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
             "days": 86400, None: 1}


STEP_DELAY_ENV = "RESEARCH_LIB_STEP_DELAY_MS"


def _step_delay_seconds() -> float:
    """``RESEARCH_LIB_STEP_DELAY_MS`` (fault-injection drills and tests only): every step
    sleeps half of it after deciding and the other half inside its ledger transaction
    (rows written, not committed), so a SIGKILL or SIGINT can be aimed at a step. Unset,
    empty or 0: no delay."""
    raw = os.environ.get(STEP_DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        ms = float(raw)
    except ValueError:
        raise ConfigError(f"{STEP_DELAY_ENV} must be a number of milliseconds, got {raw!r}") from None
    if not math.isfinite(ms) or ms < 0:
        raise ConfigError(f"{STEP_DELAY_ENV} must be >= 0 milliseconds, got {raw!r}")
    return ms / 1e3


def parse_duration(text: str | float | None) -> float | None:
    """``"5min"`` -> 300.0, ``"30s"``, ``"2h"``, ``"1d"``; ``None`` -> no cap."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return float(text)
    m = _DUR.match(str(text).lower())
    if not m:
        raise ConfigError(f"--duration {text!r} is not a duration; use e.g. 30s, 5min, 2h")
    return float(m.group(1)) * _DUR_UNIT[m.group(2)]


_INTERVAL = re.compile(r"^(\d+)(m|h|d|wk|mo)$")


def interval_seconds(interval: str) -> float:
    """``1d`` -> 86400, ``1h`` -> 3600, ``5m`` -> 300."""
    m = _INTERVAL.match(interval.strip().lower())
    if not m:
        raise ConfigError(f"--interval {interval!r} is not a bar interval; use e.g. 1m, 5m, 1h, 1d")
    n, unit = int(m.group(1)), m.group(2)
    if n < 1:
        raise ConfigError(f"--interval {interval!r} is a bar of no length; use e.g. 1m, 5m, 1h, 1d")
    return n * {"m": 60, "h": 3600, "d": 86400, "wk": 7 * 86400, "mo": 30 * 86400}[unit]




# ------------------------------------------------------------------- the session
@dataclass(frozen=True)
class RunSpec:
    """What to run (frozen). ``None`` means: from config, or a sensible default. On a
    resume the run keeps what its ledger recorded: the session reads those values from the
    ledger's meta (``Session.mode``, ``.interval``...), never writes them back here."""

    symbols: Sequence[str] = ()
    source: Any = None  # "sample" | "yfinance" | "cache" | "csv:PATH" | a Source
    start: str | None = None
    end: str | None = None
    interval: str | None = None
    mode: str | None = None  # "replay" | "live"
    duration: float | str | None = None
    dry_run: bool = False
    model: str | None = None  # registry name | baseline:... | None (router)
    run_dir: str | Path | None = None
    run_id: str | None = None
    resume: str | None = None
    config_dir: str | Path | None = None
    max_steps: int | None = None  # stop after this many committed steps (tests, drills)
    # replay only: quiet steps computed in batches, every other step by the step code;
    # the same ledger rows (research_lib.paper.fast)
    fast: bool = False
    # symbols with identical bars are deliberate copies, each its own instrument (benchmarks
    # replaying replicated real series); otherwise two names of one series are refused
    replicas: bool = False
    # where orders go: "paper" (the internal paper broker) | "alpaca" (research_lib.venues);
    # None: session.yaml's venue.broker; a resume keeps the run's recorded broker
    broker: str | None = None
    # the routing flag for this run (0, 1, "shadow"), in place of FLAG_ASSET_SPECIFIC_MODELS
    # (None: the environment variable, read at every decision)
    flag: str | int | None = None
    # risk limits over config/risk.yaml's, e.g. {"max_position_pct": 0.1}; validated as
    # the file is; a hot reload of the file keeps them (research_lib.config_overrides)
    risk: Mapping[str, Any] | None = None
    # session.yaml sections over the file's, e.g. {"signal": {"target_weight": 0.05}} or
    # {"session": {"slippage_bps": 5}}; validated as the file is, kept over hot reloads
    # (research_lib.config_overrides.settings_loader)
    settings: Mapping[str, Any] | None = None
    # how much of the decision log to keep: "full" (None: every decision, the default) or
    # "changes" (HOLD/NO_SIGNAL/HALTED only when they change; research_lib.paper.decision_log)
    decision_log: str | None = None


@dataclass(frozen=True)
class Wiring:
    """The collaborators a session is built with (frozen): none changes what is run."""

    kill_switch: KillSwitch | None = None  # None: the config's kill file and the env flag
    router: Any = None  # a Router stand-in, or a model speaking the protocol (tests)
    install_signal_handlers: bool = False
    restore_signal_handlers: bool = True  # the CLI keeps them: a late Ctrl+C exits 0 too
    poll_seconds: float | None = None  # live: a fixed poll period; None: follow the bar closes
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    log_file: bool = True  # <run>/events.jsonl
    # called after each commit with (steps in the ledger, steps the run will have or None
    # when unknown: live); the caller draws any progress bar (the CLI: tqdm)
    progress: Callable[[int, int | None], None] | None = None


RUN_FIELDS = tuple(f.name for f in fields(RunSpec))
WIRING_FIELDS = tuple(f.name for f in fields(Wiring))


@dataclass(frozen=True)
class SessionSpec(RunSpec, Wiring):
    """The keyword form ``run_session`` and the CLI take: a :class:`RunSpec` and a
    :class:`Wiring` in one (every field of both); :meth:`split` separates them."""

    def split(self) -> tuple[RunSpec, Wiring]:
        return (RunSpec(**{k: getattr(self, k) for k in RUN_FIELDS}),
                Wiring(**{k: getattr(self, k) for k in WIRING_FIELDS}))


@dataclass(frozen=True)
class RunValues:
    """What this run runs with: on a new run the :class:`RunSpec` resolved against the
    config (and, for a replay, the window the data gave); on a resume what the ledger
    recorded (its meta ``spec``), never written back into the spec. A Source object
    cannot be stored: a resume takes the one the caller passes again."""

    source: Any
    mode: str
    start: str | None
    end: str | None
    interval: str
    dry_run: bool
    model: str | None
    initial_cash: float


@dataclass
class SessionResult:
    """What a session returns: its run id, ledger, summary (a dict; ``summary["sample"]``
    says IN-SAMPLE or OUT-OF-SAMPLE) and exit code, and the ledger's tables as DataFrames
    (``equity``, ``trades``, ``positions``, ``decisions``; :meth:`tables` has them all),
    read once through :func:`research_lib.ledger_read.read_run`."""

    run_id: str
    ledger_path: Path
    summary: dict[str, Any]
    exit_code: int = 0

    @cached_property
    def tables(self) -> dict[str, Any]:
        """Every table of the run (:func:`research_lib.ledger_read.read_run`)."""
        from ..ledger_read import read_run

        return read_run(self.ledger_path)

    equity = property(lambda self: self.tables["equity"],
                      doc="Per step: cash, equity, gross, net, drawdown, state, pos_<SYMBOL>.")
    trades = property(lambda self: self.tables["fills"],
                      doc="Every fill: step, ts, symbol, signed qty, price, commission.")
    positions = property(lambda self: self.tables["positions"],
                         doc="Per step and symbol: qty, average price, mark, value, P&L.")
    decisions = property(lambda self: self.tables["decisions"],
                         doc="Per step and symbol: model, probability, target, verdict, reason.")
    sample = property(lambda self: self.summary.get("sample"),
                      doc="IN-SAMPLE / OUT-OF-SAMPLE stamp (research_lib.models.windows).")


def check_max_steps(value: Any) -> None:
    """``--max-steps`` is a whole number >= 1 (None: no cap); 0 or -1 would still run a
    step, so they are refused."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"--max-steps must be a whole number >= 1, got {value!r}; "
                          "omit it to run to the end of the data")


def check_folder_options(spec: Any) -> None:
    """``--config-dir ""`` / ``--run-dir ""`` (an unset ``$VAR``) are refused: they fell
    back to the default folders silently (another config's limits)."""
    for flag, value in (("--config-dir", spec.config_dir), ("--run-dir", spec.run_dir)):
        if value is not None and not str(value).strip():
            raise ConfigError(f"{flag} is empty; pass a folder, or leave the option out to "
                              "use the default")
