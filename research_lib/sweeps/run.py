"""``research_lib.sweep(...)``: a parameter sweep, each point a normal replay, executed
through joblib (loky processes by default; Dask distributed with ``backend="dask"``).

OUT holds ``sweep.json`` (the sweep's definition and id), ``runs/<run id>/`` (one run folder
per point, run id = sweep id + point index), ``results.parquet`` (one row per point,
rewritten as points finish) and ``sweep.html``. A re-run of the same sweep into the same OUT
skips the points already finished ``ok``; a failed point is run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .grid import expand, split_point
from .point import METRICS, run_id_of, run_point

BACKENDS = ("local", "dask", "serial")
RESULTS = "results.parquet"
DEFINITION = "sweep.json"
BASE_COLUMNS = ("point", "run_id", "status", "error", "wall_s")


@dataclass
class SweepResult:
    """What :func:`sweep` returns: the results table (one row per point, in point order),
    where it was written, and how many points ran, were skipped (already ok) or failed."""

    sweep_id: str
    out: Path
    table: Any  # pandas.DataFrame
    results_path: Path
    report_path: Path | None
    ran: int
    skipped: int
    failed: int


def _definition(symbols: Sequence[str], points: list[dict[str, Any]], base: dict[str, Any]
                ) -> dict[str, Any]:
    return {"symbols": list(symbols), "points": points,
            **{k: v for k, v in sorted(base.items())}}


def sweep_id_of(definition: Mapping[str, Any]) -> str:
    """``sweep-<12 hex>``: a hash of the definition, so the same sweep has the same id."""
    text = json.dumps(definition, sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_out(out: Path, sweep_id: str, definition: dict[str, Any]) -> None:
    """OUT is new, or holds this very sweep (a re-run); another sweep's OUT is refused."""
    f = out / DEFINITION
    if f.is_file():
        try:
            have = json.loads(f.read_text(encoding="utf-8")).get("sweep_id")
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{f}: unreadable ({exc}); choose another --out") from None
        if have != sweep_id:
            raise ConfigError(f"--out {out} holds sweep {have}, not this one ({sweep_id}): "
                              "its grid, symbols, model or window differ; choose another "
                              "--out or delete that folder")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is a folder that holds other files; choose a new or "
                          "empty folder")
    out.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps({"sweep_id": sweep_id, "definition": definition}, indent=1,
                              sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, f)


def _previous(out: Path) -> dict[int, dict[str, Any]]:
    """Rows already finished ``ok`` in OUT's results (with their ledger still there)."""
    path = out / RESULTS
    if not path.is_file():
        return {}
    import pandas as pd

    df = pd.read_parquet(path)
    rows = {}
    for r in df.to_dict("records"):
        if r.get("status") == "ok" and (out / "runs" / str(r["run_id"])).is_dir():
            rows[int(r["point"])] = r
    return rows


def results_frame(rows: Iterable[Mapping[str, Any]], points: list[dict[str, Any]]) -> Any:
    """The results table: one row per point in point order; the parameter columns (each
    sweep key, as named) first, then the metrics, run id, status, error, wall seconds."""
    import pandas as pd

    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in keys]
    table = []
    for r in sorted(rows, key=lambda r: int(r["point"])):
        p = points[int(r["point"])]
        table.append({**{k: p.get(k) for k in keys},
                      **{k: r.get(k) for k in (*METRICS, *BASE_COLUMNS)}})
    df = pd.DataFrame(table, columns=[*keys, *METRICS, *BASE_COLUMNS])
    for k in keys:  # one type per column for Parquet: a mixed column becomes text
        kinds = {type(v) for v in df[k] if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            df[k] = [None if v is None else str(v) for v in df[k]]
    df["status"] = df["status"].astype(str)
    df["error"] = df["error"].fillna("").astype(str)
    return df


def _write(df: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, engine="pyarrow", index=False)
    os.replace(tmp, path)


def _parallel_context(stack: ExitStack, backend: str, jobs: int,
                      scheduler: str | None) -> str:
    """Enter joblib's backend for ``backend``; returns the joblib backend name."""
    from joblib import parallel_config

    if backend == "serial":
        stack.enter_context(parallel_config(backend="sequential"))
        return "sequential"
    if backend == "local":
        stack.enter_context(parallel_config(backend="loky", n_jobs=jobs))
        return "loky"
    from distributed import Client, LocalCluster  # the dask extra

    if scheduler:
        client = stack.enter_context(Client(scheduler))
    else:  # one thread per worker: a run's log handler is per process
        cluster = stack.enter_context(LocalCluster(n_workers=jobs, threads_per_worker=1,
                                                   processes=True, dashboard_address=None))
        client = stack.enter_context(Client(cluster))
    del client
    stack.enter_context(parallel_config(backend="dask"))
    return "dask"


def sweep(symbols: str | Sequence[str], grid: Mapping[str, Iterable[Any]] | None = None, *,
          points: Sequence[Mapping[str, Any]] | None = None, out: str | Path,
          model: str | None = None, flag: str | int | None = None, source: str = "sample",
          start: str | None = None, end: str | None = None, interval: str = "1d",
          fast: bool = True, config_dir: str | Path | None = None, jobs: int = 1,
          backend: str = "local", scheduler: str | None = None, report: bool = True,
          progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run every point of ``grid`` (cartesian product) or ``points`` (a list of override
    dicts) as a replay of ``symbols`` and collect one row per point::

        import research_lib as rl
        res = rl.sweep("SPY,QQQ", {"risk.max_position_pct": [0.1, 0.15],
                                   "signal.target_weight": [0.05, 0.1]},
                       model="baseline:sma_cross", start="2016-01-01", end="2017-12-31",
                       out="sweeps/first", jobs=2)
        res.table.sort_values("sharpe")

    Keys: ``risk.*`` (``run_session(risk=)``), ``signal.*`` and ``session.*``
    (``run_session(settings=)``), and ``model``, ``flag``, ``symbols``, ``start``, ``end``.
    ``backend``: ``"local"`` (joblib's loky processes, ``jobs`` of them), ``"dask"``
    (joblib's Dask backend on ``distributed.Client(scheduler)``, or a ``LocalCluster`` of
    ``jobs`` workers when no address is given) or ``"serial"``. ``progress(done, total)``
    is called in this process as points finish. Nothing process-wide changes: config,
    flag and paths are arguments of each run.
    """
    from joblib import Parallel, delayed

    from ..config import config_dir as default_config_dir
    from ..config import parse_symbols
    from ..project import resolve_path

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1, got {jobs!r}")
    if scheduler and backend != "dask":
        raise ConfigError(f"--scheduler {scheduler} needs --backend dask")
    if not isinstance(source, str):
        raise ConfigError(f"source= must be a source name such as 'sample' or 'csv:PATH' "
                          f"(a sweep records it), got {type(source).__name__}")
    if out is None or not str(out).strip():
        raise ConfigError("--out is empty; pass a folder for the sweep")
    syms = parse_symbols(symbols)
    plist = expand(grid, points)
    cdir = Path(resolve_path(config_dir) if config_dir else default_config_dir()).absolute()
    base = {"model": model, "flag": flag, "source": source, "start": start, "end": end,
            "interval": interval, "fast": bool(fast)}
    definition = _definition(syms, plist, base)
    sid = sweep_id_of(definition)
    out_dir = Path(resolve_path(out)).absolute()
    _check_out(out_dir, sid, definition)
    runs = out_dir / "runs"
    runs.mkdir(exist_ok=True)

    done = _previous(out_dir)
    todo = [i for i in range(len(plist)) if i not in done]
    for i in todo:  # a failed or cut point's folder is ours (inside OUT): start it afresh
        folder = runs / run_id_of(sid, i)
        if folder.is_dir() and folder.parent == runs:
            shutil.rmtree(folder)

    def kwargs_of(p: dict[str, Any]) -> dict[str, Any]:
        kw = {"symbols": syms, "source": source, "start": start, "end": end,
              "interval": interval, "model": model, "flag": flag, "fast": bool(fast),
              "config_dir": str(cdir), "mode": "replay"}
        kw.update(split_point(p))
        return kw

    rows = dict(done)
    results_path = out_dir / RESULTS
    total, finished = len(plist), len(done)
    if progress is not None:
        progress(finished, total)
    if todo:
        with ExitStack() as stack:
            _parallel_context(stack, backend, jobs, scheduler)
            tasks = (delayed(run_point)(i, plist[i], kwargs_of(plist[i]), str(runs),
                                        run_id_of(sid, i)) for i in todo)
            for row in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                rows[int(row["point"])] = row
                finished += 1
                _write(results_frame(rows.values(), plist), results_path)
                if progress is not None:
                    progress(finished, total)
    table = results_frame(rows.values(), plist)
    _write(table, results_path)
    report_path = None
    if report:
        from .report import write_report

        report_path = write_report(table, list(plist[0]) if grid is not None else
                                   _varying(plist), runs, out_dir / "sweep.html", sid)
    failed = int((table["status"] != "ok").sum())
    return SweepResult(sid, out_dir, table, results_path, report_path, len(todo),
                       len(done), failed)


def _varying(points: list[dict[str, Any]]) -> list[str]:
    """The keys of a list of points whose values differ between points."""
    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in keys]
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in points}) > 1]
