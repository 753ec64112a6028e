"""``research-lib paper`` (a paper-trading session) and ``research-lib reset-halt``."""

from __future__ import annotations

import argparse
import json
import signal
from dataclasses import replace

from ..errors import ConfigError


def cli_paper(args: argparse.Namespace) -> int:
    from ..config import parse_symbols
    from ..paper.session import run_session
    from ..paper.spec import SessionSpec, parse_duration
    from ..paper.summary import format_summary
    from .progress import progress_bar, wanted

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
        broker=getattr(args, "broker", None),
        decision_log=getattr(args, "decision_log", None),
        install_signal_handlers=True,
        restore_signal_handlers=False,
    )
    if not spec.symbols and not spec.resume:
        raise ConfigError("--symbols is required (or --resume RUN)")
    with progress_bar("replay" if args.mode != "live" else "live", "step",
                      wanted(args.json)) as progress:
        res = run_session(replace(spec, progress=progress))
    # the session is committed and closed: a late Ctrl+C must not turn exit 0 into a kill
    # (Python resets its own handlers to the default while it shuts down)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if args.json:
        print(json.dumps(res.summary, sort_keys=False, default=str))
    else:
        print(format_summary(res.summary))
    return res.exit_code


def cli_reset_halt(args: argparse.Namespace) -> int:
    from ..halt import reset_halt

    done = reset_halt(args.run, args.reason, run_dir=args.run_dir)
    if not done.reset:
        print(f"{done.run_id}: state is {done.state}; nothing to reset")
        return 0
    print(f"{done.run_id}: HALTED -> ACTIVE ({done.reason}); peak reset to "
          f"{done.equity:.2f}. Resume with: research-lib paper --resume {done.run_id}")
    return 0
