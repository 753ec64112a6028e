"""Progress bars for the commands that can run long (replays, training, reports).

The library only calls back (``progress(done, total)``); the bar is drawn here, with tqdm on
stderr, and only when it helps: stderr is a terminal, the output is not ``--json``, and the
work has run for :data:`DELAY_S` seconds (a short command prints no bar at all).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DELAY_S = 2.0


def wanted(json_output: bool = False) -> bool:
    """A bar is drawn only for a person watching: stderr a terminal, output not JSON."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not json_output and bool(isatty and isatty())


@contextmanager
def progress_bar(desc: str, unit: str, enabled: bool
                 ) -> Iterator[Callable[[int, int | None], None] | None]:
    """A ``progress(done, total)`` callback drawing a tqdm bar (None when not ``enabled``);
    the bar is removed when the block ends, so the command's own output stays clean."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    pb = tqdm(desc=desc, unit=unit, file=sys.stderr, delay=DELAY_S, leave=False,
              dynamic_ncols=True)

    def update(done: int, total: int | None) -> None:
        if total is not None and pb.total != total:
            pb.total = total
        if done > pb.n:
            pb.update(done - pb.n)

    try:
        yield update
    finally:
        pb.close()


def papermill_progress(enabled: bool) -> bool | dict[str, object]:
    """What ``papermill.execute_notebook(progress_bar=...)`` takes: its per-cell tqdm bar
    with the same rules (stderr, after DELAY_S, removed at the end), or no bar."""
    if not enabled:
        return False
    return {"file": sys.stderr, "delay": DELAY_S, "leave": False, "unit": "cell",
            "desc": "report"}
