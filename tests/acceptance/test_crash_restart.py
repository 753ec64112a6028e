"""SIGKILL fault injection and Ctrl+C twice mid-step, through the ``research-lib paper`` CLI.

**Kill and resume.** A session (SPY, QQQ, BTC-USD over 2018: 365 daily steps, the ONNX
router with the class models, about 100 orders) runs as a subprocess with
``RESEARCH_LIB_STEP_DELAY_MS=2`` (the session sleeps 2 ms in every step between deciding and
committing, so a kill can be aimed at a step). The test picks a random step k, waits until k
steps are committed, waits a random 0-3 ms more (so the kill lands while step k is being
decided, sleeping, committing, or just after), sends SIGKILL, then runs
``research-lib paper --resume RUN`` to the end. Checked for every kill:

* the final ledger's :func:`~research_lib.ledger_read.deterministic_dump` equals that of one
  uninterrupted run (every order, fill, equity row, decision and state change);
* no fill lost or doubled: :func:`tests.kit.crash.fills_vs_orders` (unique client
  order ids in ``fills``, each order denied / submitted / filled / rejected at most once,
  fills == filled orders, submitted == filled + rejected + open) and the counts equal the
  uninterrupted run's.

CI runs 4 kills, one at a random step in each quarter of the run (under ~20 s). The slow
suite runs 100 random kill points (two at a time) and prints its figures::

    make slow        # or: .venv/bin/python -m pytest -m slow -s tests/acceptance/test_crash_restart.py

Both draw the kill points from ``RESEARCH_LIB_FAULT_SEED`` (random when unset); a failure
names the seed and the step, so it can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from research_lib.ledger import Ledger
from research_lib.ledger_read import bulk_connection, deterministic_dump
from tests.kit.crash import (
    CRASH_ARGS,
    CRASH_CONFIG,
    CRASH_STEPS,
    LedgerWatch,
    fills_vs_orders,
    run_paper,
    sigkill,
    start_paper,
)

pytestmark = pytest.mark.acceptance

DELAY_MS = 2.0


def fault_seed() -> int:
    raw = os.environ.get("RESEARCH_LIB_FAULT_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("crash_ref")
    res = run_paper(tmp, [*CRASH_ARGS, "--run-dir", str(tmp / "runs"), "--run-id",
                          "uninterruptedrun", "--json"])
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["steps"] == CRASH_STEPS and summary["fills"] > 50
    ledger = Path(summary["ledger"])
    return {"dump": deterministic_dump(ledger), "counts": fills_vs_orders(ledger)}


def kill_and_resume(tmp: Path, k: int, rng: random.Random, tag: str) -> dict:
    """Kill a session once k steps are committed (plus a random 0-3 ms), resume it to the
    end; return the finished ledger and what happened."""
    run_id = f"crashrun{tag}"
    tmp.mkdir(parents=True, exist_ok=True)
    runs = tmp / "runs"
    ledger = runs / run_id / "ledger.sqlite"
    proc = start_paper(tmp, [*CRASH_ARGS, "--run-dir", str(runs), "--run-id", run_id],
                       delay_ms=DELAY_MS)
    watch = LedgerWatch(ledger)
    try:
        watch.wait_for(proc, k)
        time.sleep(rng.uniform(0.0, 1.5 * DELAY_MS / 1e3))
        sigkill(proc)
        at_kill = watch.steps()
    finally:
        watch.close()
        if proc.poll() is None:
            proc.kill()
    res = run_paper(tmp, ["--resume", run_id, "--run-dir", str(runs), "--config-dir",
                          CRASH_CONFIG, "--json"])
    assert res.returncode == 0, f"resume after a kill at step {k}: {res.stderr[-2000:]}"
    summary = json.loads(res.stdout)
    assert summary["stopped"] == "end_of_data" and summary["steps"] == CRASH_STEPS
    return {"k": k, "committed_at_kill": at_kill, "ledger": ledger,
            "resumed_steps": summary["steps_this_session"]}


def check_against(ref: dict, got: dict, seed: int) -> None:
    where = f"seed={seed} kill after {got['committed_at_kill']} committed steps (k={got['k']})"
    counts = fills_vs_orders(got["ledger"])
    assert counts == ref["counts"], f"{where}: {counts} != {ref['counts']}"
    dump = deterministic_dump(got["ledger"])
    for table in ref["dump"]:
        assert dump[table] == ref["dump"][table], f"{where}: table {table} differs"
    assert got["committed_at_kill"] + got["resumed_steps"] == CRASH_STEPS, where


def test_sigkill_at_random_steps_then_resume_gives_the_uninterrupted_ledger(
        tmp_path, uninterrupted):
    seed = fault_seed()
    rng = random.Random(seed)
    q = (CRASH_STEPS - 2) // 4
    points = [rng.randint(1 + i * q, i * q + q) for i in range(4)]  # one per quarter
    for i, k in enumerate(points):
        got = kill_and_resume(tmp_path / f"k{i}", k, rng, f"{i:03d}")
        check_against(uninterrupted, got, seed)


@pytest.mark.slow
def test_sigkill_at_100_random_steps_then_resume_gives_the_uninterrupted_ledger(
        tmp_path, uninterrupted):
    """The slow suite: 100 kill points drawn uniformly from steps 1..363, two at a time."""
    seed = fault_seed()
    rng = random.Random(seed)
    points = [rng.randint(1, CRASH_STEPS - 2) for _ in range(100)]
    rngs = [random.Random(rng.random()) for _ in points]
    t0 = time.monotonic()

    def one(i: int) -> dict:
        got = kill_and_resume(tmp_path / f"k{i}", points[i], rngs[i], f"{i:03d}")
        check_against(uninterrupted, got, seed)
        return got

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(one, range(len(points))))
    at = sorted(g["committed_at_kill"] for g in done)
    print(f"\nSIGKILL fault injection: seed={seed} kills={len(done)} violations=0 "
          f"killed after {at[0]}..{at[-1]} committed steps (median {at[len(at) // 2]}), "
          f"{len(set(at))} distinct steps; wall {time.monotonic() - t0:.1f}s")


# ------------------------------------------------------------------ Ctrl+C twice
def test_two_sigints_mid_step_finish_that_step_commit_it_and_exit_zero(tmp_path):
    runs = tmp_path / "runs"
    ledger = runs / "sigint" / "ledger.sqlite"
    # 300 ms per step between deciding and committing: the signals land inside a step
    proc = start_paper(tmp_path, [*CRASH_ARGS, "--model", "baseline:sma_cross", "--run-dir",
                                  str(runs), "--run-id", "sigint"], delay_ms=300)
    watch = LedgerWatch(ledger)
    try:
        n = watch.wait_for(proc, 3, changed=True)  # step n-1 has just been committed
        time.sleep(0.05)  # now step n is decided and sleeping before its commit
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        watch.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped: signal" in out and "Traceback" not in err
    with Ledger.open(ledger, readonly=True) as led:
        st = led.load_state()  # opens, passes quick_check, cash and positions match fills
        n_steps, n_eq, n_dec, n_pos = bulk_connection(ledger).execute(
            "SELECT (SELECT COUNT(*) FROM steps), (SELECT COUNT(*) FROM equity), "
            "(SELECT COUNT(DISTINCT step) FROM decisions), "
            "(SELECT COUNT(DISTINCT step) FROM positions)").fetchone()
    assert st.last_step + 1 == n + 1  # the step in flight was finished and committed
    assert n_steps == n_eq == n_dec == n_pos == n + 1  # and it is whole
