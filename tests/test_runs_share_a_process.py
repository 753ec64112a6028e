"""Runs that share a process (threads of one sweep worker, a notebook running two
sessions at once) keep their own run id in every log record and their own
``events.jsonl``: the run id is a context variable, and a session's event file takes only
its run's records (``telemetry.RunFilter``). Their ledgers equal solo runs."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from research_lib.data.frames import FramesSource
from research_lib.ledger_read import deterministic_dump
from research_lib.session import run_session
from research_lib.telemetry import get_run_id, set_run_id
from tests.kit.paper import random_walk


def _frames(seed: int) -> dict:
    return {s: random_walk(260, seed=seed + k, symbol=s, freq="B")
            for k, s in enumerate(["AAA", "BBB"])}


def _run(base, name: str, seed: int, barrier: threading.Barrier | None = None):
    if barrier is not None:
        barrier.wait()
    return run_session(symbols=["AAA", "BBB"], source=FramesSource(_frames(seed)),
                       model="baseline:sma_cross", start="2021-03-01", run_id=name,
                       run_dir=str(base / name))


def _run_ids(res) -> set[str]:
    lines = (res.ledger_path.parent / "events.jsonl").read_text().splitlines()
    assert len(lines) > 100  # decisions of every step: the file has something to say
    return {json.loads(x)["run_id"] for x in lines}


def test_two_sessions_in_threads_when_run_at_once_then_each_event_file_holds_only_its_run(
        tmp_path):
    barrier = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda a: _run(tmp_path / "together", *a, barrier),
                        [("run-a", 1), ("run-b", 7)])
    assert _run_ids(a) == {"run-a"}
    assert _run_ids(b) == {"run-b"}
    for res, (name, seed) in ((a, ("run-a", 1)), (b, ("run-b", 7))):
        solo = _run(tmp_path / "solo", name, seed)
        assert deterministic_dump(res.ledger_path) == deterministic_dump(solo.ledger_path)


def test_run_id_when_set_in_a_thread_then_other_threads_keep_theirs():
    set_run_id("main-thread-run")
    seen = {}

    def worker() -> None:
        set_run_id("worker-run")
        seen["worker"] = get_run_id()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["worker"] == "worker-run"
    assert get_run_id() == "main-thread-run"


def test_sessions_when_they_end_out_of_order_then_the_package_logger_level_is_restored(
        tmp_path):
    """The first session attached saves the package logger's level and the last one
    detached restores it: two sessions overlapping in threads used to leave it at INFO."""
    import logging

    root = logging.getLogger("research_lib")
    saved = root.level
    root.setLevel(logging.WARNING)
    try:
        started, release = threading.Barrier(2), threading.Event()

        def slow_model_run(name: str, seed: int, wait: bool):
            from research_lib.baselines import SmaCross

            class Slow(SmaCross):  # the first run holds its session open until released
                def predict(self, symbols, X=None):
                    if wait:
                        release.wait(5)
                    return super().predict(symbols, X)

            started.wait()
            return run_session(symbols=["AAA", "BBB"], source=FramesSource(_frames(seed)),
                               router=Slow(["AAA", "BBB"]), start="2021-03-01", run_id=name,
                               run_dir=str(tmp_path / name), max_steps=30)

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(slow_model_run, "first", 1, True)
            second = pool.submit(slow_model_run, "second", 3, False)
            second.result(timeout=60)  # the second ends while the first still runs
            release.set()
            first.result(timeout=60)
        assert root.level == logging.WARNING
    finally:
        root.setLevel(saved)
