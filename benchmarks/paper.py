"""Paper-session benchmarks: end-to-decision latency, replay throughput, memory against
history length, start-up of ``research-lib paper`` and the paper-session report.

Every figure is the median with min and max over repeated runs in this process (or in
fresh child processes where the figure is about a process: memory, start-up, report).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ._common import (
    EQUITY_OVERLAP,
    FULL_END,
    FULL_START,
    LATENCY_END,
    LATENCY_START,
    ROOT,
    Figure,
    child_json,
    nearest_rank,
    run_timed,
    tempdir,
    universe,
    write_config,
    write_replicated_csv,
)

MODELS = ("router", "baseline:sma_cross")
LATCHES_OFF = {"daily_loss_stop_pct": 0.99, "max_drawdown_pct": 0.99}


def target_weight(n: int) -> float:
    return round(min(0.10, 0.9 / n), 6)
SIZES = (1, 10, 100)


def _model_arg(model: str) -> str | None:
    return None if model == "router" else model


def _label(model: str) -> str:
    return "ONNX router" if model == "router" else "SMA(10/20) baseline"


class Data:
    """The replicated-real-series CSV folders and the config dir of one benchmark run."""

    def __init__(self) -> None:
        self.root = tempdir("data")
        self._csv: dict[tuple[int, tuple[str, ...]], tuple[list[str], str]] = {}
        self._config: dict[int, Path] = {}

    def config(self, n: int) -> Path:
        """The repository's config with two changes: the account latches (daily loss,
        drawdown) relaxed, because a halted account stops predicting and would flatter
        every figure after it; and a target weight of min(0.10, 0.9/n), so n symbols
        together ask for at most 90% of equity (the repository's 0.10 for 1 symbol; at
        0.10 each, 100 symbols would ask for 10x equity and clip on cash every step)."""
        if n not in self._config:
            self._config[n] = write_config(self.root / f"config_{n}", risk=LATCHES_OFF,
                                           signal={"target_weight": target_weight(n)})
        return self._config[n]

    def csv(self, n: int, bases: tuple[str, ...] | None = None) -> tuple[list[str], str]:
        key = (n, bases or ())
        if key not in self._csv:
            pairs = universe(n, bases) if bases else universe(n)
            folder = self.root / f"csv_{n}_{'_'.join(b.strip('^') for b in (bases or ('all',)))}"
            self._csv[key] = ([name for name, _ in pairs], write_replicated_csv(folder, pairs))
        return self._csv[key]

    def run_dir(self, tag: str) -> Path:
        return tempdir(tag)


# ------------------------------------------------------------------------- latency
def latency(data: Data, repeats: int, sizes=SIZES, models=MODELS) -> list[Figure]:
    """E2D per step (bars handed to the step -> last order decided), from the session's own
    recorder, over LATENCY_START..LATENCY_END where every symbol has a bar at every step
    (replicas of ^GSPC, ^IXIC, GOOG), so an N-symbol step really decides N symbols."""
    out = []
    for model in models:
        for n in sizes:
            syms, src = data.csv(n, EQUITY_OVERLAP)
            p50 = Figure(f"E2D p50, {n} symbol(s), {_label(model)}", "ms")
            p99 = Figure(f"E2D p99, {n} symbol(s), {_label(model)}", "ms")
            for _ in range(repeats):
                r = run_timed(symbols=syms, source=src, start=LATENCY_START, end=LATENCY_END,
                              model=_model_arg(model), config_dir=data.config(n),
                              run_dir=data.run_dir("lat"))
                p50.add(nearest_rank(r.e2d_ms, 50))
                p99.add(nearest_rank(r.e2d_ms, 99))
            steps = r.steps
            p50.note = f"{steps} steps x {n} bars"
            out += [p50, p99]
    return out


# ---------------------------------------------------------------------- throughput
def throughput(data: Data, repeats: int, sizes=SIZES, models=MODELS,
               engines=(False, True)) -> tuple[list[Figure], list[Figure]]:
    """Replay of the whole sample history (1999-01-04 .. 2020-01-17): symbol-bars decided
    per second of the loop (every step: gate, features, predict, size, risk, kill switch,
    ledger commit, decision log), and per second of the whole run() (with set-up: reading
    the CSVs, the sanity suite, models, ledger); by the step loop and by ``--fast`` (the
    same ledger rows; its loop includes pass 1, the batch of features and predictions)."""
    out, per_bar = [], []
    for model in models:
        for n in sizes:
            syms, src = data.csv(n)
            for fast in engines:
                tag = " --fast" if fast else ""
                loop = Figure(f"replay{tag}, {n} symbol(s), {_label(model)}", "symbol-bars/s")
                whole = Figure("  the same, whole run() with set-up", "symbol-bars/s")
                us = Figure(f"loop cost per symbol-bar{tag}, {n} symbol(s), {_label(model)}",
                            "us")
                for _ in range(repeats):
                    r = run_timed(symbols=syms, source=src, start=FULL_START, end=FULL_END,
                                  model=_model_arg(model), config_dir=data.config(n),
                                  run_dir=data.run_dir("tput"), fast=fast)
                    loop.add(r.throughput)
                    whole.add(r.throughput_total)
                    us.add(r.loop_s / r.symbol_bars * 1e6)
                loop.note = f"{r.symbol_bars:,} symbol-bars in {r.steps:,} steps"
                whole.note = f"set-up {r.setup_s:.2f} s"
                out += [loop, whole]
                per_bar.append(us)
    return out, per_bar


# -------------------------------------------------------------------------- memory
MEMORY_BARS = (1000, 2000, 4000)


def _memory_child(bars: int, n: int, trace: bool, fast: bool = False) -> dict[str, Any]:
    """In a fresh process: one router session (``fast``: ``--fast``) over the first ``bars``
    bars of ``n`` replicated ^GSPC/^IXIC series; peak RSS and the ledger's size on disk, and
    with ``trace`` the tracemalloc peak of the whole run and of the loop above its start."""
    import resource
    import tracemalloc

    from research_lib.data import load
    from research_lib.session import Session

    cfg = write_config(tempdir("memcfg") / "config", risk=LATCHES_OFF,
                       signal={"target_weight": target_weight(n)})
    pairs = universe(n, ("^GSPC", "^IXIC"))
    src = write_replicated_csv(tempdir("memcsv"), pairs)
    idx = load(["^GSPC"])["^GSPC"].index
    end = idx[bars - 1].isoformat()
    marks: dict[str, float] = {}
    if trace:
        tracemalloc.start()
        orig = Session.prepare

        def prepare(self: Session) -> None:
            orig(self)
            marks["loop_base"] = tracemalloc.get_traced_memory()[0]
            marks["setup_peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()

        Session.prepare = prepare  # type: ignore[method-assign]
    sizes: list[int] = []
    r = run_timed(lambda p: sizes.append(sum(f.stat().st_size for f in p.parent.glob(
                      "ledger.sqlite*"))),
                  symbols=[s for s, _ in pairs], source=src, start=FULL_START, end=end,
                  config_dir=cfg, run_dir=tempdir("mem"), fast=fast)
    ledger = sizes[0]
    out: dict[str, Any] = {"bars": bars, "symbols": n, "steps": r.steps, "ledger_bytes": ledger,
                           "symbol_bars": r.symbol_bars, "loop_s": r.loop_s,
                           "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if trace:
        cur, peak = tracemalloc.get_traced_memory()
        out["trace_loop_growth_mb"] = (peak - marks["loop_base"]) / 2**20
        out["trace_peak_mb"] = max(peak, marks["setup_peak"]) / 2**20
    return out


def _child(args: list[str]) -> dict[str, Any]:
    return child_json("benchmarks.paper", args)


def memory(repeats: int, bar_counts=MEMORY_BARS, n: int = 10, fast: bool = False
           ) -> tuple[list[Figure], list[Figure]]:
    """Peak RSS and the loop's growth against history length (flat = the ledger streams),
    in the step loop or (``fast``) the fast replay with its column blocks."""
    rss, loop, peak, us = [], [], [], []
    how = "--fast, " if fast else ""
    for bars in bar_counts:
        a = Figure(f"peak RSS, {how}{bars:,} bars x {n} symbols", "MB")
        b = Figure("  tracemalloc: loop growth above its start", "MB")
        c = Figure("  tracemalloc: peak of the whole run", "MB")
        e = Figure("  ledger on disk, per 1,000 symbol-bars", "KB")
        d = Figure(f"loop cost per symbol-bar, {how}{bars:,} bars x {n} symbols, ONNX router",
                   "us")
        for _ in range(repeats):
            plain = _child(["--memory-child", str(bars), str(n), "0", str(int(fast))])
            a.add(plain["maxrss_mb"])
            d.add(plain["loop_s"] / plain["symbol_bars"] * 1e6)
            e.add(plain["ledger_bytes"] / plain["symbol_bars"])
            traced = _child(["--memory-child", str(bars), str(n), "1", str(int(fast))])
            b.add(traced["trace_loop_growth_mb"])
            c.add(traced["trace_peak_mb"])
        rss.append(a)
        loop.append(b)
        peak.append(c)
        us.append(d)
        us.append(e)
    figs = [f for trio in zip(rss, loop, peak, strict=True) for f in trio]
    return figs, us


# ------------------------------------------------------------------------- startup
HEAVY = ("sklearn", "skl2onnx", "matplotlib", "papermill", "nbconvert", "scipy")
SERVING = ("numpy", "onnxruntime", "onnx", "pandas", "pyarrow", "exchange_calendars", "yaml",
           "yfinance")


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("research-lib")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "research_lib.cli"]


def startup(repeats: int) -> tuple[list[Figure], dict[str, float], list[str]]:
    """``research-lib paper --symbols SPY,QQQ --max-steps 1`` in a fresh process: time from
    spawning it to its first decision committed (the ledger's wall clock of step 0), and
    to its exit; plus which heavy packages it imported and what each import cost."""
    first = Figure("research-lib paper: spawn -> first decision committed", "s")
    done = Figure("research-lib paper: spawn -> exit (1 step, summary printed)", "s")
    cold = Figure("  the same, first start with an empty data cache (builds the XNYS calendar)",
                  "s")
    cfg = write_config(tempdir("startcfg") / "config")

    def once(env: dict[str, str] | None = None) -> tuple[float, float]:
        rd = tempdir("start")
        t0 = time.time()
        res = subprocess.run([*_cli(), "paper", "--symbols", "SPY,QQQ", "--max-steps", "1",
                              "--json", "--run-dir", str(rd), "--config-dir", str(cfg)],
                             cwd=rd, capture_output=True, text=True, check=False,
                             env={**os.environ, **(env or {})})
        t1 = time.time()
        if res.returncode != 0:
            raise RuntimeError(f"research-lib paper failed: {res.stderr[-2000:]}")
        ledger = json.loads(res.stdout)["ledger"]
        with sqlite3.connect(ledger) as c:
            wall = c.execute("SELECT wall_ts FROM steps WHERE step = 0").fetchone()[0]
        return datetime.fromisoformat(wall).timestamp() - t0, t1 - t0

    once()  # the user's data cache holds the calendar from here on
    for _ in range(repeats):
        a, b = once()
        first.add(a)
        done.add(b)
        cold.add(once({"RESEARCH_LIB_CACHE": str(tempdir("cache"))})[0])
    # imports: -X importtime in one more run
    rd = tempdir("start")
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "research_lib.cli", "paper",
                          "--symbols", "SPY,QQQ", "--max-steps", "1", "--json", "--run-dir",
                          str(rd), "--config-dir", str(cfg)],
                         cwd=rd, capture_output=True, text=True, check=False)
    cost: dict[str, float] = {}
    pat = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)$")
    for line in res.stderr.splitlines():
        m = pat.match(line)
        if m and m.group(3).split(".")[0] in SERVING + HEAVY and "." not in m.group(3):
            name = m.group(3)
            cost[name] = max(cost.get(name, 0.0), int(m.group(1)) / 1e6)
    heavy = [h for h in HEAVY if h in cost]
    return [first, cold, done], cost, heavy


# -------------------------------------------------------------------------- report
def report(repeats: int) -> list[Figure]:
    """``research-lib report paper_session -p symbols SPY,QQQ``: papermill runs the
    notebook in a fresh kernel (a paper session, figures, metrics) and exports HTML."""
    f = Figure("research-lib report paper_session (SPY,QQQ), wall time", "s")
    for _ in range(repeats):
        out = tempdir("report") / "paper_session.html"
        t0 = time.perf_counter()
        res = subprocess.run([*_cli(), "report", "paper_session", "-p", "symbols", "SPY,QQQ",
                              "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        dt = time.perf_counter() - t0
        if res.returncode != 0 or not out.is_file():
            raise RuntimeError(f"report failed: {res.stderr[-2000:]}")
        f.add(dt)
    return [f]


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--memory-child":
        os.environ.setdefault("PYTHONHASHSEED", "0")
        print(json.dumps(_memory_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1",
                                       len(sys.argv) == 6 and sys.argv[5] == "1")))
    else:
        sys.exit("usage: python -m benchmarks (this module is run by it)")
