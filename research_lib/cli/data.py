"""``research-lib data check`` and ``research-lib features``."""

from __future__ import annotations

import argparse
import json


def cli_check(args: argparse.Namespace) -> int:
    from ..config import parse_symbols
    from ..data.sanity import ERROR, WARNING, has_errors
    from ..data.sanity_report import check_symbols, format_table

    frames, findings = check_symbols(
        parse_symbols(args.symbols), source=args.source, start=args.start, end=args.end,
        interval=args.interval, jump_threshold=args.jump_threshold,
        stale_after=args.stale_after,
    )
    if args.json:
        for f in findings:
            print(json.dumps(f.as_dict()))
    else:
        for sym, df in frames.items():
            print(f"{df.attrs.get('label', sym)}: {len(df)} bars "
                  f"{df.index.min().date()} .. {df.index.max().date()} from {df.attrs.get('source')}")
        print(format_table(findings))
        n_err = sum(f.severity == ERROR for f in findings)
        n_warn = sum(f.severity == WARNING for f in findings)
        print(f"{n_err} error(s), {n_warn} warning(s)")
    return 1 if has_errors(findings) else 0


def cli_features(args: argparse.Namespace) -> int:
    from ..config import parse_symbols
    from ..features import write_features

    syms = parse_symbols(args.symbols)
    path, labels = write_features(syms, args.source, args.start, args.end, args.out, args.interval)
    print(f"wrote features for {', '.join(labels)} to {path}")
    return 0
