"""``research-lib report NAME``: run a notebook with papermill and write HTML."""

from __future__ import annotations

import argparse
import ast
from typing import Any

from ..errors import ConfigError


def parameter_value(value: str) -> Any:
    """``-p`` values arrive as strings: read Python literals (numbers, None, True), keep the
    rest as text (``SPY,QQQ`` stays a string)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def cli_report(args: argparse.Namespace) -> int:
    from ..notebooks import run_report
    from .progress import papermill_progress, wanted

    params = {k: parameter_value(v) for k, v in args.parameter}
    if args.run is not None:
        from ..tearsheet import resolve_run

        if "run" in params:
            raise ConfigError("give the run once: --run RUN or -p run RUN, not both")
        params["run"] = str(resolve_run(args.run, args.run_dir))
    elif args.run_dir is not None:
        raise ConfigError(f"--run-dir {args.run_dir} is for --run; add --run RUN_ID")
    path = run_report(args.name, params, out=args.out, keep_notebook=args.keep_notebook,
                      progress=papermill_progress(wanted()))
    print(f"report written: {path}")
    return 0
