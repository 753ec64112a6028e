"""The prototypes against research_lib's real replay: the same trades (symbol, fill step,
qty), and how close the rest of the rows come (equity, decisions' verdicts, risk events).

Run: ``python -m benchmarks.spikes.check [--universes 1,20,100] [--configs relaxed,default,tight,stress]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._common import (
    FULL_END,
    FULL_START,
    NO_COSTS,
    RELAXED_RISK,
    MemorySource,
    frames_for,
    run_timed,
    tempdir,
    universe,
    write_config,
)
from . import inputs as I

CASH = 1e7


def configs(n: int) -> dict[str, Path]:
    """relaxed: compare.py's (limits off, no costs, target 0.5 or 0.9/N, band 1.0);
    default: the repository's config (costs, 15% / 2x / 3% / 20% limits, target 0.10,
    cash buffer 2%); tight: default costs with a 1% daily-loss stop and a 6% drawdown halt
    and target 0.5 (clipped to 15%), so REDUCING and HALTED both happen; stress: 0.5x gross,
    a 3% price band, no cash buffer, no latches, so gross clips, breakers, price-band
    denials and price-band rejections at the fill happen."""
    w = 0.5 if n == 1 else round(0.9 / n, 6)
    base = tempdir("spikecfg")
    return {
        "relaxed": write_config(base / "relaxed", risk=RELAXED_RISK,
                                session={**NO_COSTS, "rebalance_band": 1.0,
                                         "initial_cash": CASH},
                                signal={"target_weight": w}),
        "default": write_config(base / "default", session={"initial_cash": CASH}),
        "tight": write_config(base / "tight", risk={"daily_loss_stop_pct": 0.01,
                                                    "max_drawdown_pct": 0.06},
                              session={"initial_cash": CASH}, signal={"target_weight": 0.5}),
        "stress": write_config(base / "stress", risk={"max_gross_leverage": 0.5,
                                                      "price_band_pct": 0.03,
                                                      "cash_buffer_pct": 0.0,
                                                      "daily_loss_stop_pct": 0.99,
                                                      "max_drawdown_pct": 0.99},
                               session={"initial_cash": CASH}),
    }


def reference(frames: dict[str, Any], config: Path, fast: bool = True) -> dict[str, list]:
    """research_lib's replay (``--fast``: the same ledger as the step loop) read back."""
    got: dict[str, Any] = {}

    def read(p: Path) -> None:
        from research_lib.ledger_read import bulk_connection

        # decisions and positions from both stores (a fast replay keeps them as column
        # blocks: research_lib.ledger_columns); the other tables attached behind them
        con = bulk_connection(p)
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        got["fills"] = q("SELECT symbol, step, qty FROM fills ORDER BY step, rowid")
        got["equity"] = q("SELECT step, cash, equity, gross, peak, state FROM equity "
                          "ORDER BY step")
        got["decisions"] = q("SELECT step, symbol, verdict, reason FROM decisions "
                             "ORDER BY step, symbol")
        got["risk"] = q("SELECT step, symbol, code FROM risk_events WHERE kind != 'data' "
                        "ORDER BY seq")
        got["states"] = q("SELECT step, scope, from_state, to_state FROM state_changes "
                          "ORDER BY seq")
        got["orders"] = q("SELECT symbol, step, qty FROM orders ORDER BY step, symbol")
        got["positions"] = q("SELECT count(*) FROM positions")[0][0]
        con.close()

    run_timed(symbols=list(frames), source=MemorySource(frames), start=FULL_START,
              end=FULL_END, model="baseline:sma_cross", config_dir=config,
              run_dir=tempdir("spikeref"), on_ledger=read, fast=fast)
    return got


def collect(run: Callable[..., None], inp: I.Inputs) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    run(inp, sink=lambda tabs: [parts.setdefault(k, []).append(v.copy())
                                for k, v in tabs.items()])
    return {k: np.concatenate(v) for k, v in parts.items()}


def compare(ref: dict[str, list], tabs: dict[str, np.ndarray], symbols: Sequence[str]) -> str:
    sym = list(symbols)
    f = tabs["fills"]
    got = sorted((sym[s], int(t), float(q)) for s, t, q in
                 zip(f["symbol"], f["step"], f["qty"], strict=True))
    want = sorted((s, int(t), float(q)) for s, t, q in ref["fills"])
    out = []
    if got == want:
        out.append(f"same trades ({len(got)} fills)")
    else:
        a, b = set(got), set(want)
        first = min((x[1] for x in a ^ b), default=None)
        out.append(f"DIFFERENT trades: {len(got)} vs {len(want)} fills, first differing "
                   f"fill step {first}; only prototype {sorted(a - b)[:2]}, only research_lib "
                   f"{sorted(b - a)[:2]}")
    eq = tabs["equity"]
    ref_eq = np.array([r[2] for r in ref["equity"]])
    if len(ref_eq) == len(eq):
        d = np.abs(eq["equity"] - ref_eq)
        out.append("equity bit-equal" if not d.any() else
                   f"equity max |diff| {d.max():.3g} (first at step {int(np.argmax(d > 0))})")
        states = [I.STATES[s] for s in eq["state"]]
        rs = [r[5] for r in ref["equity"]]
        out.append("states equal" if states == rs else
                   f"states differ ({sum(a != b for a, b in zip(states, rs, strict=True))} "
                   "steps)")
    else:
        out.append(f"equity rows {len(eq)} vs {len(ref_eq)}")
    dec = tabs["decisions"]
    gv = Counter(I.VERDICTS[v] for v in dec["verdict"])
    rv = Counter(r[2] for r in ref["decisions"])
    out.append("verdicts equal" if gv == rv and len(dec) == len(ref["decisions"]) else
               f"verdicts {dict(gv)} vs {dict(rv)}")
    gr = Counter(I.CODES[c] for c in tabs["risk_events"]["code"])
    rr = Counter(r[2] for r in ref["risk"])
    out.append(("risk-event codes equal " + str(dict(sorted(rr.items())))) if gr == rr
               else f"risk events {dict(gr)} vs {dict(rr)}")
    out.append(f"positions rows {len(tabs['positions'])} vs {ref['positions']}")
    acct = Counter(f"{r[2]}->{r[3]}" for r in ref["states"] if r[1] == "account")
    out.append("account states " + (", ".join(f"{k} x{v}" for k, v in sorted(acct.items()))
                                    or "none"))
    return "; ".join(out)


def check(universes: Sequence[int], names: Sequence[str],
          engines: dict[str, Callable[..., None]]) -> list[str]:
    lines = []
    for n in universes:
        pairs = [("^GSPC", "^GSPC")] if n == 1 else universe(n)
        frames = frames_for(pairs)
        label = "^GSPC" if n == 1 else f"{n} series"
        cfgs = configs(n)
        for name in names:
            ref = reference(frames, cfgs[name])
            inp = I.build(frames, list(frames), FULL_START, cfgs[name])
            for eng, run in engines.items():
                lines.append(f"{label}, {name} limits, {eng}: "
                             f"{compare(ref, collect(run, inp), list(frames))}")
                print(lines[-1], flush=True)
    return lines


def engines() -> dict[str, Callable[..., None]]:
    from . import account_nb

    out = {"numba": account_nb.run}
    try:
        from . import account_np
    except ImportError:  # pragma: no cover - while it is written
        return out
    out["numpy"] = account_np.run
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    from research_lib.telemetry import configure

    ap = argparse.ArgumentParser(prog="python -m benchmarks.spikes.check",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--universes", default="1,20,100")
    ap.add_argument("--configs", default="relaxed,default,tight,stress")
    ap.add_argument("--engines", default="numba,numpy")
    a = ap.parse_args(argv)
    configure(level=logging.CRITICAL)
    eng = {k: v for k, v in engines().items() if k in a.engines.split(",")}
    check([int(x) for x in a.universes.split(",")], a.configs.split(","), eng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
