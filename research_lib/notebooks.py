"""Run a report notebook with papermill and export HTML without code cells.

``run_report("data_sanity", {"symbols": "SPY,QQQ"})`` executes ``notebooks/data_sanity.ipynb``
in a fresh kernel and writes ``reports/data_sanity.html``. Figures are kept: the kernel
starts without ``MPLBACKEND=Agg`` (which would make papermill drop every figure).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import project_root
from .errors import NotebookError
from .paths import inside, safe_id
from .project import HOME_ENV, find_home, resolve_path, work_root
from .telemetry import get_logger, get_run_id, log_event

log = get_logger("notebooks")


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def reports_dir() -> Path:
    """``reports/`` of the project home, else of the working directory (never the
    packaged defaults)."""
    return work_root() / "reports"


def available() -> list[str]:
    return sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))


def kernelspec_dir() -> Path:
    """A private Jupyter data dir whose ``python3`` kernel is this interpreter, so a user's
    or the system's ``python3`` kernelspec can never run our notebooks in another env.

    Made fresh for every call (``mkdtemp``: a new, owner-only folder nobody else could have
    planted or linked), its ``kernel.json`` created exclusively without following links;
    the caller removes it (:func:`kernel_env` does)."""
    root = Path(tempfile.mkdtemp(prefix="research_lib-jupyter-"))
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True, mode=0o700)
    want = json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (research_lib)",
        "language": "python",
    }, indent=1)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(spec_dir / "kernel.json", flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(want)
    return root


@contextmanager
def kernel_env():
    """Environment for kernels: our ``python3`` kernelspec first on JUPYTER_PATH, the
    run id and project root passed on, and no non-inline MPLBACKEND (papermill would
    drop every figure)."""
    saved = {k: os.environ.get(k) for k in ("MPLBACKEND", "JUPYTER_PATH",
                                            "RESEARCH_LIB_RUN_ID", "RESEARCH_LIB_HOME")}
    if saved["MPLBACKEND"] is not None and "inline" not in saved["MPLBACKEND"]:
        del os.environ["MPLBACKEND"]
    private = kernelspec_dir()
    paths = [str(private)] + ([saved["JUPYTER_PATH"]] if saved["JUPYTER_PATH"] else [])
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)
    os.environ.setdefault("RESEARCH_LIB_RUN_ID", get_run_id())
    home = find_home()  # with none the kernel finds none either: the packaged defaults
    if home is not None:
        os.environ.setdefault(HOME_ENV, str(home))
    try:
        yield
    finally:
        shutil.rmtree(private, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(name: str, parameters: dict[str, Any] | None = None,
            out_ipynb: str | Path | None = None,
            progress: bool | dict[str, Any] = True) -> Path:
    """Run notebook ``name`` with papermill; ``progress`` is papermill's ``progress_bar``
    (a bool, or tqdm keywords: the CLI passes its own, research_lib.cli.progress)."""
    import papermill as pm

    safe_id(name, "report NAME", rule=f"a notebook name from {available()}")
    src = notebooks_dir() / f"{name}.ipynb"
    if not src.is_file():
        raise NotebookError(f"no notebook {name!r} in {notebooks_dir()}; available: {available()}")
    params = dict(parameters or {})
    declared = pm.inspect_notebook(str(src))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise NotebookError(
            f"notebook {name!r} has no parameter {unknown[0]!r}; parameters: {sorted(declared)}"
        )
    src = inside(notebooks_dir(), src, f"report {name}")  # a link out of notebooks/: refused
    out = Path(out_ipynb) if out_ipynb else Path(tempfile.mkdtemp(prefix="rl-nb-")) / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    log_event(log, "notebook_start", notebook=name, parameters=params)
    with kernel_env():
        try:
            pm.execute_notebook(str(src), str(out), parameters=params, progress_bar=progress,
                                cwd=str(work_root()), kernel_name="python3")
        except pm.PapermillExecutionError as exc:
            raise NotebookError(
                f"notebook {name!r} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                f"(executed copy kept at {out})"
            ) from None
    log_event(log, "notebook_done", notebook=name, executed=str(out))
    return out


# The export template: nbconvert's "lab" page without the three scripts it points at a
# CDN (require.js and MathJax as <script src>, mermaid.js as a dynamic import): our reports
# need none of them, and a report must open offline with nothing fetched. Charts bring
# their own library inline (research_lib.tearsheet.interactive.plotly_js).
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
TITLE_KEY = "research_lib_title"  # output metadata naming the page (tearsheet.html.TITLE_KEY)


def report_title(nb: Any, default: str) -> str:
    """The page title: the first output that names one (``TITLE_KEY`` in its metadata),
    else the notebook's first markdown heading, else ``default``."""
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            title = (out.get("metadata") or {}).get(TITLE_KEY)
            if title:
                return str(title)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return default


def to_html(ipynb: str | Path, html: str | Path) -> Path:
    """Export without input cells or prompts; images embedded as base64; a real page
    title; no script fetched from anywhere (:data:`OFFLINE_TEMPLATE`)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    nb.metadata["title"] = report_title(nb, Path(html).stem)
    for k, cell in enumerate(nb.cells):  # papermill's injected cell has a random id
        cell["id"] = f"cell-{k}"
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, template_name="lab",
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2":
                                                              OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(html, body)
    except OSError as exc:
        raise NotebookError(f"cannot write the report {html}: {exc.strerror or exc}; the "
                            "previous report there is kept as it was; free disk space or "
                            "pass --out to a writable place") from exc
    return html


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a failed write (a full disk) leaves the previous file as it was."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain write would have made it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_report(name: str, parameters: dict[str, Any] | None = None,
               out: str | Path | None = None, keep_notebook: bool = False,
               progress: bool | dict[str, Any] = True) -> Path:
    html = resolve_path(out) if out else reports_dir() / f"{name}.html"
    # executed in a fresh temporary folder: a failed run never overwrites a kept notebook
    executed = execute(name, parameters, None, progress=progress)
    try:
        path = to_html(executed, html)
        if keep_notebook:
            kept = html.with_suffix(".ipynb")
            try:
                write_atomic(kept, executed.read_text(encoding="utf-8"))
            except OSError as exc:
                raise NotebookError(f"cannot write {kept}: {exc.strerror or exc}; the "
                                    "previous one is kept") from exc
    finally:
        shutil.rmtree(executed.parent, ignore_errors=True)  # execute()'s mkdtemp folder
    log_event(log, "report_written", notebook=name, html=str(path))
    return path
