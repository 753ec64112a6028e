"""Helpers for the crash tests: drive ``research-lib paper`` as a subprocess, watch its
ledger from outside, kill it, and check that no fill was lost or doubled (the watching,
killing and checking are :mod:`research_lib.faults`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

# the drill helpers live in the library (research-lib ready runs the same drill)
from research_lib.faults import LedgerWatch, fills_vs_orders, paper_cmd, sigkill
from research_lib.session import STEP_DELAY_ENV

__all__ = ["CRASH_ARGS", "CRASH_CONFIG", "CRASH_STEPS", "LedgerWatch", "cli_env",
           "fills_vs_orders", "paper_cmd", "run_paper", "sigkill", "start_paper"]

ROOT = Path(__file__).resolve().parents[2]

# the session the crash tests run: 365 daily steps (BTC trades every day), the ONNX router
# with the class models (FLAG_ASSET_SPECIFIC_MODELS=1): about 100 orders, all filled
CRASH_CONFIG = str(ROOT / "config")
CRASH_ARGS = ("--symbols", "SPY,QQQ,BTC-USD", "--start", "2018-01-01", "--end", "2018-12-31",
              "--config-dir", CRASH_CONFIG)
CRASH_STEPS = 365


def cli_env(delay_ms: float = 0.0) -> dict[str, str]:
    env = {**os.environ, "FLAG_TRADING_HALTED": "0", "FLAG_ASSET_SPECIFIC_MODELS": "1",
           "RESEARCH_LIB_HOME": str(ROOT)}
    env.pop(STEP_DELAY_ENV, None)
    if delay_ms:
        env[STEP_DELAY_ENV] = str(delay_ms)
    return env


def start_paper(cwd: Path, args: Sequence[str], delay_ms: float = 0.0) -> subprocess.Popen:
    """``research-lib paper ARGS`` in ``cwd`` (so a stray kill.flag elsewhere never counts)."""
    return subprocess.Popen(paper_cmd(*args), cwd=cwd, env=cli_env(delay_ms),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_paper(cwd: Path, args: Sequence[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(paper_cmd(*args), cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)
