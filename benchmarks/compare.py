"""research_lib against backtesting.py, backtrader and vectorbt on the same SMA(10)/SMA(20)
long-only strategy, the same bars and the same trades, in the same run.

Run: ``python -m benchmarks.compare`` (or as part of ``python -m benchmarks``); needs the
``bench`` extra (``pip install -c constraints.txt -e '.[bench]'``).

The one strategy: at the close of bar i, long when SMA(10) > SMA(20) of closes, flat
otherwise; the order fills at bar i+1's open (research_lib's replay fill; backtesting.py
with ``trade_on_close=False``, its default; backtrader's default market order; vectorbt
``Portfolio.from_signals(close, entries, exits, price=open)`` with the signals of bar i
shifted to bar i+1, so its order at bar i+1 fills at that bar's open). No costs.
Every library sees the same bars of each series and decides from the same bar on (its
20th, the first with an SMA(20)), so the trades must match exactly: same entry and exit
bars. research_lib runs with limits relaxed and costs off (a config dir made here),
target weight 0.5 (0.9/N over N series), 10M cash like the others, and a rebalance band
of 1.0 so a held position is never resized.

Timing, fair to each: the data is in memory before the clock starts (research_lib reads it
from an in-memory source); each library's own run is timed: research_lib's whole
``Session.run()`` (set-up with the sanity suite, models, the SQLite ledger committed once
per step, decision log, summary) and its loop alone; backtesting.py ``Backtest(...).run()``
(its progress bar switched off, which only helps it); backtrader ``Cerebro`` set-up,
``adddata`` and ``run()``; vectorbt: SMAs, signals, ``from_signals`` and reading its order
records, once its functions are compiled ("warm"; the bars already in one wide frame per
clock). vectorbt's first call compiles (its ``simulate_from_signals_nb`` has no numba
cache): that cost is printed on its own, measured in a new process with an empty numba
cache dir (``import vectorbt``, then the first ^GSPC run), and again in a new process on
the cache that run left. A universe of N series is one research_lib session, N runs of
backtesting.py and backtrader (each is single-series) and one vectorbt call per distinct
clock (the replicas of one real series share it: 7 calls of up to 15 columns for 100). research_lib runs twice
per round: the step loop and ``--fast`` (research_lib.paper.fast: the same ledger rows,
quiet steps in numpy blocks); both must take the same trades.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import (
    FULL_END,
    FULL_START,
    NO_COSTS,
    NO_JUMP_GATE,
    RELAXED_RISK,
    Figure,
    MemorySource,
    frames_for,
    run_timed,
    tempdir,
    universe,
    write_config,
)

FAST, SLOW = 10, 20
CASH = 1e7
Trade = tuple[str, str, str]  # (symbol, fill date, BUY/SELL)


def _sma(x: Any, n: int) -> np.ndarray:
    import pandas as pd

    return pd.Series(np.asarray(x, dtype=float)).rolling(n).mean().to_numpy()


# -------------------------------------------------------------------- backtesting.py
def run_backtesting(frames: dict[str, Any], weight: float) -> tuple[float, list[Trade]]:
    from backtesting import Backtest, Strategy
    from backtesting import backtesting as _bt

    _bt._tqdm = lambda seq, **_: seq  # no progress bar: only makes it faster

    class SmaCross(Strategy):
        # NaN-free indicators: backtesting.py would otherwise begin calling next() one bar
        # after the first SMA(20) (at bar index 20), research_lib and backtrader at 19
        def init(self) -> None:
            self.fast = self.I(lambda c: np.nan_to_num(_sma(c, FAST)), self.data.Close)
            self.slow = self.I(lambda c: np.nan_to_num(_sma(c, SLOW)), self.data.Close)

        def next(self) -> None:
            if len(self.data) < SLOW:
                return
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=weight)
            elif self.position:
                self.position.close()

    elapsed, trades = 0.0, []
    for sym, df in frames.items():
        t0 = time.perf_counter()
        bt = Backtest(df, SmaCross, cash=CASH, commission=0.0, trade_on_close=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "trades remain open at the end"
            stats = bt.run()
        elapsed += time.perf_counter() - t0
        st = stats._strategy
        for tr in list(st.closed_trades) + list(st.trades):
            trades.append((sym, str(tr.entry_time.date()), "BUY"))
            if tr.exit_time is not None:
                trades.append((sym, str(tr.exit_time.date()), "SELL"))
    return elapsed, sorted(trades)


# ------------------------------------------------------------------------ backtrader
def run_backtrader(frames: dict[str, Any], weight: float) -> tuple[float, list[Trade]]:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=FAST)
            self.slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.fills: list[tuple[str, str]] = []

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                self.fills.append((str(self.data.datetime.date(0)),
                                   "BUY" if order.isbuy() else "SELL"))

        def next(self) -> None:  # first called at bar index 19 (SMA(20) min period)
            if self.fast[0] > self.slow[0]:
                if not self.position:
                    self.order_target_percent(target=weight)
            elif self.position:
                self.close()

    elapsed, trades = 0.0, []
    for sym, df in frames.items():
        t0 = time.perf_counter()
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.addstrategy(SmaCross)
        cerebro.adddata(bt.feeds.PandasData(dataname=df))
        cerebro.broker.setcash(CASH)
        strat = cerebro.run()[0]
        elapsed += time.perf_counter() - t0
        trades += [(sym, d, side) for d, side in strat.fills]
    return elapsed, sorted(trades)


# -------------------------------------------------------------------------- vectorbt
def vectorbt_groups(ohlc: dict[str, Any]) -> list[tuple[list[str], Any, Any]]:
    """The series as wide frames, one per distinct clock: (names, close, open). Replicas of
    one real series share its clock, so 100 series are 7 frames (data preparation, not
    timed, like the capitalised frames the other libraries get)."""
    import pandas as pd

    groups: dict[tuple[Any, ...], list[str]] = {}
    for sym, df in ohlc.items():
        key = (len(df), df.index[0], df.index[-1])
        groups.setdefault(key, []).append(sym)
    out = []
    for names in groups.values():
        idx = ohlc[names[0]].index
        if any(not ohlc[n].index.equals(idx) for n in names):
            raise RuntimeError(f"vectorbt: series {names} do not share one clock")
        close = pd.DataFrame({n: ohlc[n]["Close"].to_numpy() for n in names}, index=idx)
        opn = pd.DataFrame({n: ohlc[n]["Open"].to_numpy() for n in names}, index=idx)
        out.append((names, close, opn))
    return out


def run_vectorbt(groups: list[tuple[list[str], Any, Any]],
                 weight: float) -> tuple[float, list[Trade]]:
    """SMA(10)/SMA(20) long-only by ``vbt.Portfolio.from_signals``: the signal of bar i
    (decided at its close) is shifted to bar i+1, where the order fills at ``price=open``.
    Size: ``weight`` of the column's cash (``size_type="percent"``), no costs; each column
    its own account (no cash sharing). Timed: SMAs, signals, the simulation, the order
    records."""
    import vectorbt as vbt

    elapsed, trades = 0.0, []
    for names, close, opn in groups:
        t0 = time.perf_counter()
        fast = close.rolling(FAST).mean()
        slow = close.rolling(SLOW).mean()
        ready = slow.notna() & fast.notna()
        up = (fast > slow) & ready
        down = ~(fast > slow) & ready
        entries = up.shift(1, fill_value=False)
        exits = down.shift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=opn, size=weight,
                                        size_type="percent", fees=0.0, init_cash=CASH,
                                        freq="1D")
        rec = pf.orders.values
        elapsed += time.perf_counter() - t0
        days = close.index
        trades += [(names[c], str(days[i].date()), "BUY" if side == 0 else "SELL")
                   for c, i, side in zip(rec["col"].tolist(), rec["idx"].tolist(),
                                         rec["side"].tolist(), strict=True)]
    return elapsed, sorted(trades)


_COLD = """
import json, sys, time
t0 = time.perf_counter()
import vectorbt
t1 = time.perf_counter()
from benchmarks._common import frames_for
from benchmarks.compare import _ohlc, run_vectorbt, vectorbt_groups
g = vectorbt_groups(_ohlc(frames_for([("^GSPC", "^GSPC")])))
t2 = time.perf_counter()
first, _ = run_vectorbt(g, 0.5)
again, _ = run_vectorbt(g, 0.5)
print(json.dumps({"import": t1 - t0, "first": first, "again": again}))
"""


def vectorbt_cold(repeats: int = 1) -> list[Figure]:
    """vectorbt's start in new processes: an empty numba cache dir (``import vectorbt``,
    then the first ^GSPC run: compilation included), then a process on the cache it left."""
    import json
    import os
    import subprocess
    import sys

    from ._common import ROOT

    imp = Figure("vectorbt: import vectorbt (new process)", "s")
    cold = Figure("vectorbt: first ^GSPC run, empty numba cache (compiles)", "s")
    cached = Figure("vectorbt: first ^GSPC run, new process on that cache", "s")
    warm = Figure("vectorbt: second ^GSPC run in the same process (compiled)", "s")
    for _ in range(repeats):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tempdir("numba-cache"))}
        for fig in (cold, cached):
            out = subprocess.run([sys.executable, "-c", _COLD], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            imp.add(r["import"])
            fig.add(r["first"])
            warm.add(r["again"])
    return [imp, cold, cached, warm]


_RL_COLD = """
import json, tempfile, time
t0 = time.perf_counter()
from benchmarks._common import frames_for
from benchmarks.compare import cold_config, run_research_lib
frames = frames_for([("^GSPC", "^GSPC")])
t1 = time.perf_counter()
first = run_research_lib(frames, cold_config(), fast=True)[0]
again = run_research_lib(frames, cold_config(), fast=True)[0]
print(json.dumps({"import": t1 - t0, "first": first, "again": again,
                  "process": time.perf_counter() - t0}))
"""


def cold_config() -> Any:
    return write_config(tempdir("cold-config"), risk=RELAXED_RISK, session=NO_COSTS,
                        gate=NO_JUMP_GATE,
                        signal={"target_weight": 0.5})


def research_lib_cold(repeats: int = 1) -> list[Figure]:
    """research_lib's first ^GSPC ``--fast`` replay on a fresh install, counted honestly: a
    new process whose bytecode cache is an empty folder (``PYTHONPYCACHEPREFIX``: every
    module, the standard library and site-packages included, is compiled again, as on a
    first run after ``pip install``); there is nothing else to compile or cache."""
    import json
    import os
    import subprocess
    import sys

    from ._common import ROOT

    whole = Figure("research_lib: fresh install, new process to end of first ^GSPC --fast "
                   "replay (empty bytecode cache)", "s")
    usual = Figure("research_lib: new process to end of first ^GSPC --fast replay (bytecode "
                   "as pip installs it)", "s")
    first = Figure("research_lib: that first ^GSPC --fast replay, whole run()", "s")
    again = Figure("research_lib: a second ^GSPC --fast replay in the same process", "s")
    for _ in range(repeats):
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tempdir("pycache"))}
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _RL_COLD], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout
        whole.add(time.perf_counter() - t)
        r = json.loads(out.strip().splitlines()[-1])
        first.add(r["first"])
        again.add(r["again"])
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RL_COLD], cwd=ROOT, check=True,
                       capture_output=True, text=True)
        usual.add(time.perf_counter() - t)
    return [whole, usual, first, again]


# ---------------------------------------------------------------------- research_lib
def run_research_lib(frames: dict[str, Any], config: Any,
                     fast: bool = False) -> tuple[float, float, int, list[Trade]]:
    """One session over every series from its first bar (no warm-up history before the
    start), by the step loop or ``fast`` (the same ledger). Returns (whole run() seconds,
    loop seconds, symbol-bars, trades)."""
    from research_lib.ledger_read import read_run

    got: dict[str, Any] = {}
    r = run_timed(symbols=list(frames), source=MemorySource(frames), start=FULL_START,
                  end=FULL_END, model="baseline:sma_cross", config_dir=config,
                  run_dir=tempdir("cmp"), on_ledger=lambda p: got.update(read_run(p)), fast=fast)
    fills = got["fills"]
    trades = sorted((str(f.symbol), str(f.ts.date()), "BUY" if f.qty > 0 else "SELL")
                    for f in fills.itertuples())
    return r.total_s, r.loop_s, r.symbol_bars + r.warmup_bars, trades


# ---------------------------------------------------------------------------- driver
def _ohlc(frames: dict[str, Any]) -> dict[str, Any]:
    """The same bars in the capitalised, tz-naive shape both other libraries expect."""
    out = {}
    for s, df in frames.items():
        d = df[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
        d.index = d.index.tz_localize(None)
        out[s] = d
    return out


def _check(name: str, got: list[Trade], want: list[Trade]) -> str:
    if got == want:
        return "same trades"
    a, b = set(got), set(want)
    return (f"DIFFERENT: {len(got)} vs {len(want)} fills; only {name}: {sorted(a - b)[:3]}; "
            f"only research_lib: {sorted(b - a)[:3]}")


def compare(label: str, pairs: Sequence[tuple[str, str]], repeats: int,
            with_backtrader: bool = True,
            with_vectorbt: bool = True) -> tuple[list[Figure], list[str]]:
    """One universe (one series, or N replicated real series): the libraries ``repeats``
    times, interleaved, so each ratio comes from one round. vectorbt is called once before
    the rounds so its figure is the compiled one (its compilation: :func:`vectorbt_cold`)."""
    frames = frames_for(pairs)
    n = len(frames)
    weight = 0.5 if n == 1 else round(0.9 / n, 6)
    cfg = write_config(tempdir("cmpcfg") / "config", risk=RELAXED_RISK, gate=NO_JUMP_GATE,
                       session={**NO_COSTS, "rebalance_band": 1.0, "initial_cash": CASH},
                       signal={"target_weight": weight})
    ohlc = _ohlc(frames)
    bars = sum(len(df) for df in frames.values())
    rl_run = Figure(f"{label}: research_lib, whole run()", "bars/s")
    rl_loop = Figure(f"{label}: research_lib, loop only", "bars/s")
    fr_run = Figure(f"{label}: research_lib --fast, whole run()", "bars/s")
    fr_loop = Figure(f"{label}: research_lib --fast, loop only", "bars/s")
    f_bp = Figure(f"{label}: ratio research_lib --fast / backtesting.py", "x", note="whole run()")
    f_bp_loop = Figure(f"{label}: ratio research_lib --fast / backtesting.py", "x",
                       note="loop only")
    f_btr = Figure(f"{label}: ratio research_lib --fast / backtrader", "x", note="whole run()")
    f_btr_loop = Figure(f"{label}: ratio research_lib --fast / backtrader", "x",
                        note="loop only")
    bp = Figure(f"{label}: backtesting.py 0.6.6", "bars/s")
    btr = Figure(f"{label}: backtrader 1.9.78", "bars/s")
    r_bp = Figure(f"{label}: ratio research_lib / backtesting.py", "x", note="whole run()")
    r_bp_loop = Figure(f"{label}: ratio research_lib / backtesting.py", "x", note="loop only")
    r_btr = Figure(f"{label}: ratio research_lib / backtrader", "x", note="whole run()")
    r_btr_loop = Figure(f"{label}: ratio research_lib / backtrader", "x", note="loop only")
    vb = Figure(f"{label}: vectorbt 1.2.0, compiled", "bars/s")
    f_vb = Figure(f"{label}: ratio research_lib --fast / vectorbt", "x", note="whole run()")
    f_vb_loop = Figure(f"{label}: ratio research_lib --fast / vectorbt", "x", note="loop only")
    checks: list[str] = []
    groups = vectorbt_groups(ohlc) if with_vectorbt else []
    if with_vectorbt:
        run_vectorbt(groups, weight)  # compiles on the first call of a process
    for rep in range(repeats):
        total, loop, rl_bars, rl_trades = run_research_lib(frames, cfg)
        if rl_bars != bars:
            raise RuntimeError(f"research_lib stepped {rl_bars} bars, the others {bars}")
        f_total, f_loop, _, f_trades = run_research_lib(frames, cfg, fast=True)
        if f_trades != rl_trades:
            raise RuntimeError("research_lib --fast took other trades than the step loop")
        t_bp, bp_trades = run_backtesting(ohlc, weight)
        rl_run.add(bars / total)
        rl_loop.add(bars / loop)
        fr_run.add(bars / f_total)
        fr_loop.add(bars / f_loop)
        bp.add(bars / t_bp)
        r_bp.add(t_bp / total)
        r_bp_loop.add(t_bp / loop)
        f_bp.add(t_bp / f_total)
        f_bp_loop.add(t_bp / f_loop)
        if with_backtrader:
            t_btr, btr_trades = run_backtrader(ohlc, weight)
            btr.add(bars / t_btr)
            r_btr.add(t_btr / total)
            r_btr_loop.add(t_btr / loop)
            f_btr.add(t_btr / f_total)
            f_btr_loop.add(t_btr / f_loop)
        if with_vectorbt:
            t_vb, vb_trades = run_vectorbt(groups, weight)
            vb.add(bars / t_vb)
            f_vb.add(t_vb / f_total)
            f_vb_loop.add(t_vb / f_loop)
        if rep == 0:
            checks.append(f"{label}: backtesting.py vs research_lib: "
                          f"{_check('backtesting.py', bp_trades, rl_trades)} "
                          f"({len(rl_trades)} fills over {bars:,} bars)")
            if with_backtrader:
                checks.append(f"{label}: backtrader vs research_lib: "
                              f"{_check('backtrader', btr_trades, rl_trades)}")
            if with_vectorbt:
                checks.append(f"{label}: vectorbt vs research_lib: "
                              f"{_check('vectorbt', vb_trades, rl_trades)}; vectorbt vs "
                              f"backtesting.py: {_check('vectorbt', vb_trades, bp_trades)}")
    rl_run.note = f"{bars:,} bars"
    figs = [rl_run, rl_loop, fr_run, fr_loop, bp] + ([btr] if with_backtrader else [])
    figs += [vb] if with_vectorbt else []
    figs += [r_bp, r_bp_loop, f_bp, f_bp_loop]
    figs += [r_btr, r_btr_loop, f_btr, f_btr_loop] if with_backtrader else []
    figs += [f_vb, f_vb_loop] if with_vectorbt else []
    return figs, checks


def has_vectorbt() -> bool:
    import importlib.util

    return importlib.util.find_spec("vectorbt") is not None


def main(repeats: int = 5, universes: Sequence[int] = (10, 100), big_repeats: int = 3,
         big_backtrader: bool = True, singles: Sequence[str] = ("^GSPC", "BTC-USD"),
         vectorbt: bool | None = None, cold_repeats: int = 1) -> str:
    from ._common import table

    vectorbt = has_vectorbt() if vectorbt is None else vectorbt
    out, checks = [], []
    if cold_repeats > 0:
        out += research_lib_cold(cold_repeats)
    if vectorbt and cold_repeats > 0:
        out += vectorbt_cold(cold_repeats)
    for sym in singles:
        f, c = compare(sym, [(sym, sym)], repeats, with_vectorbt=vectorbt)
        out += f
        checks += c
    for n in universes:
        f, c = compare(f"{n} series (replicated real)", universe(n), big_repeats,
                       with_backtrader=n <= 10 or big_backtrader, with_vectorbt=vectorbt)
        out += f
        checks += c
    libs = "backtesting.py vs backtrader" + (" vs vectorbt" if vectorbt else "")
    text = table(out, f"research_lib vs {libs}: SMA(10/20) long-only")
    return text + "\n\nTrade check (entry and exit bars of every fill):\n  " + "\n  ".join(checks)


def cli(argv: Sequence[str] | None = None) -> int:
    import argparse
    import logging
    import os

    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="rounds per single series (5)")
    ap.add_argument("--big-repeats", type=int, default=3, help="rounds per universe (3)")
    ap.add_argument("--universes", default="10,100",
                    help="comma-separated universe sizes (default 10,100; '' for none)")
    ap.add_argument("--singles", default="^GSPC,BTC-USD",
                    help="comma-separated single series (default ^GSPC,BTC-USD)")
    ap.add_argument("--no-backtrader-big", action="store_true",
                    help="no backtrader on universes above 10 series (slow)")
    ap.add_argument("--no-vectorbt", action="store_true", help="leave vectorbt out")
    ap.add_argument("--cold-repeats", type=int, default=1,
                    help="new processes timing vectorbt's compilation (default 1; 0: none)")
    a = ap.parse_args(argv)
    from research_lib.telemetry import configure

    configure(level=logging.CRITICAL)
    print(f"load average {os.getloadavg()[0]:.2f} at start ({os.cpu_count()} CPUs)")
    print(main(repeats=a.repeats, big_repeats=a.big_repeats,
               universes=[int(x) for x in a.universes.split(",") if x.strip()],
               singles=[x for x in a.singles.split(",") if x.strip()],
               big_backtrader=not a.no_backtrader_big,
               vectorbt=False if a.no_vectorbt else None, cold_repeats=a.cold_repeats))
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
