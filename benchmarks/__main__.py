"""``python -m benchmarks``: every benchmark of issue 6, printed as medians with min and max
over repeated runs (``make bench`` installs the ``bench`` extra and runs this).

Sections (``--only`` picks some): ``latency``, ``throughput``, ``memory``, ``startup``,
``report``, ``compare``, ``sweep`` (issue 15: benchmarks/sweep.py). ``--quick`` runs fewer repeats and the smaller universes only.
The figures depend on the machine and its load: quote them with the machine they came from.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import time

SECTIONS = ("latency", "throughput", "profile", "memory", "startup", "report", "compare",
            "sweep")


def _machine() -> str:
    import numpy
    import onnxruntime

    return (f"{platform.node()}: {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}, "
            f"load average {os.getloadavg()[0]:.2f} at start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    ap.add_argument("--repeats", type=int, default=5, help="runs per figure (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="3 repeats, 1 and 10 symbols, no 100-symbol comparison")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = sorted(set(only) - set(SECTIONS))
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    reps = 3 if args.quick else args.repeats
    sizes = (1, 10) if args.quick else (1, 10, 100)

    from research_lib.telemetry import configure

    configure(level=logging.CRITICAL)  # data findings of replicas, rejections: not here
    from . import paper
    from ._common import table

    print("research_lib benchmarks (python -m benchmarks" + (" --quick" if args.quick else "")
          + ")")
    print(_machine())
    print("data: the shipped sample's 7 real daily series; 10 and 100 symbols are REPLICATED "
          "REAL SERIES (the same real bars under new names, e.g. GSPC_003, BTC_003-USD), "
          "not invented prices\n")
    t_all = time.perf_counter()
    data = paper.Data()
    try:
        if "latency" in only:
            figs = paper.latency(data, reps, sizes)
            print(table(figs, f"End-to-decision latency per step (bars in -> features -> route "
                              f"-> infer -> risk -> orders decided), {paper.LATENCY_START[:4]}-"
                              f"{paper.LATENCY_END[:4]}, every symbol has a bar every step"))
            print()
        if "throughput" in only:
            figs, per_bar = paper.throughput(data, reps, sizes)
            print(table(figs, "Replay throughput over the full sample history "
                              "(1999-01-04 .. 2020-01-17)"))
            print()
            print(table(per_bar, "Cost linearity: loop time per symbol-bar (flat = linear in "
                                 "symbols x bars)"))
            print()
        if "profile" in only:
            from .profile import profile

            cases = [("100 symbols, ONNX router", 100, None, paper.FULL_START, paper.FULL_END),
                     ("1 symbol, SMA baseline", 1, "baseline:sma_cross", paper.FULL_START,
                      paper.FULL_END)]
            if args.quick:
                cases[0] = ("10 symbols, ONNX router", 10, None, paper.FULL_START,
                            paper.FULL_END)
            for label, figs in profile(data, max(1, min(reps, 2)), cases):
                print(table(figs, f"Profile of the replay loop, {label} (full history)"))
                print()
            from .profile_fast import CASES, profile_fast

            fast_cases = CASES[:1] + (("10 symbols, ONNX router", 10, None),) if args.quick \
                else CASES
            for label, figs in profile_fast(data, max(1, min(reps, 2)), fast_cases):
                print(table(figs, f"Profile of a --fast replay, {label} (full history)"))
                print()
        if "memory" in only:
            figs, per_bar = paper.memory(max(1, reps // 2 + 1))
            print(table(figs, "Memory against history length (fresh process per run, ONNX "
                              "router, 10 replicated ^GSPC/^IXIC series)"))
            print()
            print(table(per_bar, "Cost linearity: loop time per symbol-bar against history "
                                 "length"))
            print()
            figs, per_bar = paper.memory(max(1, reps // 2 + 1), n=100, fast=True)
            print(table(figs, "Memory against history length, --fast (column blocks, batches "
                              "of at most FLUSH_ROWS symbol-steps), ONNX router, 100 "
                              "replicated series"))
            print()
            print(table(per_bar, "Cost linearity and ledger size against history length, "
                                 "--fast, 100 symbols"))
            print()
        if "startup" in only:
            figs, cost, heavy = paper.startup(reps)
            print(table(figs, "Start-up of `research-lib paper --symbols SPY,QQQ --max-steps 1`"))
            print("  imports (python -X importtime, cumulative s): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in sorted(cost.items(),
                                                               key=lambda kv: -kv[1])))
            print("  training/plotting/notebook packages imported: "
                  + (", ".join(heavy) if heavy else "none"))
            print()
        if "report" in only:
            print(table(paper.report(max(1, min(reps, 3))),
                        "Paper-session report (papermill kernel + session + figures + HTML)"))
            print()
        if "compare" in only:
            try:
                import backtesting  # noqa: F401
                import backtrader  # noqa: F401
            except ImportError:
                print("compare: skipped; install the bench extra: "
                      "pip install -c constraints.txt -e '.[bench]'")
            else:
                from .compare import main as compare_main

                print(compare_main(repeats=reps, universes=(10,) if args.quick else (10, 100),
                                   big_repeats=max(1, min(reps, 3))))
                print()
        if "sweep" in only:
            from . import sweep

            jobs = max(2, os.cpu_count() or 1)
            figs, notes = sweep.sweep_backends(jobs)
            print(table(figs, "A 16-point sweep (4 x 4 grid) on this machine: serial, local "
                              "processes, Dask local"))
            print("\n".join("  " + n for n in notes))
            print()
            figs, notes, per = sweep.per_unit(max(1, min(reps, 3)))
            print(table(figs, "Memory, disk and time per 1,000 symbol-years (replays of "
                              "replicated real series)"))
            print("\n".join("  " + n for n in notes))
            print("\n".join(sweep.plan(per, workers=jobs)))
            print()
    finally:
        shutil.rmtree(data.root, ignore_errors=True)
    print(f"total benchmark wall time {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
