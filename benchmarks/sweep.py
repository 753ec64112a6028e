"""Sweep benchmarks (issue 15), ``python -m benchmarks --only sweep``:

1. one 16-point sweep (``signal.target_weight`` x ``risk.max_position_pct``, 4 x 4) of a
   --fast replay of the sample's 6 traded real series (^GSPC, ^IXIC, GOOG, BTC-USD,
   ETH-USD, LTC-USD; 2005-2019, the ONNX router), run serially, on joblib's local
   processes and on a Dask ``LocalCluster`` made by the sweep, each into a new folder:
   wall seconds (pool or cluster start-up included), points per minute, speed-up over
   serial, and whether the three result tables are identical;
2. the per-unit figures a capacity plan needs, per 1,000 symbol-years: peak RSS of a
   replay process, ledger and log bytes, wall seconds, from --fast replays of REPLICATED
   real equity series (^GSPC, ^IXIC, GOOG copied under new names, 2005-2012, where all
   three trade) at three universe sizes, each in a fresh process: time, ledger and log
   bytes per 1,000 symbol-years at each size, and peak RSS as a line (the slope between
   the two largest sizes, and its intercept: what a replay holds before its first
   symbol-year).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ._common import (
    EQUITY_OVERLAP,
    Figure,
    child_json,
    tempdir,
    universe,
    write_replicated_csv,
)

SWEEP_SYMBOLS = ("^GSPC", "^IXIC", "GOOG", "BTC-USD", "ETH-USD", "LTC-USD")
SWEEP_WINDOW = ("2005-01-01", "2019-12-31")
GRID = {"signal.target_weight": [0.04, 0.06, 0.08, 0.1],
        "risk.max_position_pct": [0.1, 0.15, 0.2, 0.25]}
UNIT_WINDOW = ("2005-01-01", "2012-12-31")  # the three equity bases all trade in it
UNIT_YEARS = 8.0
UNIT_SIZES = (50, 200, 400)


def _bytes(folder: Path, names: tuple[str, ...] | None = None,
           exclude: tuple[str, ...] = ()) -> int:
    total = 0
    for p in folder.rglob("*"):
        if not p.is_file() or p.name in exclude:
            continue
        if names is None or p.name in names:
            total += p.stat().st_size
    return total


def sweep_backends(jobs: int) -> tuple[list[Figure], list[str]]:
    """The 16-point sweep on each backend; figures and notes."""
    import research_lib as rl

    root = tempdir("sweep")
    figs: list[Figure] = []
    tables = {}
    walls = {}
    loads = []
    for backend in ("serial", "local", "dask"):
        out = root / backend
        loads.append(f"{backend} {os.getloadavg()[0]:.2f}")
        t0 = time.perf_counter()
        res = rl.sweep(list(SWEEP_SYMBOLS), GRID, out=out, start=SWEEP_WINDOW[0],
                       end=SWEEP_WINDOW[1], backend=backend,
                       jobs=1 if backend == "serial" else jobs, report=False)
        wall = time.perf_counter() - t0
        if res.failed:
            raise RuntimeError(f"sweep on {backend} failed: {res.table['error'].tolist()}")
        walls[backend] = wall
        tables[backend] = res.table.drop(columns=["wall_s"])
        n = len(res.table)
        label = {"serial": "serial (one process)", "local": f"local: joblib loky, {jobs} "
                 "processes", "dask": f"dask: LocalCluster, {jobs} worker processes"}[backend]
        figs.append(Figure(f"{n}-point sweep, {label}: wall", "s", [wall]))
        figs.append(Figure("  points per minute", "points/min", [n / wall * 60]))
        figs.append(Figure("  speed-up over serial", "x", [walls["serial"] / wall]))
        figs.append(Figure("  sum of the points' own wall times (work done)", "s",
                           [float(res.table["wall_s"].sum())]))
        if backend == "serial":
            per = res.table["wall_s"]
            figs.append(Figure("  one point (a replay, its own run folder)", "s",
                               list(per)))
            figs.append(Figure("  disk per point: run folder (ledger + logs)", "MB",
                               [_bytes(out / "runs") / n / 1e6]))
    same = all(tables[b].equals(tables["serial"]) for b in ("local", "dask"))
    notes = [f"result tables identical on the three backends (wall seconds aside): "
             f"{'yes' if same else 'NO'}",
             "1-minute load average before each: " + ", ".join(loads) + f" on "
             f"{os.cpu_count()} CPU(s) (shared machine: the speed-up is bounded by the idle "
             "cores, not by the sweep)",
             f"{len(SWEEP_SYMBOLS)} real series {SWEEP_WINDOW[0]}..{SWEEP_WINDOW[1]}, --fast, "
             "ONNX router; wall includes starting the pool or the cluster"]
    shutil.rmtree(root, ignore_errors=True)
    return figs, notes


def _child(args: list[str]) -> dict[str, Any]:
    return child_json("benchmarks.sweep", args)


def _unit_child(n: int, source: str, run_dir: str) -> dict[str, Any]:
    """One --fast replay of ``n`` replicated equity series in this (fresh) process."""
    import logging

    import research_lib as rl
    from research_lib.telemetry import configure

    configure(level=logging.CRITICAL)
    names = [name for name, _ in universe(n, EQUITY_OVERLAP)]
    t0 = time.perf_counter()
    res = rl.run_session(symbols=names, source=source, start=UNIT_WINDOW[0],
                         end=UNIT_WINDOW[1], fast=True, replicas=True, run_dir=run_dir,
                         settings={"signal": {"target_weight": round(min(0.1, 0.9 / n), 6)}})
    wall = time.perf_counter() - t0
    if res.exit_code != 0:
        raise RuntimeError(f"replay of {n} symbols failed: {res.summary.get('error')}")
    folder = Path(res.ledger_path).parent
    ledger = _bytes(folder, ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"))
    return {"n": n, "wall_s": wall, "steps": int(res.summary["steps"]),
            "fills": int(res.summary["fills"]),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ledger_bytes": ledger, "log_bytes": _bytes(folder) - ledger,
            "files": sorted(p.name for p in folder.iterdir())}


def per_unit(repeats: int) -> tuple[list[Figure], list[str], dict[str, float]]:
    """Per 1,000 symbol-years: peak RSS, ledger and log bytes, replay wall seconds."""
    root = tempdir("units")
    source = write_replicated_csv(root / "csv", universe(max(UNIT_SIZES), EQUITY_OVERLAP))
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in UNIT_SIZES}
    for _ in range(repeats):
        for n in UNIT_SIZES:
            rd = root / f"runs-{n}"
            runs[n].append(_child(["--unit-child", str(n), source, str(rd)]))
            shutil.rmtree(rd, ignore_errors=True)
    figs: list[Figure] = []
    for n in UNIT_SIZES:
        k = n * UNIT_YEARS / 1000.0
        figs.append(Figure(f"{n} replicated symbols x {UNIT_YEARS:g} years ({k * 1000:,.0f} "
                           "symbol-years): peak RSS", "MB", [r["maxrss_mb"] for r in runs[n]]))
        figs.append(Figure("  ledger, per 1,000 symbol-years", "MB",
                           [r["ledger_bytes"] / 1e6 / k for r in runs[n]]))
        figs.append(Figure("  logs (events.jsonl, the rest of the run folder), per 1,000 "
                           "symbol-years", "MB", [r["log_bytes"] / 1e6 / k for r in runs[n]]))
        figs.append(Figure("  replay wall (--fast, one process), per 1,000 symbol-years", "s",
                           [r["wall_s"] / k for r in runs[n]]))
        figs.append(Figure("  fills in the run (it trades)", "fills",
                           [r["fills"] for r in runs[n]]))
    # memory: the slope between the two largest sizes (below ~100 symbols the peak is the
    # imports' and set-up's, not the replay's: a slope there reads too low)
    lo, hi = UNIT_SIZES[-2], UNIT_SIZES[-1]
    d_k = (hi - lo) * UNIT_YEARS / 1000.0
    slope = [(b["maxrss_mb"] - a["maxrss_mb"]) / d_k
             for a, b in zip(runs[lo], runs[hi], strict=True)]
    base = [b["maxrss_mb"] - hi * UNIT_YEARS / 1000.0 * s_
            for b, s_ in zip(runs[hi], slope, strict=True)]
    figs += [Figure(f"peak RSS per 1,000 symbol-years (slope {lo} -> {hi} symbols)", "MB",
                    slope),
             Figure("peak RSS before the first symbol-year (intercept of that line)", "MB",
                    base)]

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    k_hi = hi * UNIT_YEARS / 1000.0
    per = {"rss_mb": med(slope), "base_rss_mb": med(base),
           "ledger_mb": med([r["ledger_bytes"] / 1e6 / k_hi for r in runs[hi]]),
           "log_mb": med([r["log_bytes"] / 1e6 / k_hi for r in runs[hi]]),
           "log_mb_max": max(r["log_bytes"] / 1e6 / (n * UNIT_YEARS / 1000.0)
                             for n in UNIT_SIZES for r in runs[n]),
           "wall_s": med([r["wall_s"] / k_hi for r in runs[hi]])}
    notes = [f"run folder files: {', '.join(runs[hi][0]['files'])}",
             f"target weight min(0.1, 0.9/N); {', '.join(map(str, UNIT_SIZES))} replicas of "
             f"{', '.join(EQUITY_OVERLAP)} {UNIT_WINDOW[0]}..{UNIT_WINDOW[1]}, a fresh "
             "process each; the plan takes time, ledger and logs per symbol-year at "
             f"{hi} symbols (set-up included) and memory from the slope"]
    shutil.rmtree(root, ignore_errors=True)
    return figs, notes, per


def plan(per: dict[str, float], symbols: int = 3000, years: int = 20, points: int = 200,
         workers: int = 2) -> list[str]:
    """The capacity plan for ``points`` replays of ``symbols`` x ``years``, from ``per``."""
    k = symbols * years / 1000.0
    cpu_s = points * k * per["wall_s"]
    rss = per["base_rss_mb"] + k * per["rss_mb"]
    disk = points * k * (per["ledger_mb"] + per["log_mb"])
    return [f"plan: {points} points x {symbols:,} symbols x {years} years = {points} x "
            f"{k:g} thousand symbol-years",
            f"  time: {points} x {k:g} x {per['wall_s']:.3g} s = {cpu_s:,.0f} core-s = "
            f"{cpu_s / 3600:,.1f} core-hours; on {workers} workers "
            f"{cpu_s / workers / 3600:,.1f} h",
            f"  memory per worker (one point at a time): {per['base_rss_mb']:.0f} MB + "
            f"{k:g} x {per['rss_mb']:.3g} MB = {rss:,.0f} MB",
            f"  storage: {points} x {k:g} x ({per['ledger_mb']:.3g} + {per['log_mb']:.3g}) MB "
            f"= {disk / 1e3:,.1f} GB (logs at the largest size); with logs at the highest "
            f"rate measured ({per['log_mb_max']:.3g} MB): "
            f"{points * k * (per['ledger_mb'] + per['log_mb_max']) / 1e3:,.1f} GB"]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--unit-child":
        os.environ.setdefault("PYTHONHASHSEED", "0")
        print(json.dumps(_unit_child(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
    else:
        sys.exit("usage: python -m benchmarks --only sweep (this module is run by it)")
