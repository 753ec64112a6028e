"""The paper-trading session: moved to :mod:`research_lib.paper` (spec, feeds, signals,
summary, session). This module keeps the old import path and the CLI handlers."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from .config import (
    load_session,
    parse_symbols,
    project_root,
)
from .errors import (
    ConfigError,
)
from .ledger import (
    Ledger,
    resolve_ledger,
)
from .paper.feeds import (  # noqa: F401 (the old import path)
    LIVE_MAX_FAILED_POLLS,
    REPLAY_ONLY_SOURCES,
    LiveFeed,
    ReplayFeed,
    StepBars,
    replay_end_note,
)
from .paper.session import Session, run_session  # noqa: F401
from .paper.signals import (  # noqa: F401
    RouterModel,
    SignalModel,
    checked_prediction,
    force_model,
    make_model,
    signal_target,
)
from .paper.spec import (  # noqa: F401
    CRYPTO_CALENDAR,
    STEP_DELAY_ENV,
    SessionResult,
    SessionSpec,
    check_max_steps,
    interval_seconds,
    parse_duration,
)
from .risk import (
    TradingState,
)
from .telemetry import (
    get_logger,
    log_event,
)

log = get_logger("session")


# ---------------------------------------------------------------------- CLI
# format_summary lives in research_lib.paper.summary; imported here for the CLI handlers
from .paper.summary import format_summary  # noqa: E402


def cli_paper(args: Any) -> int:
    # a new run's defaults; with --resume an option given is refused (research_lib.resume)
    fresh = not args.resume
    spec = SessionSpec(
        symbols=parse_symbols(args.symbols) if args.symbols else (),
        source=args.source or ("sample" if fresh else None),
        start=args.start,
        end=args.end,
        interval=args.interval or ("1d" if fresh else None),
        mode=args.mode,
        duration=parse_duration(args.duration),
        dry_run=args.dry_run,
        model=args.model,
        run_dir=args.run_dir,
        run_id=getattr(args, "run_id", None),
        resume=args.resume,
        config_dir=args.config_dir,
        max_steps=getattr(args, "max_steps", None),
        fast=getattr(args, "fast", False),
        install_signal_handlers=True,
        restore_signal_handlers=False,
    )
    if not spec.symbols and not spec.resume:
        raise ConfigError("--symbols is required (or --resume RUN)")
    res = run_session(spec)
    # the session is committed and closed: a late Ctrl+C must not turn exit 0 into a kill
    # (Python resets its own handlers to the default while it shuts down)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if args.json:
        print(json.dumps(res.summary, sort_keys=False, default=str))
    else:
        print(format_summary(res.summary))
    return res.exit_code


def cli_reset_halt(args: Any) -> int:
    run_dir = args.run_dir
    if run_dir is None:
        try:
            run_dir = load_session().session.run_dir
        except ConfigError:
            run_dir = "runs"
    rd = Path(run_dir)
    rd = rd if rd.is_absolute() else project_root() / rd
    path = resolve_ledger(args.run, rd)
    with Ledger.open(path) as led:
        st = led.load_state()
        if st.state is not TradingState.HALTED:
            print(f"{st.meta.get('run_id')}: state is {st.state.value}; nothing to reset")
            return 0
        equity = st.equity if st.equity is not None else float(st.meta["initial_cash"])
        led.append_state_change("account", TradingState.HALTED.value, TradingState.ACTIVE.value,
                                f"RESET_HALT: {args.reason}; peak reset to equity={equity:.2f}",
                                equity, equity)
        led.clear_halt_marker()
    log_event(log, "halt_reset", run=str(args.run), reason=args.reason, equity=equity)
    print(f"{st.meta.get('run_id')}: HALTED -> ACTIVE ({args.reason}); peak reset to "
          f"{equity:.2f}. Resume with: research-lib paper --resume {st.meta.get('run_id')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["paper", *sys.argv[1:]]))
