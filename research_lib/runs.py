"""Runs as objects: find, list, show and export the runs under a run folder.

A run is a folder holding ``ledger.sqlite`` (:mod:`research_lib.run_files`), under the run
folder (``session.run_dir``, ``runs/`` of the project home; reports write theirs under
``runs/reports/``). Everything here reads the ledger through the existing readers
(:class:`~research_lib.ledger.Ledger`, :func:`~research_lib.ledger_read.read_run`,
:func:`~research_lib.paper.summary.compute_summary`); the tables and their columns are
those of :mod:`research_lib.paper.rows`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, LedgerError
from .run_files import LEDGER_NAME

HOW_TO_LIST = "list the runs with: research-lib runs list"
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class RunInfo:
    """One line of ``runs list``: what was run, over which span, how far, in what state."""

    run_id: str
    ledger: str
    created_at: str | None
    mode: str | None
    engine: str | None
    model: str
    dry_run: bool
    symbols: tuple[str, ...]
    first_step_ts: str | None
    last_step_ts: str | None
    steps: int
    state: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["symbols"] = list(self.symbols)
        return d


def runs_root(run_dir: str | Path | None = None) -> Path:
    """The run folder: ``run_dir``, else ``session.run_dir`` of the config (``runs``), by
    the one rule for relative paths."""
    from .halt import runs_folder

    return runs_folder(run_dir)


def ledgers(run_dir: str | Path | None = None) -> list[Path]:
    """Every ``<run>/ledger.sqlite`` under the run folder, one or two levels down
    (``runs/ID`` and ``runs/reports/ID``), in name order."""
    root = runs_root(run_dir)
    if not root.is_dir():
        return []
    found = list(root.glob(f"*/{LEDGER_NAME}")) + list(root.glob(f"*/*/{LEDGER_NAME}"))
    return sorted(p for p in found if p.is_file())


def find_run(run: str | Path, run_dir: str | Path | None = None) -> Path:
    """The ledger of ``run``: a run folder or ledger path, or a run id under the run folder
    (also under its ``reports/``). A ConfigError names the run and how to list runs."""
    from .paths import safe_id
    from .project import resolve_path

    text = os.fspath(run)
    if not text.strip():
        raise ConfigError(f"RUN is empty; pass a run id ({HOW_TO_LIST})")
    p = resolve_path(text)
    if p.is_file():
        return p
    if (p / LEDGER_NAME).is_file():
        return p / LEDGER_NAME
    root = runs_root(run_dir)
    if os.sep in text or (os.altsep and os.altsep in text):
        raise ConfigError(f"run {text!r}: no {LEDGER_NAME} at {str(p)!r}; pass a run folder "
                          f"or a run id ({HOW_TO_LIST})")
    safe_id(text, "RUN", rule=f"a run id ({HOW_TO_LIST})")
    hits = [q for q in ledgers(run_dir) if q.parent.name == text]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"run {text!r} is in {len(hits)} folders: "
                          f"{', '.join(str(h.parent) for h in hits)}; pass the run folder")
    raise ConfigError(f"no run {text!r} under {str(root)!r}; {HOW_TO_LIST} (or pass "
                      "--run-dir, or the run folder itself)")


def run_info(ledger: str | Path) -> RunInfo:
    """The :class:`RunInfo` of one ledger; an unreadable ledger gives a line whose state is
    ``UNREADABLE`` and whose ``error`` says why (a list never stops at one bad run)."""
    from .ledger import Ledger

    p = Path(ledger)
    try:
        with Ledger.open(p, readonly=True) as led:
            meta = led.meta()
            n, first, last = led.conn.execute(
                "SELECT COUNT(*), MIN(ts), MAX(ts) FROM steps").fetchone()
            state = led.load_state().state.value
    except LedgerError as exc:
        return RunInfo(run_id=p.parent.name, ledger=str(p), created_at=None, mode=None,
                       engine=None, model="?", dry_run=False, symbols=(), first_step_ts=None,
                       last_step_ts=None, steps=0, state="UNREADABLE", error=str(exc))
    spec = meta.get("spec") or {}
    return RunInfo(
        run_id=str(meta.get("run_id") or p.parent.name), ledger=str(p),
        created_at=meta.get("created_at"), mode=spec.get("mode"), engine=meta.get("engine"),
        model=spec.get("model") or "router", dry_run=bool(spec.get("dry_run")),
        symbols=tuple(meta.get("symbols") or ()), first_step_ts=first, last_step_ts=last,
        steps=int(n), state=state)


def list_runs(run_dir: str | Path | None = None) -> list[RunInfo]:
    """Every run under the run folder, newest first (by start time, then id)."""
    infos = [run_info(p) for p in ledgers(run_dir)]
    return sorted(infos, key=lambda r: (r.created_at or "", r.run_id), reverse=True)


def show_run(run: str | Path, run_dir: str | Path | None = None) -> dict[str, Any]:
    """One run: its :class:`RunInfo`, the summary computed from its ledger (as ``paper``
    prints it; latency percentiles over every recorded step), what it was started with
    (``spec``, ``source``, ``config_dir``) and the row count of each table."""
    import numpy as np

    from .ledger import COLUMNS, Ledger
    from .ledger_columns import BULK_TABLES, bulk_count
    from .paper.summary import compute_summary

    p = find_run(run, run_dir)
    info = run_info(p)
    if info.error:
        raise LedgerError(f"run {info.run_id}: {info.error}")
    with Ledger.open(p, readonly=True) as led:
        meta = led.meta()
        lat = np.array([r[0] for r in led.conn.execute(
            "SELECT e2d_ms FROM steps WHERE e2d_ms IS NOT NULL ORDER BY step")], dtype=float)
        pct = ({"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                "max_ms": float(lat.max())} if lat.size else
               {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")})
        summary = compute_summary(
            led.conn, run_id=info.run_id, ledger=str(p), mode=info.mode or "?",
            engine=info.engine or "?", dry_run=info.dry_run, model=info.model,
            symbols=list(info.symbols), proxies=meta.get("proxies") or {},
            initial_cash=float(meta.get("initial_cash", float("nan"))), state=info.state,
            latency_ms=pct, stopped="not recorded", committed=0, error=None, notes=())
        counts = {t: bulk_count(led.conn, t) if t in BULK_TABLES else
                  led.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COLUMNS}
    spec = meta.get("spec") or {}
    return {"info": info.to_dict(), "summary": summary, "spec": spec,
            "config_dir": meta.get("config_dir"), "tables": counts}


# ----------------------------------------------------------------------- export
def export_run(run: str | Path, fmt: str, out: str | Path,
               run_dir: str | Path | None = None) -> list[Path]:
    """Write each table of the run (as :func:`~research_lib.ledger_read.read_run` gives it:
    ``orders`` with status and fill, ``equity`` with ``pos_<SYMBOL>`` columns, ``fills``,
    ``positions``, ``decisions``, ...) to ``out/<table>.<fmt>``, and ``out/meta.json``.
    Files are written whole (a temporary file renamed); the run's files are only read."""
    from .ledger_read import read_run
    from .project import resolve_path

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not known; use one of: {', '.join(FORMATS)}")
    p = find_run(run, run_dir)
    folder = resolve_path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; pass a folder")
    if folder.resolve() == p.parent.resolve():
        raise ConfigError(f"--out {str(out)!r} is the run's own folder; pass another folder")
    tables = read_run(p)
    meta = tables.pop("meta")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        dest = folder / f"{name}.{fmt}"
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            # every table has its own time column (equity's index repeats its ts)
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {dest}: {exc.strerror or exc}; pass --out to a "
                              "writable folder with free space") from exc
        written.append(dest)
    dest = folder / "meta.json"
    dest.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")
    written.append(dest)
    return written
