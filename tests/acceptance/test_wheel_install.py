"""Done means (issue 14, "installable anywhere"): the wheel, installed into a fresh virtual
environment outside the checkout, runs from an empty folder, offline: a replay on the
packaged defaults, ``init``, a replay in the new home, a report, ``runs list`` and
``runs export``.

The wheel is built offline from a copy of the checkout (``pip wheel --no-build-isolation``,
so no stale ``build/`` folder leaks in) and installed with ``--no-deps --no-index``; its
dependencies are the ones this interpreter already has, reached through a ``.pth`` file
(``python -m venv --system-site-packages`` from a venv gives the base interpreter's
packages, not the venv's). The checkout's editable install is not on that path (``.pth``
files inside a folder a ``.pth`` adds are not run), which the test checks; the
dependencies' Jupyter data files (nbconvert's templates) are reached through
``JUPYTER_PATH`` for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.acceptance

IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", "reports",
                                "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
                                ".ruff_cache", ".ipynb_checkpoints", "benchmarks", "tests")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
         ) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RESEARCH_LIB_HOME", "PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND",
                        "JUPYTER_PATH", "RESEARCH_LIB_RUN_ID")}
    env.update({
        # offline: any HTTP(S) client goes to a closed local port; pip never asks an index
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "", "no_proxy": "", "PIP_NO_INDEX": "1",
        # a new user: an empty data cache and home folder
        "RESEARCH_LIB_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "userhome"),
        "FLAG_ASSET_SPECIFIC_MODELS": "0",
        # the dependencies' data files (nbconvert's HTML templates) sit under the prefix
        # they were installed in; a real install puts them under the new venv's prefix
        "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
    })
    (tmp_path / "userhome").mkdir()
    return env


def test_wheel_when_installed_outside_the_checkout_then_every_command_works_offline(
        tmp_path):
    env = _offline_env(tmp_path)
    # ---- build the wheel from a clean copy of the checkout
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", str(tmp_path / "dist"), str(src)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("research_lib-*.whl")

    # ---- the defaults travel inside it, byte for byte (so the sha256 pins hold)
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n.removeprefix("research_lib/home/"): zf.read(n) for n in zf.namelist()
                   if n.startswith("research_lib/home/")}
    in_git = {str(p.relative_to(ROOT)): p.read_bytes()
              for folder in ("config", "models", "notebooks")
              for p in sorted((ROOT / folder).iterdir())
              if p.is_file() and not p.name.startswith(".")}
    assert shipped == in_git

    # ---- a fresh venv outside the checkout; the wheel alone, dependencies by a .pth
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    vpy = venv / "bin" / "python"
    purelib = Path(_run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()"
                         "['purelib'])"], tmp_path, env).stdout.strip())
    (purelib / "_project_deps.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if Path(p).is_dir()) + "\n")
    _run([str(vpy), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
         tmp_path, env)
    where = _run([str(vpy), "-c", "import research_lib; print(research_lib.__file__)"],
                 tmp_path, env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel, not the checkout
    rl = str(venv / "bin" / "research-lib")

    # ---- an empty folder: the packaged defaults, runs written here
    empty = tmp_path / "empty"
    empty.mkdir()
    version = _run([rl, "--version"], empty, env).stdout.strip()
    assert version == "research-lib 0.1.0"
    r = _run([rl, "paper", "--symbols", "SPY,QQQ", "--source", "sample", "--start",
              "2018-01-02", "--end", "2018-06-29", "--json"], empty, env)
    first = json.loads(r.stdout)
    assert Path(first["ledger"]).is_relative_to(empty / "runs")
    assert first["steps"] > 100 and first["state"] == "ACTIVE"

    # ---- init a home and work in it
    _run([rl, "init", "proj"], empty, env)
    home = empty / "proj"
    assets = (home / "config" / "assets.yaml").read_text()
    for model in sorted((home / "models").glob("*.onnx")):
        assert hashlib.sha256(model.read_bytes()).hexdigest() in assets, model.name
    r = _run([rl, "paper", "--symbols", "SPY,QQQ", "--source", "sample", "--start",
              "2018-01-02", "--end", "2018-12-31", "--run-id", "wheel-run", "--json"],
             home, env)
    run = json.loads(r.stdout)
    assert run["ledger"] == str(home / "runs" / "wheel-run" / "ledger.sqlite")
    assert run["fills"] > 0

    # ---- a report (the existing way: its notebook runs its own replay)
    r = _run([rl, "report", "paper_session", "-p", "symbols", "SPY,QQQ", "-p", "start",
              "2018-01-02", "-p", "end", "2018-12-31"], home, env)
    html = home / "reports" / "paper_session.html"
    assert html.is_file(), r.stdout
    assert html.read_text().count("data:image/png;base64,") >= 3

    # ---- runs: listed and exported
    listed = json.loads(_run([rl, "runs", "list", "--json"], home, env).stdout)
    ids = {r["run_id"] for r in listed}
    assert "wheel-run" in ids and len(ids) == 2  # this replay and the report's
    _run([rl, "runs", "export", "wheel-run", "--format", "parquet", "--out", "export"],
         home, env)
    files = sorted(p.name for p in (home / "export").iterdir())
    assert "equity.parquet" in files and "orders.parquet" in files and "meta.json" in files
    import pandas as pd

    eq = pd.read_parquet(home / "export" / "equity.parquet")
    assert len(eq) == run["steps"]
    assert eq["equity"].iloc[-1] == pytest.approx(run["final_equity"])

    # ---- nothing was written inside the installed package
    installed = Path(where).parent
    assert not any((installed / "home").glob("runs")) and not (installed / "reports").exists()
