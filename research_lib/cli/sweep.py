"""``research-lib sweep``: a parameter sweep over replays (:func:`research_lib.sweep`)."""

from __future__ import annotations

import argparse
import json
import sys

from .backends import add_backend_args


def add_parser(sub: argparse._SubParsersAction, common: object) -> None:
    """The ``sweep`` subcommand's options (``common`` adds --symbols/--source/--start...)."""
    sw = sub.add_parser("sweep", help="run a replay per point of a parameter grid "
                                      "(joblib: local processes or Dask)")
    common(sw, symbols_required=False)  # type: ignore[operator]
    sw.add_argument("--notebook", default=None, metavar="NAME",
                    help="sweep a report notebook (notebooks/NAME.ipynb) instead of a "
                         "replay: each point runs it with papermill, the --grid keys are "
                         "its parameters; OUT gets one HTML page per point and index.html")
    sw.add_argument("--model", default=None,
                    help="a registry name or baseline:sma_cross (default: the router)")
    sw.add_argument("--flag", default=None, choices=["0", "1", "shadow"],
                    help="the routing flag for every point (in place of "
                         "FLAG_ASSET_SPECIFIC_MODELS)")
    sw.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                    help="a swept key and its values, repeatable; keys: risk.<limit>, "
                         "signal.<key>, session.<key>, model, flag, start, end, symbols "
                         "(lists separated by ';'); the points are the cartesian product")
    add_backend_args(sw, "serial: one point after another, in this process")
    sw.add_argument("--jobs", type=int, default=1, help="points run at once (default 1)")
    sw.add_argument("--retries", type=int, default=1,
                    help="times a point is run again after its worker process died under it "
                         "(killed, out of memory) before it is recorded failed (default 1)")
    sw.add_argument("--out", required=True, metavar="DIR",
                    help="the sweep's folder: runs/, results.parquet, sweep.html; a re-run "
                         "into it skips the points already finished ok")
    sw.add_argument("--config-dir", default=None, help="folder with risk/session/assets yaml")
    sw.add_argument("--step-by-step", action="store_true",
                    help="replay every step with the step code (default: --fast replays)")
    sw.add_argument("--no-report", action="store_true", help="do not write sweep.html")
    sw.add_argument("--json", action="store_true",
                    help="print one JSON object per point (no progress bar)")


def cli_sweep(args: argparse.Namespace) -> int:
    from ..sweeps import parse_grid_args
    from ..sweeps.run import sweep
    from .progress import progress_bar, wanted

    grid = parse_grid_args(args.grid)
    if args.notebook:
        return _notebook_sweep(args, grid)
    if not args.symbols:
        print("research-lib sweep: --symbols is required (or --notebook NAME)",
              file=sys.stderr)
        return 2
    with progress_bar("sweep", "point", wanted(args.json)) as progress:
        flag = int(args.flag) if args.flag in ("0", "1") else args.flag
        res = sweep(args.symbols, grid, out=args.out, model=args.model, flag=flag,
                    source=args.source, start=args.start, end=args.end,
                    interval=args.interval, fast=not args.step_by_step,
                    config_dir=args.config_dir, jobs=args.jobs, backend=args.backend,
                    scheduler=args.scheduler, report=not args.no_report,
                    retries=args.retries, progress=progress)
    if args.json:
        for row in res.table.to_dict("records"):
            print(json.dumps(row, default=str))
    else:
        from ..sweeps.report import ranked

        cols = [*grid, "total_return_pct", "sharpe", "max_drawdown_pct", "fills", "status"]
        print(ranked(res.table)[cols].to_string(index=False))
        print(f"\n{res.sweep_id}: {len(res.table)} points ({res.ran} run, {res.skipped} "
              f"already done, {res.failed} failed)\n  table:  {res.results_path}")
        if res.report_path:
            print(f"  report: {res.report_path}")
    return 1 if res.failed else 0


def _notebook_sweep(args: argparse.Namespace, grid: dict) -> int:
    from ..sweeps.notebook import notebook_sweep
    from .progress import progress_bar, wanted

    given = [f for f, v in (("--symbols", args.symbols), ("--model", args.model),
                            ("--flag", args.flag), ("--start", args.start),
                            ("--end", args.end), ("--config-dir", args.config_dir),
                            ("--source", None if args.source == "sample" else args.source))
             if v is not None]
    if given:
        print(f"research-lib sweep: {given[0]} cannot go with --notebook; give the "
              f"notebook's parameters as --grid KEY=V1,V2 (e.g. --grid symbols='SPY;QQQ')",
              file=sys.stderr)
        return 2
    with progress_bar("sweep", "page", wanted(args.json)) as progress:
        res = notebook_sweep(args.notebook, grid, out=args.out, jobs=args.jobs,
                             backend=args.backend, scheduler=args.scheduler,
                             retries=args.retries, progress=progress)
    if args.json:
        for row in res.table.to_dict("records"):
            print(json.dumps(row, default=str))
    else:
        print(res.table[[*grid, "status", "page", "error"]].to_string(index=False))
        print(f"\n{res.sweep_id}: {len(res.table)} pages ({res.ran} run, {res.skipped} "
              f"already done, {res.failed} failed)\n  index:  {res.index_path}")
    return 1 if res.failed else 0
