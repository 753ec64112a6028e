"""How long the paper-session tearsheet takes to render for a wide run (issue 14: a
100-symbol report in under 30 s).

    .venv/bin/python -m benchmarks.tearsheet            # 100 symbols, 2010-2019
    .venv/bin/python -m benchmarks.tearsheet --symbols 20 --start 2016-01-01

A ``--fast`` replay of N REPLICATED REAL SERIES (the shipped sample's 7 daily series under
new names, ``GSPC_003``, ``BTC_003-USD``; ``replicas=True``) with the SMA(10/20) baseline
is made first (not timed in the figure), then ``research-lib report paper_session --run``
renders its tearsheet: a fresh kernel, every section, the HTML export. Printed: the
report's wall time (the figure), the tearsheet's sections alone (no kernel), the HTML
size, and the run's size.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

from ._common import ROOT, tempdir, universe, write_config, write_replicated_csv

SECTIONS = ("header", "metrics_table", "equity_chart", "monthly_heatmap", "yearly_table",
            "yearly_figure", "drawdown_figure", "drawdown_table", "rolling_figure",
            "distribution_figure", "trades_table", "attribution_table", "attribution_figure",
            "symbol_pnl_chart", "price_fills_chart", "exposure_chart", "turnover_figure",
            "routing_table", "risk_events_table", "state_changes_table", "stale_marks_table",
            "latency_figure")


def make_run(n: int, start: str, end: str) -> Path:
    from research_lib.paper.session import run_session

    root = tempdir("tearsheet")
    source = write_replicated_csv(root / "csv", universe(n))
    cfg = write_config(root / "config", risk={"daily_loss_stop_pct": 0.99,
                                              "max_drawdown_pct": 0.99},
                       signal={"target_weight": round(min(0.10, 0.9 / n), 6)})
    res = run_session(symbols=[s for s, _ in universe(n)], source=source, start=start, end=end,
                      model="baseline:sma_cross", fast=True, replicas=True,
                      config_dir=str(cfg), run_dir=str(root / "runs"))
    if res.exit_code != 0:
        raise RuntimeError(f"replay failed: {res.summary.get('error')}")
    return Path(res.ledger_path)


def sections_time(ledger: Path) -> float:
    from matplotlib.figure import Figure

    from research_lib.tearsheet import tearsheet

    t0 = time.perf_counter()
    ts = tearsheet(ledger)
    for name in SECTIONS:
        out = getattr(ts, name)()
        if isinstance(out, Figure):
            import io

            out.savefig(io.BytesIO(), format="png")  # what the notebook's display does
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tearsheet",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--start", default="2010-01-01")
    ap.add_argument("--end", default="2019-12-31")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds (default 30)")
    args = ap.parse_args(argv)
    from research_lib.telemetry import configure

    configure(level=logging.CRITICAL)
    t0 = time.perf_counter()
    ledger = make_run(args.symbols, args.start, args.end)
    replay = time.perf_counter() - t0
    from research_lib.ledger_read import read_run

    run = read_run(ledger)
    print(f"run: {args.symbols} replicated real series, {len(run['equity'])} steps "
          f"({args.start} .. {args.end}), {len(run['fills'])} fills, "
          f"{len(run['positions'])} position rows; --fast replay {replay:.1f} s (not in the "
          "figure)")
    sec = sections_time(ledger)
    print(f"tearsheet sections alone (no kernel; figures drawn to PNG): {sec:.1f} s")
    out = tempdir("tearsheet-html") / "paper_session.html"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "research_lib.cli", "report", "paper_session",
                          "--run", str(ledger), "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stderr[-3000:])
        return 1
    size = out.stat().st_size / 1e6
    verdict = "within" if wall <= args.budget else "OVER"
    print(f"research-lib report paper_session --run (kernel + every section + HTML): "
          f"{wall:.1f} s, {verdict} the {args.budget:.0f} s budget; HTML {size:.1f} MB")
    return 0 if wall <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
