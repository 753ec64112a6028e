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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..parallel import BACKENDS, check_backend
from .grid import expand, split_point
from .point import CLAIMS, METRICS, claim_path, read_claim, run_id_of, run_point, write_claim

__all__ = ["BACKENDS", "SweepResult", "results_frame", "sweep", "sweep_id_of"]

RESULTS = "results.parquet"
DEFINITION = "sweep.json"
INT_METRICS = ("fills", "steps")
BASE_COLUMNS = ("point", "run_id", "status", "error", "attempts", "lost_worker", "wall_s")


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


def _previous_rows(out: Path) -> dict[int, dict[str, Any]]:
    """The rows finished ``ok`` in OUT's ``results.parquet``, by point."""
    path = out / RESULTS
    if not path.is_file():
        return {}
    import pandas as pd

    df = pd.read_parquet(path)
    return {int(r["point"]): r for r in df.to_dict("records") if r.get("status") == "ok"}


def _previous(out: Path) -> dict[int, dict[str, Any]]:
    """Rows already finished ``ok`` in OUT's results (with their ledger still there)."""
    return {i: r for i, r in _previous_rows(out).items()
            if (out / "runs" / str(r["run_id"])).is_dir()}


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
    for k in INT_METRICS:  # counts: whole numbers, <NA> for a failed point (a re-run
        df[k] = df[k].astype("Float64").astype("Int64")  # reads them back as floats)
    df["attempts"] = df["attempts"].fillna(1).astype("int64")
    df["lost_worker"] = df["lost_worker"].fillna("").astype(str)
    return df


def _write(df: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, engine="pyarrow", index=False)
    os.replace(tmp, path)


def sweep(symbols: str | Sequence[str], grid: Mapping[str, Iterable[Any]] | None = None, *,
          points: Sequence[Mapping[str, Any]] | None = None, out: str | Path,
          model: str | None = None, flag: str | int | None = None, source: str = "sample",
          start: str | None = None, end: str | None = None, interval: str = "1d",
          fast: bool = True, config_dir: str | Path | None = None, jobs: int = 1,
          backend: str = "local", scheduler: str | None = None, report: bool = True,
          retries: int = 1,
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
    (``run_session(settings=)``), and ``model``, ``flag``, ``symbols``, ``start``, ``end``,
    ``fast``.
    ``backend``: ``"local"`` (joblib's loky processes, ``jobs`` of them), ``"dask"``
    (joblib's Dask backend on ``distributed.Client(scheduler)``, or a ``LocalCluster`` of
    ``jobs`` workers when no address is given) or ``"serial"``. ``progress(done, total)``
    is called in this process as points finish. Nothing process-wide changes: config,
    flag and paths are arguments of each run.

    A worker process that dies under a point (killed, out of memory) breaks joblib's pool:
    the points already finished stay as they are, the points that were running on the
    pool (their claims in ``OUT/claims``) are run again up to ``retries`` times, then
    recorded ``failed`` with the error; the others are run again. Dask reschedules a lost
    worker's task itself (up to its ``distributed.scheduler.allowed-failures``). A row's
    ``attempts`` and ``lost_worker`` say what happened; a re-run finishes failed points.
    """
    from ..config import config_dir as default_config_dir
    from ..config import parse_symbols
    from ..project import resolve_path

    check_backend(backend, jobs, scheduler)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries must be a whole number >= 0, got {retries!r}")
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
    total = len(plist)
    if progress is not None:
        progress(len(done), total)

    def accept(row: dict[str, Any]) -> None:
        rows[int(row["point"])] = row
        _write(results_frame(rows.values(), plist), results_path)
        if progress is not None:
            progress(len(rows), total)

    if todo:
        claims = out_dir / CLAIMS
        claims.mkdir(exist_ok=True)
        for i in todo:  # a claim left by an earlier sweep process: this run starts afresh
            claim_path(claims, run_id_of(sid, i)).unlink(missing_ok=True)
        run_points(todo, run_point, lambda i: (i, plist[i], kwargs_of(plist[i]), str(runs),
                                               run_id_of(sid, i), str(claims)),
                   lambda i: claim_path(claims, run_id_of(sid, i)), accept,
                   backend=backend, jobs=jobs, scheduler=scheduler, retries=retries)
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


def run_points(todo: list[int], task: Callable[..., dict[str, Any]],
               args_of: Callable[[int], tuple[Any, ...]], claim_of: Callable[[int], Path],
               accept: Callable[[dict[str, Any]], None], *, backend: str, jobs: int,
               scheduler: str | None, retries: int) -> None:
    """Run ``task(*args_of(i))`` for every point of ``todo`` through joblib, calling
    ``accept(row)`` as each finishes; a pool broken by a lost worker is replaced and the
    unfinished points run again (see :func:`sweep`). ``claim_of(i)`` is the claim file
    the task writes while it runs (:func:`research_lib.sweeps.point.stake_claim`); its
    row carries ``point`` and ``run_id`` (``args_of(i)[4]``)."""
    from joblib import Parallel, delayed

    from ..parallel import backend as parallel_backend
    from ..parallel import lost_worker_errors

    lost_errors = lost_worker_errors()
    finished: set[int] = set()
    blind = 0  # pool losses with no claimed point to blame
    with parallel_backend(backend, jobs, scheduler):
        pending = list(todo)
        while pending:
            tasks = (delayed(task)(*args_of(i)) for i in pending)
            try:
                for row in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                    finished.add(int(row["point"]))
                    accept(row)
            except lost_errors as exc:
                cause = _cause(exc)
                suspects = 0
                for i in pending:
                    if i in finished:
                        continue
                    args = args_of(i)
                    path = claim_of(i)
                    claim = read_claim(path)
                    if claim is None:  # not started: simply run again
                        continue
                    suspects += 1
                    if int(claim.get("attempt", 1)) > retries:
                        finished.add(i)
                        path.unlink(missing_ok=True)
                        accept(_lost_row(i, args[4], claim, cause))
                    else:
                        write_claim(path, {**claim, "cause": cause})
                blind = blind + 1 if not suspects else 0
                if blind > retries:
                    for i in pending:
                        if i not in finished:
                            finished.add(i)
                            args = args_of(i)
                            accept(_lost_row(i, args[4], {"attempt": blind}, cause))
            pending = [i for i in pending if i not in finished]


def _cause(exc: BaseException) -> str:
    """A lost worker's error in one line: its class and the exit codes loky reports
    (``{SIGKILL(-9)}``), else the message's first line."""
    lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
    codes = [x for x in lines if "exit code" in x]
    return f"{type(exc).__name__}: " + (codes[0] if codes else lines[0] if lines else "")


def _lost_row(index: int, run_id: str, claim: Mapping[str, Any], cause: str) -> dict[str, Any]:
    """The row of a point whose worker died under it ``claim["attempt"]`` times."""
    n = int(claim.get("attempt", 1))
    where = f" (last on pid {claim.get('pid')} on {claim.get('host')})" if "pid" in claim else ""
    lost = "; ".join(x for x in (str(claim.get("lost", "")),
                                 f"attempt {n}{where} did not finish: {cause}") if x)
    return {"point": index, "run_id": run_id, "status": "failed",
            "error": f"its worker process died {n} time(s) while running this point "
                     f"({cause}); run the sweep again to retry it, or look for what kills "
                     "the worker (memory)",
            "attempts": n, "lost_worker": lost, "wall_s": float("nan"),
            **{m: float("nan") for m in METRICS}}


def _varying(points: list[dict[str, Any]]) -> list[str]:
    """The keys of a list of points whose values differ between points."""
    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in keys]
    return [k for k in keys if len({json.dumps(p.get(k), default=str) for p in points}) > 1]
