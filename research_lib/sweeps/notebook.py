"""Notebook sweeps (issue 15): run a report notebook (``notebooks/NAME.ipynb``) once per
point of a parameter grid with papermill, through the same joblib backends as replay
sweeps, and write one HTML page per point plus an index page::

    research-lib sweep --notebook paper_session --grid symbols='SPY;QQQ' \\
      --grid start=2016-01-01,2017-01-01 --jobs 2 --out sweeps/pages

OUT holds ``sweep.json`` (definition and id), ``pages/<sweep id>-pNNNN.html`` (each
point's report, exported as ``research-lib report`` exports it), ``results.parquet`` (one
row per point: its parameters, page, status, error, attempts, wall seconds) and
``index.html`` (every point, linked to its page). A re-run of the same sweep skips the
points whose page was written; a point whose worker died is run again (``retries``).

Each point starts its own Jupyter kernel in the worker that runs it; the kernel's
environment is set for that worker process while it runs (:func:`research_lib.notebooks.
kernel_env`), so a worker runs one notebook at a time (the clusters made here have one
thread per worker).
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotebookError
from .grid import expand
from .point import CLAIMS, claim_path, run_id_of, stake_claim

PAGES = "pages"
INDEX = "index.html"
COLUMNS = ("point", "run_id", "page", "status", "error", "attempts", "lost_worker", "wall_s")


@dataclass
class NotebookSweepResult:
    """What :func:`notebook_sweep` returns (as :class:`research_lib.sweeps.SweepResult`)."""

    sweep_id: str
    out: Path
    table: Any  # pandas.DataFrame
    results_path: Path
    index_path: Path
    ran: int
    skipped: int
    failed: int


def _plain(value: Any) -> Any:
    """A notebook parameter as papermill writes it: a date (``--grid start=2017-01-01``
    reads as one) becomes its ISO text, as the notebooks take dates."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def run_notebook_point(index: int, name: str, params: dict[str, Any], page: str, run_id: str,
                       claims: str) -> dict[str, Any]:
    """Execute notebook ``name`` with ``params`` and export it to ``page``; never raises
    (a failure is the row's ``status="failed"`` and ``error``). A worker task."""
    from ..notebooks import execute, to_html

    t0 = time.perf_counter()
    attempts, lost = stake_claim(claims, run_id)
    row: dict[str, Any] = {"point": index, "run_id": run_id, "page": Path(page).name,
                           "status": "ok", "error": "", "attempts": attempts,
                           "lost_worker": lost}
    try:
        executed = execute(name, params, None, progress=False)
        try:
            to_html(executed, page)
        finally:
            shutil.rmtree(executed.parent, ignore_errors=True)  # execute()'s temp folder
    except Exception as exc:  # recorded, and the sweep goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["wall_s"] = time.perf_counter() - t0
    claim_path(claims, run_id).unlink(missing_ok=True)
    return row


def _checker(name: str) -> Callable[[Mapping[str, Any]], None]:
    """A check that a point's keys are parameters of notebook ``name``."""
    import papermill as pm

    from ..notebooks import available, notebooks_dir
    from ..paths import safe_id

    safe_id(name, "--notebook NAME", rule=f"a notebook name from {available()}")
    src = notebooks_dir() / f"{name}.ipynb"
    if not src.is_file():
        raise NotebookError(f"--notebook {name!r}: no such notebook in {notebooks_dir()}; "
                            f"available: {available()}")
    declared = sorted(pm.inspect_notebook(str(src)))

    def check(point: Mapping[str, Any]) -> None:
        for key in point:
            if key not in declared:
                raise ConfigError(f"--grid {key}: notebook {name!r} has no parameter "
                                  f"{key!r}; its parameters: {', '.join(declared)}")

    return check


def notebook_frame(rows: Iterable[Mapping[str, Any]], points: list[dict[str, Any]]) -> Any:
    """One row per point in point order: its parameters, then :data:`COLUMNS`."""
    import pandas as pd

    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in keys]
    table = [{**{k: points[int(r["point"])].get(k) for k in keys},
              **{c: r.get(c) for c in COLUMNS}}
             for r in sorted(rows, key=lambda r: int(r["point"]))]
    df = pd.DataFrame(table, columns=[*keys, *COLUMNS])
    for k in keys:  # one type per column for Parquet
        if len({type(v) for v in df[k] if v is not None}) > 1:
            df[k] = [None if v is None else str(v) for v in df[k]]
    for c in ("status", "error", "page", "lost_worker"):
        df[c] = df[c].fillna("").astype(str)
    df["attempts"] = df["attempts"].fillna(1).astype("int64")
    return df


def write_index(table: Any, params: list[str], path: Path, name: str, sweep_id: str) -> Path:
    """``OUT/index.html``: every point, its parameters and status, linked to its page."""
    from ..notebooks import write_atomic

    cols = [*params, "status", "page", "error", "wall_s"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)

    def cell(c: str, v: Any) -> str:
        if c == "page":
            return f'<a href="{PAGES}/{html.escape(str(v))}">{html.escape(str(v))}</a>' \
                if v else ""
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"
        return html.escape("" if v is None else str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(c, r[c])}</td>" for c in cols) + "</tr>"
                   for r in table.to_dict("records"))
    ok = int((table["status"] == "ok").sum())
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Notebook sweep "
            f"{html.escape(name)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
            "font-size:12px}</style></head><body>"
            f"<h1>Notebook sweep: {html.escape(name)}</h1><p>{html.escape(sweep_id)}: "
            f"{len(table)} points, {ok} ok, {len(table) - ok} failed; one page per point."
            f"</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            "</body></html>")
    write_atomic(path, page)
    return path


def notebook_sweep(name: str, grid: Mapping[str, Iterable[Any]] | None = None, *,
                   points: Sequence[Mapping[str, Any]] | None = None, out: str | Path,
                   jobs: int = 1, backend: str = "local", scheduler: str | None = None,
                   retries: int = 1, progress: Callable[[int, int], None] | None = None
                   ) -> NotebookSweepResult:
    """Run notebook ``name`` once per point of ``grid`` (cartesian product) or ``points``
    (each a dict of the notebook's parameters) and write a page per point and
    ``index.html`` (see the module's text)::

        import research_lib as rl
        res = rl.notebook_sweep("paper_session", {"symbols": ["SPY", "QQQ"]},
                                out="sweeps/pages", jobs=2)
        res.index_path
    """
    from ..parallel import check_backend
    from ..project import resolve_path
    from .run import _check_out, _previous_rows, _write, run_points, sweep_id_of

    check_backend(backend, jobs, scheduler)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries must be a whole number >= 0, got {retries!r}")
    if out is None or not str(out).strip():
        raise ConfigError("--out is empty; pass a folder for the sweep")
    check = _checker(name)
    if grid is not None:
        grid = {k: [_plain(v) for v in (vs if isinstance(vs, Iterable) and not
                                        isinstance(vs, str) else [vs])]
                for k, vs in grid.items()} if isinstance(grid, Mapping) else grid
    plist = expand(grid, None if points is None else
                   [{k: _plain(v) for k, v in p.items()} if isinstance(p, Mapping) else p
                    for p in points], check=check)
    definition = {"notebook": name, "points": plist}
    sid = sweep_id_of(definition)
    out_dir = Path(resolve_path(out)).absolute()
    _check_out(out_dir, sid, definition)
    pages = out_dir / PAGES
    pages.mkdir(exist_ok=True)
    claims = out_dir / CLAIMS
    claims.mkdir(exist_ok=True)
    done = {i: r for i, r in _previous_rows(out_dir).items()
            if (pages / str(r.get("page", ""))).is_file()}
    todo = [i for i in range(len(plist)) if i not in done]
    rows = dict(done)
    results_path = out_dir / "results.parquet"
    if progress is not None:
        progress(len(rows), len(plist))

    def accept(row: dict[str, Any]) -> None:
        rows[int(row["point"])] = row
        _write(notebook_frame(rows.values(), plist), results_path)
        if progress is not None:
            progress(len(rows), len(plist))

    for i in todo:
        claim_path(claims, run_id_of(sid, i)).unlink(missing_ok=True)
    run_points(todo, run_notebook_point,
               lambda i: (i, name, plist[i], str(pages / f"{run_id_of(sid, i)}.html"),
                          run_id_of(sid, i), str(claims)),
               lambda i: claim_path(claims, run_id_of(sid, i)), accept,
               backend=backend, jobs=jobs, scheduler=scheduler, retries=retries)
    table = notebook_frame(rows.values(), plist)
    _write(table, results_path)
    keys: list[str] = []
    for p in plist:
        keys += [k for k in p if k not in keys]
    index = write_index(table, keys, out_dir / INDEX, name, sid)
    return NotebookSweepResult(sid, out_dir, table, results_path, index, len(todo),
                               len(done), int((table["status"] != "ok").sum()))
