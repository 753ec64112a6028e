"""``python -m benchmarks.big_universe``: one replay over many replicated symbols (issue 15,
"Big universes"), and what it cost: wall time (set-up and loop), ledger and
``events.jsonl`` sizes, risk events (cash clips by code), and how many symbols ever traded.

    python -m benchmarks.big_universe --symbols 300                     # csv folder, 2 years
    python -m benchmarks.big_universe --symbols 300 --long              # one long csv file
    python -m benchmarks.big_universe --symbols 300 --decision-log changes

The symbols are REPLICATED REAL SERIES (``benchmarks._common.universe`` over the sample's
real daily series that cover the window: ^GSPC, ^IXIC, ^VIX, BTC-USD, ETH-USD, LTC-USD,
under new names), not invented prices. Model: the router (universal model, flag 0), the
shipped config; window 2017-01-01 .. 2018-12-31 (two years; GOOG ends in 2013 and is left
out). Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from research_lib.ledger_columns import bulk_count


def _write_long(folder: Path, pairs: list[tuple[str, str]]) -> str:
    import pandas as pd

    from research_lib.data import load

    real = load(sorted({b for _, b in pairs}), source="sample")
    parts = [real[b][["open", "high", "low", "close", "volume"]].assign(symbol=n)
             for n, b in pairs]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "long.csv"
    pd.concat(parts).to_csv(path, index_label="timestamp")
    return f"csv:{path}"


BASES = ("^GSPC", "^IXIC", "^VIX", "BTC-USD", "ETH-USD", "LTC-USD")
START, END = "2017-01-01", "2018-12-31"


def measure(n: int, long: bool = False, fast: bool = False, decision_log: str | None = None,
            keep: Path | None = None, start: str = START, end: str = END) -> dict[str, Any]:
    from research_lib.flags import KillSwitch
    from research_lib.session import Session, SessionSpec

    from ._common import tempdir, universe, write_replicated_csv

    base = keep or tempdir("big")
    pairs = universe(n, BASES)
    source = (_write_long(base / "data", pairs) if long
              else write_replicated_csv(base / "data", pairs))
    run_dir = base / "runs"
    kw: dict[str, Any] = {"symbols": [p[0] for p in pairs], "source": source,
                          "run_dir": run_dir, "replicas": True, "fast": fast,
                          "kill_switch": KillSwitch(base / "kill.flag", env={}),
                          "flag": 0, "log_file": True, "run_id": "big",
                          "start": start, "end": end}
    if decision_log is not None:
        kw["decision_log"] = decision_log
    t0 = time.perf_counter()
    res = Session(SessionSpec(**kw)).run()
    wall = time.perf_counter() - t0
    if res.exit_code != 0:
        raise RuntimeError(f"session failed: {res.summary.get('error')}")
    run = Path(res.ledger_path).parent
    ledger_bytes = sum(p.stat().st_size for p in run.glob("ledger.sqlite*"))
    log_bytes = (run / "events.jsonl").stat().st_size
    c = sqlite3.connect(f"file:{res.ledger_path}?mode=ro", uri=True)
    try:
        risk = dict(c.execute("SELECT code, COUNT(*) FROM risk_events GROUP BY code"))
        traded = c.execute("SELECT COUNT(DISTINCT symbol) FROM fills").fetchone()[0]
        decisions = bulk_count(c, "decisions")  # either store (a --fast run's column blocks)
        positions = bulk_count(c, "positions")
    finally:
        c.close()
    with open(run / "events.jsonl", encoding="utf-8") as fh:
        log_lines = sum(1 for _ in fh)
    s = res.summary
    return {"symbols": n, "long_file": long, "fast": fast,
            "decision_log": decision_log or "full", "wall_s": round(wall, 2),
            "steps": s["steps"], "ledger_mb": round(ledger_bytes / 1e6, 2),
            "events_jsonl_mb": round(log_bytes / 1e6, 2), "events_jsonl_lines": log_lines,
            "risk_events": sum(risk.values()), "risk_events_by_code": risk,
            "decision_rows": decisions, "position_rows": positions,
            "symbols_traded": traded, "orders": s["orders"], "fills": s["fills"],
            "denied": s["denied"], "clipped": s.get("clipped"),
            "position_size": s.get("position_size"),
            "return_pct": round(s["return_pct"], 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.big_universe",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--long", action="store_true", help="one long csv file, not a folder")
    ap.add_argument("--fast", action="store_true", help="the fast replay engine")
    ap.add_argument("--decision-log", default=None, choices=("full", "changes"))
    args = ap.parse_args(argv)
    from research_lib.telemetry import configure

    configure(level=logging.CRITICAL)  # stderr quiet; events.jsonl is written as always
    out = measure(args.symbols, long=args.long, fast=args.fast,
                  decision_log=args.decision_log)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
