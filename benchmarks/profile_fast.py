"""Where a ``--fast`` replay's time goes: pass 1 (gate, closes, features, predictions for
the whole clock), the quiet blocks, the steps run by the step code, their JSON records and
the batched ledger commits. Run: ``python -m benchmarks.profile_fast [--repeats N]``
(also part of ``python -m benchmarks``, section ``profile``).

Each part is timed by wrapping the function that does it (``time.perf_counter``), so the
parts add up to the loop minus a little bookkeeping; figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ._common import FULL_END, FULL_START, Figure, run_timed, table

PARTS = (("pass1", "pass 1 (gate, closes, features, predictions)"),
         ("quiet", "quiet blocks (numpy tests + their rows)"),
         ("_step", "steps run by the step code"),
         ("log", "their JSON records"),
         ("encode", "column blocks encoded (decisions, positions as Parquet)"),
         ("commit", "ledger commits (batched)"),
         ("summary", "the summary (read back from the ledger)"))


@contextlib.contextmanager
def _timed_parts(acc: collections.Counter, calls: collections.Counter) -> Iterator[None]:
    import research_lib.paper.fast as fr
    from research_lib.ledger import Ledger
    from research_lib.session import Session

    targets = [(fr, "quiet_run", "quiet"), (fr, "pass1", "pass1"), (fr, "run_step", "_step"),
               (Session, "log_decisions", "log"), (fr.Batch, "to_commit", "encode"),
               (Ledger, "commit_rows", "commit"), (Session, "summary", "summary")]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]

    def wrap(f: Any, key: str) -> Any:
        def g(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t
                calls[key] += 1
        return g

    for (obj, name, key), (_, _, f) in zip(targets, saved, strict=True):
        setattr(obj, name, wrap(f, key))
    try:
        yield
    finally:
        for obj, name, f in saved:
            setattr(obj, name, f)


def profile_fast(data: Any, repeats: int,
                 cases: Sequence[tuple[str, int, str | None]]) -> list[tuple[str, list[Figure]]]:
    out = []
    for label, n, model in cases:
        syms, src = data.csv(n)
        figs = {k: Figure(f"  {text}", "ms") for k, text in PARTS}
        whole = Figure("whole run() (set-up, loop, summary): throughput", "symbol-bars/s")
        setup = Figure("set-up (data, sanity suite, models, ledger)", "ms")
        loop = Figure("loop (everything after set-up)", "ms")
        counts: collections.Counter = collections.Counter()
        steps = 0
        for _ in range(repeats):
            acc: collections.Counter = collections.Counter()
            calls: collections.Counter = collections.Counter()
            with _timed_parts(acc, calls):
                r = run_timed(symbols=syms, source=src, start=FULL_START, end=FULL_END,
                              model=model, config_dir=data.config(n),
                              run_dir=data.run_dir("pfast"), fast=True)
            loop.add(r.loop_s * 1e3)
            setup.add(r.setup_s * 1e3)
            whole.add(r.throughput_total)
            for k, _ in PARTS:
                figs[k].add(acc[k] * 1e3)
            counts, steps = calls, r.steps
        figs["quiet"].note = f"{counts['quiet']} calls"
        figs["_step"].note = f"{counts['_step']} of {steps} steps"
        figs["commit"].note = f"{counts['commit']} transactions"
        out.append((label, [whole, setup, loop, *figs.values()]))
    return out


CASES = (("1 symbol, SMA baseline", 1, "baseline:sma_cross"),
         ("100 symbols, ONNX router", 100, None))


def main(argv: list[str] | None = None) -> None:
    import logging

    from research_lib.telemetry import configure

    from .paper import Data

    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile_fast")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    configure(level=logging.CRITICAL)
    data = Data()
    for label, figs in profile_fast(data, args.repeats, CASES):
        print(table(figs, f"Profile of a --fast replay, {label} (full history)"))
        print()


if __name__ == "__main__":
    main()
