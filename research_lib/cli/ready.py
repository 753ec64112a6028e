"""``research-lib ready``: run the readiness checklist and print its verdicts."""

from __future__ import annotations

import argparse
import json
import sys


def cli_ready(args: argparse.Namespace) -> int:
    from ..ready import run_ready
    from ..ready.render import text, write_html

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    report = run_ready(args.symbols, offline=args.offline, only=only)
    if args.json:
        for row in report.to_dicts():
            print(json.dumps(row, sort_keys=True))
    else:
        print(text(report))
    if args.html:  # beside JSON lines on stdout, the note goes to stderr
        print(f"wrote {write_html(report, args.html)}", file=sys.stderr if args.json else sys.stdout)
    return report.exit_code
