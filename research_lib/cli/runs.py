"""``research-lib runs list | show RUN | export RUN``."""

from __future__ import annotations

import argparse
import json


def _span(first: str | None, last: str | None) -> str:
    if not first:
        return "-"
    return f"{first[:10]}..{(last or first)[:10]}"


def cli_runs_list(args: argparse.Namespace) -> int:
    from ..runs import list_runs, runs_root

    runs = list_runs(args.run_dir)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], default=str))
        return 0
    if not runs:
        print(f"no runs under {runs_root(args.run_dir)}; start one with: research-lib paper "
              "--symbols SPY,QQQ")
        return 0
    rows = [("RUN", "MODE", "ENGINE", "SYMBOLS", "SPAN", "STEPS", "STATE")]
    for r in runs:
        syms = ",".join(r.symbols)
        rows.append((r.run_id, (r.mode or "?") + (" dry" if r.dry_run else ""),
                     r.engine or "?", syms if len(syms) <= 30 else syms[:27] + "...",
                     _span(r.first_step_ts, r.last_step_ts), str(r.steps), r.state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i != 5 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    print(f"{len(runs)} run(s) under {runs_root(args.run_dir)}")
    return 0


def cli_runs_show(args: argparse.Namespace) -> int:
    from ..paper.summary import format_summary
    from ..runs import show_run

    doc = show_run(args.run, args.run_dir)
    if args.json:
        print(json.dumps(doc, default=str))
        return 0
    s = doc["summary"]
    spec = doc["spec"]
    for line in format_summary(s).splitlines():
        if line.startswith("steps "):  # this-session count and stop reason: not recorded
            line = f"steps      {s['steps']} ({s['first_step_ts']} .. {s['last_step_ts']})"
        print(line)
    print(f"started    {doc['info']['created_at']}; source {spec.get('source')}, interval "
          f"{spec.get('interval')}, window {spec.get('start')} .. {spec.get('end')}")
    print(f"config     {doc['config_dir']}")
    print("tables     " + ", ".join(f"{k}={v}" for k, v in doc["tables"].items()))
    return 0


def cli_runs_export(args: argparse.Namespace) -> int:
    from ..runs import export_run

    files = export_run(args.run, args.format, args.out, args.run_dir)
    for f in files:
        print(f)
    print(f"exported {len(files)} file(s) to {files[0].parent}")
    return 0
