"""A run's files beside its ledger: where ``<run_dir>/<run_id>/ledger.sqlite`` is, the run's
lock (:class:`RunLock`, one writer per run) and the halt marker ``ledger.sqlite.halted`` a
step that could not be committed leaves (:mod:`research_lib.ledger` writes and reads them).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from .errors import LedgerError
from .paths import inside, safe_id

LEDGER_NAME = "ledger.sqlite"
HALT_MARKER_SUFFIX = ".halted"
LEDGER_WRITE_FAILED = "LEDGER_WRITE_FAILED"


def discard_empty_run(path: str | Path) -> bool:
    """Remove a run folder a failed setup left: its ledger (and lock, WAL) if the ledger
    holds no step, then the folder if nothing else is in it. True if removed."""
    p = Path(path)
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            steps = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    if steps:
        return False
    try:
        for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm"),
                  p.with_name(p.name + ".lock")):
            f.unlink(missing_ok=True)
        p.parent.rmdir()  # only if empty: never a file that was there before
    except OSError:
        return False
    return True



def ledger_path(run_dir: str | Path, run_id: str, field: str = "run id") -> Path:
    """``<run_dir>/<run_id>/ledger.sqlite``; ``run_id`` must be a plain name
    (:func:`~research_lib.paths.safe_id`) and the folder must stay inside ``run_dir``."""
    folder = Path(run_dir) / safe_id(run_id, field)
    inside(run_dir, folder, field)
    return folder / LEDGER_NAME



def halt_marker_path(ledger: str | Path) -> Path:
    """``<run>/ledger.sqlite.halted``: the account halted on a step the ledger could not take."""
    p = Path(ledger)
    return p.with_name(p.name + HALT_MARKER_SUFFIX)



def resolve_ledger(run: str | Path, run_dir: str | Path | None = None) -> Path:
    """A run id (folder under ``run_dir``), a run folder or a ledger file -> the ledger file.
    A relative path is taken from the project home (:func:`research_lib.project.resolve_path`)."""
    from .project import resolve_path

    p = resolve_path(run)
    if p.is_file():
        return p
    if p.is_dir():
        return p / LEDGER_NAME
    if run_dir is not None:
        return ledger_path(run_dir, str(run))
    return p / LEDGER_NAME



def fsync_dir(folder: Path) -> None:
    """Make a new name in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - not POSIX
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a folder
        pass
    finally:
        os.close(fd)



class RunLock:
    """An exclusive advisory lock on ``<ledger>.lock`` held by the one process writing a run:
    a second session on the same run is refused instead of interleaving steps."""

    def __init__(self, ledger: Path) -> None:
        self.path = ledger.with_name(ledger.name + ".lock")
        self._fh: Any = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LedgerError(
                f"{self.path.parent}: the run is in use by {holder}; stop that session first"
            ) from None
        fh.seek(0)
        fh.truncate()
        import os

        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None



def read_halt_marker(marker: Path) -> tuple[str, str, float | None]:
    """(reason, from_state, equity) from a halt marker; an empty one still halts."""
    try:
        data = json.loads(marker.read_text() or "{}")
    except (OSError, ValueError):
        data = {}
    reason = data.get("reason") or (f"{LEDGER_WRITE_FAILED}: a step could not be committed "
                                    f"(marker {marker.name}, reason not recorded)")
    return str(reason), str(data.get("from_state") or "UNKNOWN"), data.get("equity")
