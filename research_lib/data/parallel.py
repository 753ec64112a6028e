"""Loading many symbols at once: :func:`fetch_all`.

A source that reads one file per symbol (a ``csv:`` folder, the parquet ``cache``) is
read in a bounded number of threads through joblib's threading backend; parsing (pandas'
C reader, pyarrow) releases the GIL for most of its time. Every other source (a long
file parsed once, the shipped sample held in memory, network sources with their own rate
limits) is read serially. The frames are the same either way, returned in the order the
symbols were given; the error raised is the first symbol's in that order, as a serial
loop would raise it.

joblib ships with the ``sweep`` extra (and with scikit-learn); without it the loop is
serial.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

# below this many symbols threads cost more than they save
MIN_PARALLEL = 8
# at most this many threads, whatever the machine: the disk, not the cores, is the limit
MAX_JOBS = 8


def parallel_jobs(source: Any, n_symbols: int, jobs: int | None = None) -> int:
    """How many threads :func:`fetch_all` uses: 1 unless the source reads a file per
    symbol and there are at least :data:`MIN_PARALLEL` symbols; then ``jobs`` (default:
    the machine's cores), bounded by :data:`MAX_JOBS` and the number of symbols."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs={jobs!r}: pass a positive number of threads (1 = serial)")
    if n_symbols < MIN_PARALLEL or not getattr(source, "per_symbol_files", False):
        return 1
    want = jobs if jobs is not None else (os.cpu_count() or 1)
    return max(1, min(want, MAX_JOBS, n_symbols))


def fetch_all(source: Any, symbols: Sequence[str], fetch: Callable[[str], Any],
              jobs: int | None = None) -> dict[str, Any]:
    """``{symbol: fetch(symbol)}`` for every symbol, in threads when the source reads a
    file per symbol (:func:`parallel_jobs`)."""
    n = parallel_jobs(source, len(symbols), jobs)
    if n > 1:
        try:
            from joblib import Parallel, delayed
        except ImportError:  # the serving install has no joblib: serial, same frames
            n = 1
    if n == 1:
        return {s: fetch(s) for s in symbols}

    def one(sym: str) -> tuple[Any, BaseException | None]:
        try:
            return fetch(sym), None
        except Exception as exc:  # raised below in symbol order, as a serial loop would
            return None, exc

    results = Parallel(n_jobs=n, backend="threading")(delayed(one)(s) for s in symbols)
    out: dict[str, Any] = {}
    for sym, (frame, exc) in zip(symbols, results, strict=True):
        if exc is not None:
            raise exc
        out[sym] = frame
    return out
