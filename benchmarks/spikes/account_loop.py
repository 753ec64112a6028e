"""Issue 12 spike: the account loop as (a) a numba-compiled loop and (b) a numpy loop over
bars, timed beside vectorbt (compiled), backtesting.py and research_lib ``--fast`` on the
same SMA(10)/SMA(20) replay, with the cost of writing the records.

Run: ``python -m benchmarks.spikes.account_loop [--repeats 3] [--universes 1,100]``
(needs the ``bench`` extra). Every figure is a median over ``--repeats`` interleaved rounds
in one process, except the start-up figures, which are new processes. The load average is
printed at start and end: the machine is shared.

* Throughput is symbol-bars per second: the bars of every series (the same count as
  ``benchmarks.compare``), over the time of: the loop alone ("loop"); the inputs built
  (research_lib's ``ReplayFeed``, the SMA probabilities for the whole clock) plus the loop
  ("inputs + loop"); plus writing every record ("+ SQLite", "+ Parquet").
* The limits are compare.py's relaxed ones (so the trades equal backtesting.py's and
  vectorbt's); ``python -m benchmarks.spikes.check`` checks the trades against
  research_lib's replay under relaxed, default and tight limits.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._common import FULL_START, ROOT, Figure, table, tempdir, universe
from . import inputs as I

# ------------------------------------------------------------------------ records out
_SQL_COLS = {
    "equity": ("step", "ts", "cash", "equity", "gross", "net", "peak", "day_start_equity",
               "drawdown", "day", "state"),
    "positions": ("step", "symbol", "qty", "avg_price", "mark", "value", "realized",
                  "unrealized", "fees"),
    "decisions": ("step", "ts", "symbol", "probability", "target", "verdict", "reason", "qty"),
    "orders": ("step", "ts", "symbol", "side", "qty", "decision_price", "kind", "denied"),
    "fills": ("step", "ts", "symbol", "order_step", "qty", "price", "base_price",
              "commission", "cash_delta"),
    "risk_events": ("step", "ts", "symbol", "kind", "code", "a", "b"),
    "state_changes": ("step", "ts", "scope", "from_state", "to_state", "code", "equity",
                      "peak"),
}


class SqliteSink:
    """Ledger-shaped rows (text step stamps, symbols, verdicts, codes; NULL for NaN) into
    SQLite by ``executemany``, the whole replay in one transaction (a chunk per call)."""

    def __init__(self, path: Path, symbols: Sequence[str], ts: Sequence[str], w: int) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        for t, cols in _SQL_COLS.items():
            self.con.execute(f"CREATE TABLE {t} ({', '.join(cols)})")
        self.con.execute("BEGIN")
        self.sym = list(symbols) + [None]  # -1: the account
        self.ts, self.w = list(ts), w
        self.rows = 0

    def __call__(self, tabs: dict[str, np.ndarray]) -> None:
        sym, ts, w = self.sym, self.ts, self.w
        verdicts, codes = I.VERDICTS, I.CODES
        for t, a in tabs.items():
            if not len(a):
                continue
            cols = {n: a[n].tolist() for n in a.dtype.names}
            step = cols["step"]
            stamp = [ts[s + w] for s in step]
            if t == "equity":
                rows = zip(step, stamp, cols["cash"], cols["equity"], cols["gross"],
                           cols["net"], cols["peak"], cols["day_start_equity"],
                           cols["drawdown"], cols["day"], [I.STATES[s] for s in cols["state"]],
                           strict=True)
            elif t == "positions":
                rows = zip(step, [sym[s] for s in cols["symbol"]], cols["qty"],
                           cols["avg_price"], [None if m != m else m for m in cols["mark"]],
                           cols["value"], cols["realized"], cols["unrealized"], cols["fees"],
                           strict=True)
            elif t == "decisions":
                rows = zip(step, stamp, [sym[s] for s in cols["symbol"]],
                           [None if p != p else p for p in cols["probability"]],
                           [None if x != x else x for x in cols["target"]],
                           [verdicts[v] for v in cols["verdict"]],
                           [codes.get(r) for r in cols["reason"]],
                           [None if q != q else q for q in cols["qty"]], strict=True)
            elif t == "orders":
                rows = zip(step, stamp, [sym[s] for s in cols["symbol"]],
                           ["BUY" if q > 0 else "SELL" for q in cols["qty"]], cols["qty"],
                           cols["decision_price"], [I.ORDER_KINDS[k] for k in cols["kind"]],
                           cols["denied"], strict=True)
            elif t == "fills":
                rows = zip(step, stamp, [sym[s] for s in cols["symbol"]], cols["order_step"],
                           cols["qty"], cols["price"], cols["base_price"], cols["commission"],
                           cols["cash_delta"], strict=True)
            elif t == "risk_events":
                rows = zip(step, stamp, [sym[s] for s in cols["symbol"]],
                           [I.KINDS[k] for k in cols["kind"]], [codes[c] for c in cols["code"]],
                           cols["a"], cols["b"], strict=True)
            else:
                rows = zip(step, stamp, [sym[s] for s in cols["scope"]],
                           [I.STATES[s] for s in cols["from_state"]],
                           [I.STATES[s] for s in cols["to_state"]],
                           [codes[c] for c in cols["code"]], cols["equity"], cols["peak"],
                           strict=True)
            cols_t = _SQL_COLS[t]
            self.con.executemany(f"INSERT INTO {t} VALUES ({', '.join('?' * len(cols_t))})",
                                 rows)
            self.rows += len(a)

    def close(self) -> None:
        self.con.execute("COMMIT")
        self.con.close()


class ParquetSink:
    """Columns straight from the record arrays (codes as small ints, symbols and steps as
    integers into ``symbols`` and the clock), one Parquet file per table, one row group per
    chunk (zstd)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.writers: dict[str, Any] = {}
        self.rows = 0

    def __call__(self, tabs: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for t, a in tabs.items():
            if not len(a):
                continue
            tb = pa.table({n: a[n] for n in a.dtype.names})
            wr = self.writers.get(t)
            if wr is None:
                wr = self.writers[t] = pq.ParquetWriter(self.folder / f"{t}.parquet", tb.schema,
                                                        compression="zstd")
            wr.write_table(tb)
            self.rows += len(a)

    def close(self) -> None:
        for wr in self.writers.values():
            wr.close()


# ------------------------------------------------------------------------ the timings
def _frames_cfg(n: int) -> tuple[dict[str, Any], Path, float]:
    from .._common import NO_COSTS, RELAXED_RISK, frames_for, write_config

    pairs = [("^GSPC", "^GSPC")] if n == 1 else universe(n)
    frames = frames_for(pairs)
    weight = 0.5 if n == 1 else round(0.9 / n, 6)
    cfg = write_config(tempdir("spk") / "config", risk=RELAXED_RISK,
                       session={**NO_COSTS, "rebalance_band": 1.0, "initial_cash": 1e7},
                       signal={"target_weight": weight})
    return frames, cfg, weight


def _timed(f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def throughput(n: int, repeats: int, with_research_lib: bool = True) -> list[Figure]:
    from .._common import FULL_END, MemorySource, run_timed
    from ..compare import _ohlc, run_backtesting, run_vectorbt, vectorbt_groups
    from . import account_nb, account_np

    label = "^GSPC" if n == 1 else f"{n} series"
    frames, cfg, weight = _frames_cfg(n)
    syms = list(frames)
    bars = sum(len(df) for df in frames.values())
    ohlc = _ohlc(frames)
    groups = vectorbt_groups(ohlc)
    inp = I.build(frames, syms, FULL_START, cfg)
    account_nb.run(inp)  # compiled (or loaded from the cache) before the rounds
    run_vectorbt(groups, weight)
    F = {k: Figure(f"{label}: {k}", "bars/s") for k in (
        "(a) numba, loop", "(a) numba, inputs + loop", "(a) numba, inputs + loop + SQLite",
        "(a) numba, inputs + loop + Parquet", "(b) numpy, loop", "(b) numpy, inputs + loop",
        "vectorbt 1.2.0 compiled", "backtesting.py 0.6.6", "research_lib --fast, whole run()")}
    R = {k: Figure(f"{label}: ratio {k}", "x") for k in (
        "(a) inputs+loop+SQLite / backtesting.py", "(a) inputs+loop+SQLite / vectorbt",
        "(a) loop / vectorbt", "(b) inputs+loop / backtesting.py",
        "(b) inputs+loop / vectorbt")}
    S = {k: Figure(f"{label}: {k}", "ms") for k in (
        "(a) inputs (ReplayFeed + SMA for the clock)", "(a) loop", "(a) records to SQLite",
        "(a) records to Parquet", "research_lib --fast, set-up alone (today)",
        "backtesting.py, whole run")}
    W = {k: Figure(f"{label}: {k}", "rows/s") for k in ("records to SQLite (executemany)",
                                                        "records to Parquet (pyarrow)")}
    rows_note = ""
    for _ in range(repeats):
        t_nb = _timed(lambda: account_nb.run(inp))
        t_np = _timed(lambda: account_np.run(inp))
        t_build = _timed(lambda: I.build(frames, syms, FULL_START, cfg))
        rows: dict[str, int] = {}

        def count(tabs: dict[str, np.ndarray], rows: dict[str, int] = rows) -> None:
            for k, v in tabs.items():
                rows[k] = rows.get(k, 0) + len(v)

        account_nb.run(inp, sink=count)
        total_rows = sum(rows.values())
        rows_note = f"{total_rows:,} rows (" + ", ".join(f"{k} {v:,}" for k, v in rows.items()
                                                        if v) + ")"
        sq = SqliteSink(tempdir("sq") / "ledger.sqlite", syms, inp.ts, inp.n_warmup)
        t_sq = _timed(lambda sq=sq: (account_nb.run(inp, sink=sq), sq.close()))
        pqs = ParquetSink(tempdir("pq"))
        t_pq = _timed(lambda pqs=pqs: (account_nb.run(inp, sink=pqs), pqs.close()))
        t_vb, _ = run_vectorbt(groups, weight)
        t_bp, _ = run_backtesting(ohlc, weight)
        F["(a) numba, loop"].add(bars / t_nb)
        F["(a) numba, inputs + loop"].add(bars / (t_build + t_nb))
        F["(a) numba, inputs + loop + SQLite"].add(bars / (t_build + t_sq))
        F["(a) numba, inputs + loop + Parquet"].add(bars / (t_build + t_pq))
        F["(b) numpy, loop"].add(bars / t_np)
        F["(b) numpy, inputs + loop"].add(bars / (t_build + t_np))
        F["vectorbt 1.2.0 compiled"].add(bars / t_vb)
        F["backtesting.py 0.6.6"].add(bars / t_bp)
        R["(a) inputs+loop+SQLite / backtesting.py"].add(t_bp / (t_build + t_sq))
        R["(a) inputs+loop+SQLite / vectorbt"].add(t_vb / (t_build + t_sq))
        R["(a) loop / vectorbt"].add(t_vb / t_nb)
        R["(b) inputs+loop / backtesting.py"].add(t_bp / (t_build + t_np))
        R["(b) inputs+loop / vectorbt"].add(t_vb / (t_build + t_np))
        W["records to SQLite (executemany)"].add(total_rows / max(t_sq - t_nb, 1e-9))
        W["records to Parquet (pyarrow)"].add(total_rows / max(t_pq - t_nb, 1e-9))
        if with_research_lib:
            r = run_timed(symbols=syms, source=MemorySource(frames), start=FULL_START,
                          end=FULL_END, model="baseline:sma_cross", config_dir=cfg,
                          run_dir=tempdir("rl"), fast=True)
            F["research_lib --fast, whole run()"].add(bars / r.total_s)
            S["research_lib --fast, set-up alone (today)"].add(r.setup_s)
            S["backtesting.py, whole run"].add(t_bp)
        S["(a) inputs (ReplayFeed + SMA for the clock)"].add(t_build)
        S["(a) loop"].add(t_nb)
        S["(a) records to SQLite"].add(t_sq - t_nb)
        S["(a) records to Parquet"].add(t_pq - t_nb)
    F["(a) numba, loop"].note = f"{bars:,} bars, {inp.C.shape[0]:,} steps"
    W["records to SQLite (executemany)"].note = rows_note
    for f in S.values():
        f.values = [v * 1e3 for v in f.values]
    figs = [f for f in F.values() if f.values] + list(W.values()) + list(R.values())
    figs += [f for f in S.values() if f.values]
    return figs


# ------------------------------------------------------------------------ new processes
_START = """
import json, os, sys, time
t0 = time.perf_counter()
import numpy
from benchmarks._common import frames_for, tempdir
from benchmarks.spikes import inputs as I
from benchmarks.spikes.account_loop import _frames_cfg, SqliteSink
t1 = time.perf_counter()
from benchmarks.spikes import account_nb
t2 = time.perf_counter()
frames, cfg, w = _frames_cfg(1)
inp = I.build(frames, list(frames), "1999-01-04", cfg)
t3 = time.perf_counter()
account_nb.run(inp)
t4 = time.perf_counter()
account_nb.run(inp)
t_warm = time.perf_counter() - t4
t4 = time.perf_counter()
sq = SqliteSink(tempdir("sq") / "l.sqlite", list(frames), inp.ts, inp.n_warmup)
account_nb.run(inp, sink=sq); sq.close()
t5 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "import_nb": t2 - t1, "inputs": t3 - t2,
                  "first_run": t4 - t3 - t_warm, "run_sqlite": t5 - t4, "warm": t_warm}))
"""


def startup(repeats: int, opt: str | None = None) -> list[Figure]:
    """New processes: an empty numba cache dir (compiles), then one on the cache it left;
    ``opt``: numba's optimisation level (``NUMBA_OPT``, default 3)."""
    F = {k: Figure(k + (f" [NUMBA_OPT={opt}]" if opt else ""), "s") for k in (
        "(a) imports (numpy, pandas, research_lib feed/config)",
        "(a) import of the numba module (decorators only)",
        "(a) first ^GSPC run, empty numba cache (compiles)",
        "(a) first ^GSPC run, new process on that cache",
        "(a) whole process, empty cache (python start to ledger written)",
        "(a) whole process, on the cache", "(a) second ^GSPC loop in that process")}
    for _ in range(repeats):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tempdir("nbcache"))}
        if opt is not None:
            env["NUMBA_OPT"] = opt
        for cold in (True, False):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _START], cwd=ROOT, env=env,
                                 check=True, capture_output=True, text=True).stdout
            wall = time.perf_counter() - t
            r = json.loads(out.strip().splitlines()[-1])
            F["(a) imports (numpy, pandas, research_lib feed/config)"].add(r["imports"])
            F["(a) import of the numba module (decorators only)"].add(r["import_nb"])
            F["(a) second ^GSPC loop in that process"].add(r["warm"])
            if cold:
                F["(a) first ^GSPC run, empty numba cache (compiles)"].add(r["first_run"])
                F["(a) whole process, empty cache (python start to ledger written)"].add(wall)
            else:
                F["(a) first ^GSPC run, new process on that cache"].add(r["first_run"])
                F["(a) whole process, on the cache"].add(wall)
    return list(F.values())


def onnx_batch(n: int, repeats: int) -> list[Figure]:
    """What the ONNX router path adds before any account loop: features for every bar
    (``research_lib.features.build``) and one onnxruntime call over all rows
    (``models/universal_v1.onnx``), for ``n`` series."""
    import onnxruntime as ort

    from research_lib.features import build

    from .._common import frames_for

    frames = frames_for(universe(n))
    bars = sum(len(df) for df in frames.values())
    sess = ort.InferenceSession(str(ROOT / "models" / "universal_v1.onnx"),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feat = Figure(f"{n} series: features for every bar (features.build)", "bars/s")
    inf = Figure(f"{n} series: universal_v1.onnx, one batch of every bar", "bars/s")
    both = Figure(f"{n} series: features + batched inference", "bars/s")
    for _ in range(repeats):
        t = time.perf_counter()
        X = np.concatenate([build(df).to_numpy() for df in frames.values()])
        t_f = time.perf_counter() - t
        X32 = np.nan_to_num(X.astype(np.float32))
        t = time.perf_counter()
        sess.run(None, {name: X32})
        t_i = time.perf_counter() - t
        feat.add(bars / t_f)
        inf.add(bars / t_i)
        both.add(bars / (t_f + t_i))
    return [feat, inf, both]


def live_step(n: int = 10, repeats: int = 3) -> list[Figure]:
    """The compiled loop called once per step (what a live step would do): the latency of
    one call over ``n`` series, every step of the clock, records into a reused chunk."""
    from .._common import nearest_rank
    from . import account_nb

    frames, cfg, _ = _frames_cfg(n)
    inp = I.build(frames, list(frames), FULL_START, cfg)
    T = inp.C.shape[0]
    p50 = Figure(f"{n} series: one step per call of the compiled loop, p50", "us")
    p99 = Figure(f"{n} series: one step per call of the compiled loop, p99", "us")
    account_nb.run(inp)  # compiled
    for _ in range(repeats):
        acc = I.Account.new(n, inp.initial_cash)
        rec = I.Records(2048, n)
        args = (inp.FILLP, inp.C, inp.HAS, inp.P, inp.DAY, inp.CRYPTO, inp.prm,
                *acc.arrays(), *rec.arrays())
        lat = []
        for t in range(inp.n_warmup, T):
            if (t - inp.n_warmup) % 2048 == 0:
                rec.counts[:] = 0
            t0 = time.perf_counter()
            account_nb.run_chunk(t, t + 1, inp.n_warmup, *args)
            lat.append((time.perf_counter() - t0) * 1e6)
        p50.add(nearest_rank(lat, 50))
        p99.add(nearest_rank(lat, 99))
    return [p50, p99]


def inputs_parts(n: int, repeats: int) -> list[Figure]:
    """Where the inputs' time goes: configs, research_lib's ``ReplayFeed`` (of which: the
    per-step text stamps it makes in Python), what the stamps cost made by numpy instead,
    and the SMA probabilities for the whole clock."""
    from research_lib.config import load_assets, load_risk, load_session
    from research_lib.session import ReplayFeed

    label = "^GSPC" if n == 1 else f"{n} series"
    frames, cfg, _ = _frames_cfg(n)
    syms = list(frames)
    F = {k: Figure(f"{label}: {k}", "ms") for k in (
        "configs (3 YAML files)", "ReplayFeed (clock union, arrays, text stamps)",
        "  of which text stamps (isoformat, strftime per step)",
        "  text stamps by numpy (datetime_as_string), instead", "SMA for the whole clock")}
    for _ in range(repeats):
        t = time.perf_counter()
        load_risk(cfg / "risk.yaml"), load_session(cfg / "session.yaml")
        load_assets(cfg / "assets.yaml")
        t1 = time.perf_counter()
        feed = ReplayFeed(frames, syms, FULL_START)
        t2 = time.perf_counter()
        clock = feed.clock
        _ = [x.isoformat() for x in clock], [x.strftime("%Y-%m-%d") for x in clock]
        t3 = time.perf_counter()
        ns = np.asarray(clock.as_unit("ns").asi8).astype("datetime64[ns]")
        _ = np.datetime_as_string(ns, unit="s"), np.datetime_as_string(ns, unit="D")
        t4 = time.perf_counter()
        I.sma_probabilities(feed)
        t5 = time.perf_counter()
        for k, v in zip(F, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            F[k].add(v * 1e3)
    return list(F.values())


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    from research_lib.telemetry import configure

    ap = argparse.ArgumentParser(prog="python -m benchmarks.spikes.account_loop",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--universes", default="1,100")
    ap.add_argument("--start-repeats", type=int, default=1)
    ap.add_argument("--only-startup", default=None, metavar="OPTS",
                    help="only the numba start-up, at these NUMBA_OPT levels (e.g. 3,1,0)")
    ap.add_argument("--no-research-lib", action="store_true",
                    help="leave research_lib --fast out of the throughput rounds")
    a = ap.parse_args(argv)
    configure(level=logging.CRITICAL)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()} at start")
    if a.only_startup:
        figs = [f for o in a.only_startup.split(",") for f in startup(a.start_repeats, o)]
        print(table(figs, "numba start-up by optimisation level (new processes, ^GSPC)"))
        print(f"load average {os.getloadavg()} at end")
        return 0
    out = []
    for n in [int(x) for x in a.universes.split(",") if x.strip()]:
        out += throughput(n, a.repeats, not a.no_research_lib)
    print(table(out, "Account loop prototypes vs the field: SMA(10/20), relaxed limits, "
                     "no costs (medians)"))
    print(f"load average {os.getloadavg()}")
    print()
    print(table(onnx_batch(100, a.repeats), "ONNX router path, batched before the loop"))
    print()
    print(table(live_step(10, a.repeats), "The compiled loop one step at a time (live)"))
    print()
    parts = [f for n in (1, 100) for f in inputs_parts(n, a.repeats)]
    print(table(parts, "Where the inputs' time goes"))
    print()
    if a.start_repeats:
        from ..compare import vectorbt_cold

        figs = startup(a.start_repeats) + vectorbt_cold(a.start_repeats)
        print(table(figs, "Start-up in new processes (^GSPC; numba cache dir empty, then "
                          "warm)"))
    print(f"load average {os.getloadavg()} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
