"""``research-lib``: one console entry point with subcommands.

The CLI is one layer: this package is the only place that parses arguments or prints. Each
handler (``cli/data.py``, ``cli/models.py``, ``cli/report.py``, ``cli/paper.py``,
``cli/ready.py``) takes the
parsed arguments, calls one library function and prints what it returns. Imports are lazy
per subcommand so ``research-lib paper`` never pays for scikit-learn, skl2onnx, matplotlib
or papermill.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError, ResearchLibError
from ..extras import missing_extra
from ..project import HOME_ENV

# subcommand -> "module:function"; the function takes the parsed args and returns an exit code
HANDLERS: dict[str, str] = {
    "data check": "research_lib.cli.data:cli_check",
    "features": "research_lib.cli.data:cli_features",
    "report": "research_lib.cli.report:cli_report",
    "train": "research_lib.cli.models:cli_train",
    "parity": "research_lib.cli.models:cli_parity",
    "routing": "research_lib.cli.models:cli_routing",
    "convert-legacy": "research_lib.cli.models:cli_convert_legacy",
    "paper": "research_lib.cli.paper:cli_paper",
    "reset-halt": "research_lib.cli.paper:cli_reset_halt",
    "init": "research_lib.cli.home:cli_init",
    "runs list": "research_lib.cli.runs:cli_runs_list",
    "runs show": "research_lib.cli.runs:cli_runs_show",
    "runs export": "research_lib.cli.runs:cli_runs_export",
    "ready": "research_lib.cli.ready:cli_ready",
    "sweep": "research_lib.cli.sweep:cli_sweep",
}

PATHS_HELP = """\
where things are (one rule):
  project home   --home DIR, else $RESEARCH_LIB_HOME, else the current folder or its
                 nearest parent holding config/assets.yaml; with none, the config,
                 models and notebooks shipped in the package are used (read only)
  config/ models/ notebooks/
                 read from the home (or the packaged defaults)
  relative paths every relative path (--out, --run-dir, --config-dir, csv:PATH, a model
                 or run path, session.run_dir and session.kill_file in the config) is
                 taken from the home, or from the current folder when there is no home;
                 runs/ and reports/ are written there too
  init DIR       makes a home you can edit (DIR taken from the current folder)"""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_window(args: argparse.Namespace) -> None:
    """``--start``/``--end`` of any subcommand: each a date, and start not after end, before
    anything is fetched or written (a ConfigError naming the option and the value)."""
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if not start and not end:
        return
    from ..data.source_base import parse_when

    s, e = parse_when(start, "--start"), parse_when(end, "--end")
    if s is not None and e is not None and s > e:
        raise ConfigError(f"--start {start} is after --end {end}; pass a --start on or before "
                          "--end")


def _common_data(p: argparse.ArgumentParser, symbols_required: bool = True) -> None:
    p.add_argument("--symbols", required=symbols_required,
                   help="comma-separated tickers, e.g. SPY,QQQ,BTC-USD")
    p.add_argument("--source", default="sample",
                   help="sample (default, offline; daily, and a few intraday series) | "
                        "yfinance | ccxt:EXCHANGE (crypto, keyless, e.g. ccxt:binance; the "
                        "ccxt extra) | alpaca (keys from APCA_API_KEY_ID and "
                        "APCA_API_SECRET_KEY; the alpaca extra) | cache | csv:PATH")
    p.add_argument("--start", default=None, help="first date (inclusive), e.g. 2016-01-01")
    p.add_argument("--end", default=None, help="last date (inclusive)")
    p.add_argument("--interval", default="1d",
                   help="bar interval: 1m, 5m, 15m, 1h or 1d (default); the sample serves "
                        "^GSPC/SPY 1m, EURUSD=X 1h, ETH-BTC 5m, XRP-ETH 1m intraday")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="research-lib", description=__doc__.splitlines()[0],
                                     epilog=PATHS_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"research-lib {__version__}")
    parser.add_argument("--home", default=None, metavar="DIR",
                        help="project home (config/, models/, notebooks/, runs/, reports/); "
                             "default $RESEARCH_LIB_HOME, else the current folder or a parent "
                             "with config/assets.yaml, else the packaged defaults")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                        help="JSON log level on stderr: " + ", ".join(LOG_LEVELS))
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data commands")
    dsub = data.add_subparsers(dest="data_command", required=True)
    check = dsub.add_parser("check", help="run the data-sanity suite; exit 1 on any error")
    _common_data(check)
    check.add_argument("--jump-threshold", type=float, default=None,
                       help="flag |1-bar return| above this (default per asset class)")
    check.add_argument("--stale-after", default=None,
                       help="flag a last bar older than this (e.g. 5D); default: not checked "
                            "for historical ranges")
    check.add_argument("--json", action="store_true", help="print findings as JSON lines")

    feat = sub.add_parser("features", help="write the feature matrix (parquet or csv)")
    _common_data(feat)
    feat.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")

    rep = sub.add_parser("report", help="run a notebook with papermill and write HTML")
    rep.add_argument("name", help="notebook name in notebooks/, e.g. data_sanity")
    rep.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="notebook parameter (repeatable)")
    rep.add_argument("--out", default=None, help="HTML path (default reports/NAME.html)")
    rep.add_argument("--keep-notebook", action="store_true",
                     help="also keep the executed .ipynb beside the HTML")
    rep.add_argument("--run", default=None, metavar="RUN",
                     help="report on an existing run (a run id under the run dir or "
                          "runs/reports, a run folder or its ledger): replay, fast, resumed "
                          "or live; nothing is replayed (paper_session)")
    rep.add_argument("--run-dir", default=None, help="folder the --run id is in "
                     "(default session.run_dir, then runs/reports)")

    tr = sub.add_parser("train", help="train a model, export ONNX, write its card")
    tr.add_argument("--asset-class", default=None,
                    choices=["universal", "equities", "crypto", "options"],
                    help="options trains on SYNTHETIC contracts: --source synthetic-options "
                         "--symbols SPX (Black-Scholes from ^GSPC and ^VIX)")
    _common_data(tr, symbols_required=False)
    tr.add_argument("--out", default=None, help="models/NAME.onnx")
    tr.add_argument("--pipeline", default=None, help="pipeline name from config (default per class)")
    tr.add_argument("--seed", type=int, default=None)
    from .models import add_parallel_args

    add_parallel_args(tr)

    par = sub.add_parser("parity", help="sklearn vs onnxruntime on held-out rows")
    par.add_argument("model", help="models/NAME.onnx")
    par.add_argument("--json", action="store_true")

    rt = sub.add_parser("routing", help="print symbol -> class -> model routing")
    rt.add_argument("--symbols", default=None)
    rt.add_argument("--interval", default=None,
                    help="route for a session of these bars (1m, 5m, 15m, 1h, 1d): the "
                         "models config/assets.yaml names for it, each checked against its "
                         "card's interval (default: the models as configured, for 1d)")
    rt.add_argument("--json", action="store_true")

    cl = sub.add_parser("convert-legacy", help="convert a scikit-learn pickle to ONNX, once")
    cl.add_argument("pickle", help="PATH.pkl")
    cl.add_argument("--out", required=True, help="models/NAME.onnx")
    cl.add_argument("--trust", action="store_true",
                    help="confirm you trust this file: loading a pickle runs its code")

    pp = sub.add_parser("paper", help="run a paper-trading session (live or replay)")
    _common_data(pp, symbols_required=False)  # not needed with --resume
    # defaults applied by cli_paper for a new run: with --resume these may not be given
    pp.set_defaults(source=None, interval=None)
    pp.add_argument("--duration", default=None,
                    help="live: wall-clock time the session runs, e.g. 5min, 60min, 30s "
                         "(an equities session outside its market's hours waits for the "
                         "open within it); replay: market time, the bars stamped from the "
                         "window's first bar to first + duration (not a cap on run time)")
    pp.add_argument("--dry-run", action="store_true", help="decide and record, fill nothing")
    pp.add_argument("--model", default=None,
                    help="force a model: a registry name or baseline:sma_cross / baseline:buy_and_hold")
    pp.add_argument("--run-dir", default=None, help="folder for runs (default from session.yaml)")
    pp.add_argument("--resume", default=None, metavar="RUN", help="resume run RUN from its ledger")
    pp.add_argument("--mode", choices=["replay", "live"], default=None,
                    help="replay history (default for sample/csv/cache, or with --start/"
                         "--end) or poll live (default for yfinance, ccxt:EXCHANGE, alpaca): "
                         "a live session decides each closed bar once")
    pp.add_argument("--json", action="store_true", help="print the summary as JSON")
    pp.add_argument("--config-dir", default=None, help="folder with risk/session/assets yaml")
    pp.add_argument("--run-id", default=None,
                    help="name the run (default paper-<UTC time>-<random>); must be new")
    pp.add_argument("--max-steps", type=int, default=None,
                    help="stop after this many committed steps (drills, tests)")
    pp.add_argument("--broker", choices=["paper", "alpaca"], default=None,
                    help="where orders go: paper (the internal paper broker, default) or "
                         "alpaca (Alpaca's paper trading API; keys from APCA_API_KEY_ID and "
                         "APCA_API_SECRET_KEY; a live session only); default: session.yaml "
                         "venue.broker; a resume keeps the run's broker")
    pp.add_argument("--fast", action="store_true",
                    help="replay only: quiet steps (no order, fill or limit event) in batches, "
                         "every other step by the step code; the same ledger, config read once")
    pp.add_argument("--decision-log", choices=["full", "changes"], default=None,
                    help="full (default): a decision per symbol and bar; changes: decisions "
                         "without an order (HOLD, NO_SIGNAL, HALTED) only when they change "
                         "(big universes; a resume keeps the run's level)")

    rh = sub.add_parser("reset-halt", help="clear a latched drawdown HALT after review")
    rh.add_argument("run", help="run id (folder under the run dir) or path to its ledger")
    rh.add_argument("--run-dir", default=None)
    rh.add_argument("--reason", default="manual reset", help="why, recorded in the ledger")

    ini = sub.add_parser("init", help="lay out a project home (config, models, notebooks, "
                         "runs, reports) to edit", epilog=PATHS_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ini.add_argument("dir", metavar="DIR", help="folder to make (from the current folder)")
    ini.add_argument("--force", action="store_true",
                     help="DIR is not empty: add only the missing files; a file already "
                          "there is never overwritten")

    runs = sub.add_parser("runs", help="list, show and export recorded runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="every run under the run folder, newest first")
    rs = rsub.add_parser("show", help="one run: what was run and its summary")
    rs.add_argument("run", metavar="RUN", help="run id (see: research-lib runs list), run "
                                               "folder or ledger path")
    rx = rsub.add_parser("export", help="write each ledger table to a file")
    rx.add_argument("run", metavar="RUN", help="run id, run folder or ledger path")
    rx.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    rx.add_argument("--out", required=True, metavar="DIR",
                    help="folder for the files (one per table, plus meta.json)")
    for p in (rl, rs, rx):
        p.add_argument("--run-dir", default=None,
                       help="folder holding the runs (default session.run_dir: runs/)")
    for p in (rl, rs):
        p.add_argument("--json", action="store_true", help="machine-readable output")
    rd = sub.add_parser("ready", help="check every readiness claim now, with its evidence; "
                                      "exit 0 only when every required claim passes")
    rd.add_argument("--symbols", default=None,
                    help="the symbols to check (default: config/ready.yaml ready.symbols)")
    rd.add_argument("--json", action="store_true",
                    help="one JSON object per claim per line: claim, verdict, evidence, seconds")
    rd.add_argument("--html", default=None, metavar="FILE.html",
                    help="also write the self-contained HTML report, e.g. reports/ready.html")
    rd.add_argument("--offline", action="store_true",
                    help="do not ask the live source (its claim WARNs 'offline')")
    rd.add_argument("--only", default=None, metavar="CLAIMS",
                    help="comma-separated claim names to check (default: all)")
    from .sweep import add_parser as add_sweep

    add_sweep(sub, _common_data)
    return parser


def _resolve(target: str) -> Callable[[argparse.Namespace], int]:
    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. ``argv=None`` is the ``research-lib`` program (the command line of
    this process); an explicit ``argv`` is an in-process call (a notebook, a test, a
    worker), whose SIGINT/SIGTERM handlers are given back when the command returns (a paper
    session takes them over, and leaves them ignored for the program's own exit)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..telemetry import configure

    configure(level=args.log_level)
    key = {"data": f"data {getattr(args, 'data_command', '')}",
           "runs": f"runs {getattr(args, 'runs_command', '')}"}.get(args.command, args.command)
    saved = _signal_handlers() if argv is not None else {}
    saved_home = os.environ.get(HOME_ENV)
    try:
        if args.home is not None:
            if not args.home.strip():
                raise ConfigError("--home is empty; pass the project home folder (or leave "
                                  "--home out)")
            os.environ[HOME_ENV] = str(Path(args.home).expanduser().absolute())
        check_window(args)
        return int(_resolve(HANDLERS[key])(args) or 0)
    except ResearchLibError as exc:
        print(f"research-lib {key}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc)
        if hint is None:
            raise
        print(f"research-lib {key}: error: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"research-lib {key}: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.home is not None:
            if saved_home is None:
                os.environ.pop(HOME_ENV, None)
            else:
                os.environ[HOME_ENV] = saved_home
        for sig, handler in saved.items():
            try:
                signal.signal(sig, handler)
            except ValueError:  # pragma: no cover - not the main thread: nothing was set
                pass


def _signal_handlers() -> dict[int, object]:
    """The current SIGINT and SIGTERM handlers (those Python can give back)."""
    out: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:  # installed outside Python: cannot be restored
            out[sig] = handler
    return out
