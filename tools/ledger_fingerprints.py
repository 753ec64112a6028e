"""Fingerprints of the ledgers of a fixed set of varied paper sessions, to show that a
refactor changed no row: run it on two commits and compare the output.

    python tools/ledger_fingerprints.py > after.txt
    git worktree add /tmp/base <commit> && PYTHONPATH=/tmp/base python tools/ledger_fingerprints.py > before.txt
    diff before.txt after.txt

Each line: scenario, engine, sha256 of ``deterministic_dump`` (every table, wall-clock
columns and run id left out), and row counts of the tables that show what happened.
Sessions run on the shipped sample (real prices) and on synthetic random walks with bad
bars (labelled synthetic, built here, never shipped). Offline; ~1-2 minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def config(folder: Path, risk: dict[str, Any] | None = None,
           session: dict[str, Any] | None = None, signal: dict[str, Any] | None = None) -> Path:
    """The shipped config with some keys changed."""
    folder.mkdir(parents=True)
    src = ROOT / "config"
    shutil.copy(src / "assets.yaml", folder / "assets.yaml")
    for name, section, extra in (("risk.yaml", "risk", risk), ("session.yaml", "session", session)):
        d = yaml.safe_load((src / name).read_text())
        d[section].update(extra or {})
        if name == "session.yaml":
            d.setdefault("signal", {}).update(signal or {})
        (folder / name).write_text(yaml.safe_dump(d))
    return folder


def walks(n: int, seeds: list[int], bad: bool = False) -> Any:
    """Synthetic random walks (labelled synthetic); with ``bad``, a NaN close, a negative
    price and a +60% one-bar spike mid-window."""
    from research_lib.data.frames import FramesSource

    frames = {}
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        c = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.02, n)))
        o = np.concatenate([[100.0], c[:-1]])
        if bad and k == 0:
            c[n // 2] = np.nan
            c[n // 2 + 5] = -3.0
            c[n // 2 + 9] = c[n // 2 + 8] * 1.6
        idx = pd.date_range("2021-01-04", periods=n, freq="B", tz="UTC", name="timestamp")
        df = pd.DataFrame({"open": o, "high": np.fmax(o, c) * 1.001, "low": np.fmin(o, c) * 0.999,
                           "close": c, "volume": np.full(n, 1e6)}, index=idx)
        sym = f"SYN{k}"
        df.attrs = {"symbol": sym, "label": f"{sym} (synthetic)", "proxy_note": "synthetic"}
        frames[sym] = df
    return FramesSource(frames)


def scenarios(tmp: Path) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    eq = dict(symbols=["SPY", "QQQ"], source="sample", start="2016-01-01", end="2018-12-31")
    mixed = dict(symbols=["SPY", "BTC-USD", "ETH-USD"], source="sample", start="2017-01-01",
                 end="2018-06-30")
    tight = config(tmp / "tight", risk={"max_position_pct": 0.12, "daily_loss_stop_pct": 0.01,
                                        "max_drawdown_pct": 0.06, "price_band_pct": 0.04})
    shorts = config(tmp / "shorts", risk={"allow_short": True},
                    signal={"target_weight": 0.3})
    return [
        ("sma_equities", dict(eq, model="baseline:sma_cross"), {}),
        ("buy_hold_mixed", dict(mixed, model="baseline:buy_and_hold"), {}),
        ("router_flag0", dict(mixed), {"FLAG_ASSET_SPECIFIC_MODELS": "0"}),
        ("router_flag1", dict(mixed), {"FLAG_ASSET_SPECIFIC_MODELS": "1"}),
        ("router_shadow", dict(eq), {"FLAG_ASSET_SPECIFIC_MODELS": "shadow"}),
        ("dry_run", dict(eq, model="baseline:sma_cross", dry_run=True), {}),
        ("tight_limits_all_latches", dict(mixed, model="baseline:sma_cross",
                                          config_dir=str(tight)), {}),
        ("shorts_clipped_targets", dict(eq, model="baseline:sma_cross",
                                        config_dir=str(shorts)), {}),
        ("crypto_lots", dict(symbols=["BTC-USD", "ETH-USD"], source="sample",
                             start="2016-06-01", end="2019-12-31", model="baseline:sma_cross"),
         {}),
        ("bad_bars_synthetic", dict(symbols=["SYN0", "SYN1"], source=walks(300, [1, 2], True),
                                    model="baseline:sma_cross", start="2021-03-01"), {}),
        ("router_bad_bars_synthetic", dict(symbols=["SYN0", "SYN1", "SYN2"],
                                           source=walks(300, [3, 4, 5], True),
                                           start="2021-03-01"), {}),
    ]


def fingerprint(path: Path) -> tuple[str, dict[str, int]]:
    from research_lib.ledger_read import deterministic_dump

    dump = deterministic_dump(path)
    blob = json.dumps(dump, sort_keys=True, default=repr)
    # ledgers before 2026-12-01 recorded a source object by its repr (a memory address,
    # a determinism defect since fixed: data/source_base.source_label); compare without it
    blob = re.sub(r'source\\": \\"(<[^"\\\\]*? object at 0x[0-9a-f]+>|<frames>)\\"',
                  'source: <object>', blob).encode()
    counts = {t: len(dump[t]) for t in ("orders", "fills", "risk_events", "state_changes")
              if t in dump}
    return hashlib.sha256(blob).hexdigest()[:16], counts


def main() -> int:
    from research_lib.session import run_session

    out = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, kw, env in scenarios(tmp):
            for engine in ("step", "fast"):
                with mock.patch.dict(os.environ, env):  # restored after the run
                    res = run_session(**kw, fast=engine == "fast", run_dir=str(tmp / "runs"),
                                      run_id=f"{name}-{engine}", log_file=False)
                    digest, counts = fingerprint(res.ledger_path)
                    if name == "sma_equities" and engine == "step":  # and a resume of it
                        r1 = run_session(**kw, run_dir=str(tmp / "runs"), run_id="resumed",
                                         log_file=False, max_steps=300)
                        r2 = run_session(resume="resumed", run_dir=str(tmp / "runs"),
                                         log_file=False)
                        assert r2.ledger_path == r1.ledger_path
                        out.append(f"sma_equities_resumed step {fingerprint(r2.ledger_path)[0]}")
                out.append(f"{name} {engine} {digest} {json.dumps(counts, sort_keys=True)}")
                sys.stderr.write(out[-1] + "\n")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
