"""Feedback: progress callbacks from the engine and training, bars drawn by the CLI only
for a person watching; the missing-extra message; the serving path without extras."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from research_lib.cli import main
from research_lib.paper.session import run_session

ROOT = Path(__file__).resolve().parents[1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("fast", [False, True])
def test_session_progress_when_given_then_called_up_to_the_window_in_either_engine(
        tmp_path, fast):
    calls: list[tuple[int, int | None]] = []
    res = run_session(symbols=["SPY"], start="2017-01-03", end="2018-06-29",
                      model="baseline:sma_cross", run_dir=str(tmp_path), fast=fast,
                      log_file=False, progress=lambda d, t: calls.append((d, t)))
    steps = res.summary["steps"]
    assert calls, "no progress reported"
    assert calls[-1] == (steps, steps)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # increasing
    assert {t for _, t in calls} == {steps}


def test_session_progress_when_max_steps_then_total_is_capped(tmp_path):
    calls: list[tuple[int, int | None]] = []
    run_session(symbols=["SPY"], start="2017-01-03", end="2018-06-29",
                model="baseline:buy_and_hold", run_dir=str(tmp_path), max_steps=7,
                log_file=False, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 7) for i in range(1, 8)]


def test_train_progress_when_given_then_every_stage_reported_in_order():
    from research_lib.models.train import train

    calls: list[tuple[int, int | None]] = []
    train("crypto", "BTC-USD", start="2017-01-01", end="2019-12-31",
          progress=lambda d, t: calls.append((d, t)))
    total = calls[0][1]
    assert [d for d, _ in calls] == list(range(1, total + 1))
    assert {t for _, t in calls} == {total}


def _paper_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["paper", "--symbols", "SPY", "--start", "2016-01-04", "--end", "2018-12-31",
            "--model", "baseline:sma_cross", "--run-dir", str(tmp_path), *extra]


def test_cli_paper_when_stderr_is_a_terminal_then_a_bar_is_drawn_and_cleared(
        tmp_path, monkeypatch, capsys):
    import research_lib.cli.progress as progress

    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    tty = _Tty()
    with capsys.disabled():
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        code = main(_paper_args(tmp_path))
    assert code == 0
    text = tty.getvalue()
    assert "replay:" in text and "%|" in text and "step/s" in text, text[-500:]
    assert "/754 [" in text  # the replay window's steps are the total
    assert text.rstrip(" \r").endswith("]") and text.endswith("\r")  # cleared at the end


@pytest.mark.parametrize("case", ["json", "not_a_terminal"])
def test_cli_paper_when_json_or_not_a_terminal_then_no_bar(tmp_path, monkeypatch, capsys,
                                                          case):
    import research_lib.cli.progress as progress

    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    err = _Tty() if case == "json" else io.StringIO()
    with capsys.disabled():
        monkeypatch.setattr(sys, "stderr", err)
        out = io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        code = main(_paper_args(tmp_path, *(["--json"] if case == "json" else [])))
    assert code == 0
    assert "replay:" not in err.getvalue() and "%|" not in err.getvalue()
    if case == "json":
        json.loads(out.getvalue())  # stdout is the JSON alone


def test_cli_bar_when_the_work_is_shorter_than_the_delay_then_nothing_drawn(
        tmp_path, monkeypatch, capsys):
    tty = _Tty()
    with capsys.disabled():
        monkeypatch.setattr(sys, "stderr", tty)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        code = main(["paper", "--symbols", "SPY", "--start", "2018-01-02", "--end",
                     "2018-01-31", "--model", "baseline:buy_and_hold", "--run-dir",
                     str(tmp_path)])
    assert code == 0 and "replay:" not in tty.getvalue()


# ------------------------------------------------------------------- extras
BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Block())
    from research_lib.cli import main
    sys.exit(main(sys.argv[1:]))
""")
TRAIN_AND_REPORT = ["sklearn", "scipy", "skl2onnx", "joblib", "matplotlib", "papermill",
                    "nbconvert", "nbformat", "nbclient", "ipykernel", "IPython"]


def _without(blocked: list[str], *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "RESEARCH_LIB_HOME"}  # cwd decides
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked), *argv],
                          capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def test_serving_commands_when_train_and_report_extras_are_missing_then_all_work(tmp_path):
    """The core install: paper, data check, features, routing, init and runs run with
    scikit-learn, skl2onnx, matplotlib, papermill, nbconvert and ipykernel absent."""
    home = tmp_path / "h"
    r = _without(TRAIN_AND_REPORT, "init", str(home), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for argv in (["paper", "--symbols", "SPY,BTC-USD", "--start", "2018-01-02", "--end",
                  "2018-03-01", "--run-id", "core", "--json"],
                 ["data", "check", "--symbols", "BTC-USD", "--start", "2018-01-01"],
                 ["features", "--symbols", "SPY", "--start", "2018-01-01", "--out",
                  "f.parquet"],
                 ["routing", "--symbols", "SPY,BTC-USD"],
                 ["runs", "list"], ["runs", "show", "core"],
                 ["runs", "export", "core", "--out", "exp", "--format", "csv"]):
        r = _without(TRAIN_AND_REPORT, *argv, cwd=home)
        assert r.returncode in (0, 1), (argv, r.stderr[-2000:])  # data check: 1 = findings
        assert "Traceback" not in r.stderr, (argv, r.stderr[-2000:])
    assert (home / "exp" / "equity.csv").is_file()


@pytest.mark.parametrize(("blocked", "argv", "extra"), [
    ("sklearn", ["train", "--asset-class", "crypto", "--symbols", "BTC-USD", "--out",
                 "m.onnx"], "train"),
    ("skl2onnx", ["train", "--asset-class", "crypto", "--symbols", "BTC-USD", "--out",
                  "m.onnx"], "train"),
    ("papermill", ["report", "data_sanity"], "report"),
])
def test_command_when_its_extra_is_missing_then_exit_2_naming_the_extra_to_install(
        tmp_path, blocked, argv, extra):
    r = _without([blocked], *argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"pip install 'research_lib[{extra}]'" in r.stderr
    assert repr(blocked) in r.stderr and "Traceback" not in r.stderr


def test_missing_extra_when_module_is_not_an_extras_then_the_error_is_not_hidden():
    from research_lib.extras import missing_extra

    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert "research_lib[train]" in missing_extra(
        ModuleNotFoundError("x", name="sklearn.ensemble"))


@pytest.mark.parametrize("terminal", [True, False])
def test_cli_report_when_run_then_papermill_bar_only_on_a_terminal_after_the_delay(
        monkeypatch, capsys, terminal):
    import research_lib.notebooks as notebooks
    from research_lib.cli.progress import DELAY_S

    seen = {}

    def fake_run_report(name, params, out=None, keep_notebook=False, progress=True):
        seen["progress"] = progress
        return Path("/x/report.html")

    monkeypatch.setattr(notebooks, "run_report", fake_run_report)
    err = _Tty() if terminal else io.StringIO()
    with capsys.disabled():
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        assert main(["report", "data_sanity"]) == 0
    if terminal:
        assert seen["progress"]["delay"] == DELAY_S and seen["progress"]["file"] is err
        assert seen["progress"]["leave"] is False
    else:
        assert seen["progress"] is False
