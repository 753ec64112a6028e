"""Done means (issue 14, "installable anywhere"): a test builds the wheel, installs it into
a fresh virtual environment outside the checkout and, from an empty folder, offline, runs
``init``, a replay, a report on THAT run (``report paper_session --run RUN``) and an export
of it (``runs export RUN --format parquet|csv``); then a replay in a folder with no home
(the packaged config and models).

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
import re
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

    # ---- an empty folder: init a project home there, then work in it
    empty = tmp_path / "empty"
    empty.mkdir()
    version = _run([rl, "--version"], empty, env).stdout.strip()
    assert version == "research-lib 0.1.0"
    _run([rl, "init", "proj"], empty, env)
    home = empty / "proj"
    assets = (home / "config" / "assets.yaml").read_text()
    for model in sorted((home / "models").glob("*.onnx")):
        assert hashlib.sha256(model.read_bytes()).hexdigest() in assets, model.name
    assert (home / "notebooks" / "paper_session.ipynb").is_file()

    # ---- a replay on the default window: after the deciding model's training, stamped so
    r = _run([rl, "paper", "--symbols", "SPY,QQQ", "--source", "sample", "--run-id",
              "wheel-run", "--json"], home, env)
    run = json.loads(r.stdout)
    assert run["ledger"] == str(home / "runs" / "wheel-run" / "ledger.sqlite")
    assert run["steps"] > 100 and run["fills"] > 0 and run["state"] == "ACTIVE"
    assert run["sample"]["stamp"] == "OUT-OF-SAMPLE"
    assert run["sample"]["decisions"] > 0 and run["sample"]["in_sample_decisions"] == 0

    # ---- a report on THAT run: nothing replayed, one self-contained page
    r = _run([rl, "report", "paper_session", "--run", "wheel-run"], home, env)
    html = home / "reports" / "paper_session.html"
    assert r.stdout.strip() == f"report written: {html}"
    text = html.read_text()
    title = re.search(r"<title>([^<]*)</title>", text).group(1)
    first_day, last_day = run["first_step_ts"][:10], run["last_step_ts"][:10]
    assert title == f"Paper session: SPY, QQQ, {first_day} to {last_day} [OUT-OF-SAMPLE]"
    assert "wheel-run: replay, engine step" in text  # the header names the run
    assert f"steps={run['steps']} orders={run['orders']} fills={run['fills']}" in text
    assert 'class="rl-stamp rl-stamp-out">OUT-OF-SAMPLE<' in text
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", text)
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)  # nothing fetched at all
    assert text.count("data:image/png;base64,") >= 8 and text.count("Plotly.newPlot(") >= 4
    assert str(tmp_path) not in text and str(ROOT) not in text  # no local path
    assert not (home / "runs" / "reports").exists()  # no replay of its own

    # ---- runs: listed, shown and exported (parquet and csv)
    listed = json.loads(_run([rl, "runs", "list", "--json"], home, env).stdout)
    assert [x["run_id"] for x in listed] == ["wheel-run"]
    import pandas as pd

    for fmt, read in (("parquet", pd.read_parquet), ("csv", pd.read_csv)):
        out = home / f"export_{fmt}"
        _run([rl, "runs", "export", "wheel-run", "--format", fmt, "--out", out.name],
             home, env)
        files = {p.name for p in out.iterdir()}
        assert {f"{t}.{fmt}" for t in ("equity", "orders", "fills", "positions",
                                       "decisions", "steps")} <= files, files
        assert "meta.json" in files
        assert json.loads((out / "meta.json").read_text())["run_id"] == "wheel-run"
        eq = read(out / f"equity.{fmt}")
        assert len(eq) == run["steps"]
        assert eq["equity"].iloc[-1] == pytest.approx(run["final_equity"])
        assert len(read(out / f"fills.{fmt}")) == run["fills"]

    # ---- nothing was written inside the installed package, nor beside the home
    installed = Path(where).parent
    assert not any((installed / "home").glob("runs")) and not (installed / "reports").exists()
    assert sorted(p.name for p in empty.iterdir()) == ["proj"]

    # ---- and with no home at all: the packaged config and models, runs written here
    bare = tmp_path / "bare"
    bare.mkdir()
    r = _run([rl, "paper", "--symbols", "SPY", "--source", "sample", "--max-steps", "60",
              "--json"], bare, env)
    out = json.loads(r.stdout)
    assert Path(out["ledger"]).is_relative_to(bare / "runs") and out["steps"] == 60
    assert sorted(p.name for p in bare.iterdir()) == ["runs"]
