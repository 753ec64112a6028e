"""Issue 10, classes 6 and 7: nothing escapes its folder, nothing runs that the user did not
ship; every failure is a clear error and no write destroys what was there.

Each CLI case runs ``research_lib.cli.main`` in-process: a traceback would be an exception
out of ``main``; a clear error is exit 2 with ``research-lib CMD: error: ...`` naming the
option and the value.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
import stat
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.errors import ResearchLibError
from tests.kit.paper import (
    FrameSource,
    ScriptedModel,
    make_session,
    random_walk,
    write_config,
)

SAMPLE_WINDOW = ["--symbols", "SPY", "--start", "2018-01-02", "--end", "2018-03-01"]


def _paper(tmp_path: Path, *extra: str) -> list[str]:
    cfg = tmp_path / "config"
    if not cfg.exists():
        write_config(cfg, session={"kill_file": str(tmp_path / "kill.flag")})
    return ["paper", "--model", "baseline:sma_cross", "--config-dir", str(cfg),
            "--run-dir", str(tmp_path / "runs"), *extra]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


def _ledgers(root: Path) -> list[Path]:
    return sorted(root.rglob("ledger.sqlite"))


# =========================================================== 6. nothing escapes its folder
# ---------------------------------------------------------------- the report's kernelspec
def _plant(tmp: Path) -> tuple[Path, Path]:
    """What another local user could leave in the shared temp folder before a report: the
    old fixed kernelspec folder with an evil ``python3`` (and ``PYTHON3``) kernel whose
    kernel.json is a symlink to a file of the victim's."""
    victim = tmp / "victim.txt"
    victim.write_text("precious")
    root = tmp / f"research_lib-jupyter-{os.getuid()}" / "kernels"
    (root / "python3").mkdir(parents=True)
    (root / "python3" / "kernel.json").symlink_to(victim)
    (root / "PYTHON3").mkdir()
    (root / "PYTHON3" / "kernel.json").write_text(json.dumps(
        {"argv": ["/bin/sh", "-c", "touch pwned"], "display_name": "evil", "language": "python"}))
    return root.parent, victim


def test_report_kernelspec_when_shared_temp_has_planted_kernel_then_fresh_private_folder_is_used(
        tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    from research_lib.notebooks import kernel_env

    shared = tmp_path / "tmp"
    shared.mkdir()
    planted, victim = _plant(shared)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)

    with kernel_env():
        first = Path(os.environ["JUPYTER_PATH"].split(os.pathsep)[0])
        spec = KernelSpecManager().get_kernel_spec("python3")
        mode = stat.S_IMODE(first.stat().st_mode)
        names = sorted(p.name for p in (first / "kernels").iterdir())
    assert first != planted and not first.is_symlink()
    assert mode == 0o700  # owner-only
    assert names == ["python3"]  # made fresh: nothing else in it
    assert spec.argv[0] == sys.executable and spec.resource_dir.startswith(str(first))
    assert victim.read_text() == "precious"  # the planted symlink was never written through
    assert not first.exists()  # removed after the report


def test_report_kernelspec_when_called_twice_then_two_distinct_new_folders(tmp_path, monkeypatch):
    from research_lib.notebooks import kernelspec_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    a, b = kernelspec_dir(), kernelspec_dir()
    assert a != b
    for d in (a, b):
        spec = d / "kernels" / "python3" / "kernel.json"
        assert json.loads(spec.read_text())["argv"][0] == sys.executable
        assert stat.S_IMODE(spec.stat().st_mode) & 0o077 == 0  # not readable by others


# ---------------------------------------------------------------- --run-id
@pytest.mark.parametrize("run_id", ["..", ".", "../x", "ABS", "a\nb", "ok\n", "", "a/b", " x",
                                    "-x"])
def test_paper_run_id_when_not_a_plain_name_then_exit_2_and_no_ledger_anywhere(
        tmp_path, capsys, run_id):
    if run_id == "ABS":
        run_id = str(tmp_path / "elsewhere")
    code = main(_paper(tmp_path, *SAMPLE_WINDOW, f"--run-id={run_id}"))
    err = _err(capsys)
    assert code == 2
    assert "research-lib paper: error: --run-id" in err and repr(run_id) in err
    assert "letters, digits" in err  # says what a valid one looks like
    assert _ledgers(tmp_path) == []


def test_paper_run_id_when_run_folder_is_a_symlink_out_of_runs_then_exit_2(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "linked").symlink_to(outside)
    code = main(_paper(tmp_path, *SAMPLE_WINDOW, "--run-id", "linked"))
    err = _err(capsys)
    assert code == 2 and "outside" in err and "--run-id" in err
    assert _ledgers(tmp_path) == []


def test_ledger_path_when_run_id_is_plain_then_inside_run_dir(tmp_path):
    from research_lib.run_files import ledger_path

    p = ledger_path(tmp_path, "paper-20260101T000000Z-1a2b3c4d")
    assert p == tmp_path / "paper-20260101T000000Z-1a2b3c4d" / "ledger.sqlite"


# ---------------------------------------------------------------- cache paths
def _cache_file(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
    return path


@pytest.mark.parametrize("cmd", ["data", "features"])
@pytest.mark.parametrize("interval", ["..", ".", "%2e%2e"])
def test_cache_interval_when_it_names_a_parent_folder_then_exit_2_and_nothing_read(
        tmp_path, capsys, monkeypatch, cmd, interval):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(cache))
    bars = random_walk(60)[["open", "high", "low", "close", "volume"]]
    _cache_file(tmp_path / "SPY.adj.parquet", bars)  # cache/../SPY.adj.parquet
    _cache_file(cache / "SPY.adj.parquet", bars)  # cache/./SPY.adj.parquet
    argv = (["data", "check"] if cmd == "data" else
            ["features", "--out", str(tmp_path / "f.csv")])
    code = main([*argv, "--symbols", "SPY", "--source", "cache", "--interval", interval])
    err = _err(capsys)
    assert code == 2 and "--interval" in err and repr(interval) in err
    assert not (tmp_path / "f.csv").exists()


def test_cache_file_when_symlinked_out_of_the_cache_then_refused(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    secret = _cache_file(tmp_path / "secret" / "x.parquet", random_walk(60))
    (cache / "1d").mkdir(parents=True)
    (cache / "1d" / "SPY.adj.parquet").symlink_to(secret)
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(cache))
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", "cache"])
    err = _err(capsys)
    assert code == 2 and "outside" in err and str(cache.resolve()) in err
    assert not (tmp_path / "f.csv").exists()


# ---------------------------------------------------------------- report NAME
@pytest.mark.parametrize("name", ["../evil", "../../tmp/evil", "/tmp/evil", "a\nb", ".hidden"])
def test_report_name_when_not_a_plain_notebook_name_then_exit_2_and_nothing_runs(
        tmp_path, capsys, monkeypatch, name):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    for p in (tmp_path / "evil.ipynb", home / "evil.ipynb", Path("/tmp/evil.ipynb"),
              home / "notebooks" / ".hidden.ipynb"):
        if not p.exists():
            p.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                     "nbformat_minor": 5}))
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    try:
        code = main(["report", name, "--out", str(tmp_path / "out.html")])
    finally:
        Path("/tmp/evil.ipynb").unlink(missing_ok=True)
    err = _err(capsys)
    assert code == 2 and "report NAME" in err and repr(name) in err
    assert ran == [] and not (tmp_path / "out.html").exists()


def test_report_name_when_notebook_is_a_symlink_out_of_notebooks_then_exit_2(
        tmp_path, capsys, monkeypatch):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(papermill, "inspect_notebook", lambda *a, **k: {})
    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    evil = tmp_path / "evil.ipynb"
    evil.write_text("{}")
    (home / "notebooks" / "linked.ipynb").symlink_to(evil)
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    code = main(["report", "linked", "--out", str(tmp_path / "out.html")])
    err = _err(capsys)
    assert code == 2 and "outside" in err and ran == []


# =========================================================== 7. every failure is clear
# ---------------------------------------------------------------- dates
@pytest.mark.parametrize(("opt", "value"), [("--start", "2017-13-45"), ("--end", "notadate"),
                                            ("--start", "NaT"), ("--end", "2018-02-30")])
@pytest.mark.parametrize("cmd", ["paper", "data", "features"])
def test_dates_when_not_a_date_then_exit_2_naming_option_and_value(
        tmp_path, capsys, cmd, opt, value):
    window = {"--start": "2018-01-02", "--end": "2018-03-01", opt: value}
    dates = ["--start", window["--start"], "--end", window["--end"]]
    argv = {"paper": _paper(tmp_path, "--symbols", "SPY", *dates),
            "data": ["data", "check", "--symbols", "SPY", *dates],
            "features": ["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                         *dates]}[cmd]
    code = main(argv)
    err = _err(capsys)
    assert code == 2 and f"{opt} {value!r} is not a date" in err and "YYYY-MM-DD" in err
    assert _ledgers(tmp_path) == []


@pytest.mark.parametrize("cmd", ["paper", "data", "features"])
def test_dates_when_start_after_end_then_exit_2_saying_so_with_the_users_dates(
        tmp_path, capsys, cmd):
    dates = ["--start", "2018-06-01", "--end", "2018-03-01"]
    argv = {"paper": _paper(tmp_path, "--symbols", "SPY", *dates),
            "data": ["data", "check", "--symbols", "SPY", *dates],
            "features": ["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                         *dates]}[cmd]
    code = main(argv)
    err = _err(capsys)
    assert code == 2 and "--start 2018-06-01 is after --end 2018-03-01" in err


def test_session_when_start_after_end_via_api_then_config_error_before_any_fetch(tmp_path):
    fetched = []

    class Spy(FrameSource):
        def fetch(self, *a, **k):
            fetched.append(a)
            return super().fetch(*a, **k)

    s = make_session(tmp_path, symbols=["SYN"], source=Spy({"SYN": random_walk(200)}),
                     start="2021-06-01", end="2021-03-01", model="baseline:buy_and_hold")
    with pytest.raises(ResearchLibError, match="--start 2021-06-01 is after --end 2021-03-01"):
        s.run()
    assert fetched == [] and _ledgers(tmp_path) == []


def test_paper_when_window_has_no_bars_then_error_names_the_users_dates(tmp_path, capsys):
    code = main(_paper(tmp_path, "--symbols", "SPY", "--start", "1980-01-02", "--end",
                       "1980-03-01"))
    err = _err(capsys)
    assert code == 2
    assert "--start 1980-01-02 --end 1980-03-01" in err  # the user's dates come first
    assert "warm-up" in err  # and the earlier fetch start is explained, not just quoted


# ---------------------------------------------------------------- --stale-after, --log-level
@pytest.mark.parametrize("value", ["garbage", "-5D", "0s"])
def test_data_check_stale_after_when_not_a_positive_duration_then_exit_2(capsys, value):
    code = main(["data", "check", "--symbols", "SPY", f"--stale-after={value}"])
    err = _err(capsys)
    assert code == 2 and f"--stale-after {value!r}" in err and "5D" in err


@pytest.mark.parametrize("value", ["nan", "-0.1", "0", "inf"])
def test_data_check_jump_threshold_when_not_a_positive_fraction_then_exit_2(capsys, value):
    code = main(["data", "check", "--symbols", "SPY", f"--jump-threshold={value}"])
    assert code == 2 and "--jump-threshold" in _err(capsys)


def test_log_level_when_unknown_then_usage_error_exit_2_listing_the_levels(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--log-level", "bogus", "routing"])
    err = _err(capsys)
    assert exc.value.code == 2 and "--log-level" in err and "'BOGUS'" in err and "DEBUG" in err


def test_log_level_when_lowercase_then_accepted(capsys, tmp_path):
    code = main(["--log-level", "debug", "data", "check", "--symbols", "SPY", "--start",
                 "2018-01-02", "--end", "2018-02-01"])
    assert code in (0, 1)  # ran (findings decide 0/1), no usage error


# ---------------------------------------------------------------- foreign / unreadable data
@pytest.mark.parametrize(("what", "frame", "needle"), [
    ("string index", pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0],
                                   "volume": [1.0]}, index=["not a time"]), "not timestamps"),
    ("text column", pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": ["x"],
                                  "volume": [1.0]},
                                 index=pd.DatetimeIndex(["2021-01-04"], tz="UTC")), "'close'"),
    ("no prices", pd.DataFrame({"note": ["hello"]},
                               index=pd.DatetimeIndex(["2021-01-04"], tz="UTC")), "lacks"),
])
def test_cache_when_file_is_a_foreign_parquet_then_exit_2_naming_file_and_problem(
        tmp_path, capsys, monkeypatch, what, frame, needle):
    cache = tmp_path / "cache"
    path = _cache_file(cache / "1d" / "SPY.adj.parquet", frame)
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(cache))
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", "cache"])
    err = _err(capsys)
    assert code == 2 and str(path) in err and needle in err and "delete it" in err


def _deny_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Stat of anything below ``folder`` fails with EACCES, as for a folder without x/r
    permission (the tests run as root, which chmod does not stop)."""
    real = Path.exists

    def exists(self: Path, *a, **k) -> bool:
        if str(self).startswith(str(folder) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "exists", exists)


def test_cache_when_folder_unreadable_then_exit_2_with_path_and_os_reason(
        tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    _cache_file(cache / "1d" / "SPY.adj.parquet", random_walk(60))
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(cache))
    _deny_under(monkeypatch, cache / "1d")
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", "cache"])
    err = _err(capsys)
    assert code == 2 and str(cache / "1d") in err and "Permission denied" in err


def test_csv_when_file_unreadable_then_exit_2_with_path_and_os_reason(
        tmp_path, capsys, monkeypatch):
    csv = tmp_path / "SPY.csv"
    random_walk(60).to_csv(csv)

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_csv", denied)
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", f"csv:{csv}"])
    err = _err(capsys)
    assert code == 2 and str(csv) in err and "Permission denied" in err


def test_csv_when_folder_unreadable_then_error_says_so_not_empty(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    random_walk(60).to_csv(folder / "SPY.csv")
    real_listdir = os.listdir

    def listdir(path=".", *a):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_listdir(path, *a)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(()))  # what EACCES looks like
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", f"csv:{folder}"])
    err = _err(capsys)
    assert code == 2 and "Permission denied" in err and "no *.csv" not in err


def test_csv_when_parent_folder_unreadable_then_exit_2(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    _deny_under(monkeypatch, folder)
    code = main(["features", "--out", str(tmp_path / "f.csv"), "--symbols", "SPY",
                 "--source", f"csv:{folder / 'SPY.csv'}"])
    err = _err(capsys)
    assert code == 2 and "Permission denied" in err


# ---------------------------------------------------------------- kill file, empty run folder
def test_kill_file_when_its_folder_is_unreadable_then_exit_2_naming_the_key_and_no_run(
        tmp_path, capsys, monkeypatch):
    # a kill switch that cannot be read is a config error at start (fail closed, before
    # anything is written); mid-run the same fault halts: tests/test_safety_reload_kill.py
    locked = tmp_path / "locked"
    locked.mkdir()
    write_config(tmp_path / "config", session={"kill_file": str(locked / "kill.flag")})
    real_lstat = os.lstat

    def lstat(path, *a, **k):
        if str(path).startswith(str(locked) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_lstat(path, *a, **k)

    monkeypatch.setattr(os, "lstat", lstat)
    code = main(_paper(tmp_path, *SAMPLE_WINDOW, "--run-id", "k", "--json"))
    err = _err(capsys)
    assert code == 2 and "Traceback" not in err
    assert "session.kill_file" in err and "Permission denied" in err
    assert _ledgers(tmp_path) == []


def test_session_when_setup_fails_after_the_ledger_is_made_then_no_run_folder_is_left(tmp_path):
    from research_lib.flags import KillSwitch

    class Broken(KillSwitch):
        def check(self):
            raise ResearchLibError("kill switch cannot be read")

    s = make_session(tmp_path, symbols=["SYN"], source=FrameSource({"SYN": random_walk(120)}),
                     start="2021-03-01", model="baseline:buy_and_hold", run_id="broken",
                     kill_switch=Broken(tmp_path / "kill.flag"))
    with pytest.raises(ResearchLibError, match="cannot be read"):
        s.run()
    assert not (tmp_path / "runs" / "broken").exists()
    # and the same id can be used again at once
    res = make_session(tmp_path, symbols=["SYN"], source=FrameSource({"SYN": random_walk(120)}),
                       start="2021-03-01", model="baseline:buy_and_hold", run_id="broken").run()
    assert res.exit_code == 0


def test_discard_empty_run_when_the_ledger_has_steps_then_kept(tmp_path):
    from research_lib.run_files import discard_empty_run

    res = make_session(tmp_path, symbols=["SYN"], source=FrameSource({"SYN": random_walk(120)}),
                       start="2021-03-01", model="baseline:buy_and_hold", run_id="kept",
                       max_steps=2).run()
    assert discard_empty_run(res.ledger_path) is False and res.ledger_path.is_file()


# ---------------------------------------------------------------- a ledger busy elsewhere
@pytest.mark.parametrize("fast", [False, True])
def test_ledger_when_locked_by_another_process_then_refused_not_halted_no_disk_advice(
        tmp_path, monkeypatch, fast):
    import research_lib.ledger as ledger_mod

    monkeypatch.setattr(ledger_mod, "BUSY_TIMEOUT_MS", 300, raising=False)
    box: dict = {}

    def hook(call: int) -> None:
        if call == 4 and "other" not in box:  # another writer takes the database lock
            other = sqlite3.connect(box["s"].ledger.path, isolation_level=None, timeout=0.1)
            other.execute("BEGIN IMMEDIATE")
            box["other"] = other

    src = FrameSource({"SYN": random_walk(150)})
    s = make_session(tmp_path, symbols=["SYN"], source=src, start="2021-03-01", run_id="busy",
                     router=ScriptedModel(["SYN"], prob=lambda s_, n, c: 0.9 if n % 2 else 0.1,
                                          hook=hook), fast=fast)
    box["s"] = s
    try:
        with pytest.raises(ResearchLibError) as exc:
            s.run()
    finally:
        if "other" in box:
            box["other"].execute("ROLLBACK")
            box["other"].close()
    msg = str(exc.value)
    assert "another process" in msg and "busy" in msg and "--resume busy" in msg
    assert "free disk space" not in msg and "HALTED (" not in msg
    path = tmp_path / "runs" / "busy" / "ledger.sqlite"
    with sqlite3.connect(path) as conn:
        halted = conn.execute("SELECT COUNT(*) FROM state_changes WHERE to_state='HALTED'"
                              ).fetchone()[0]
    assert halted == 0 and not path.with_name("ledger.sqlite.halted").exists()


# ---------------------------------------------------------------- the report's HTML
class _FullDisk(io.StringIO):
    """A text file that takes 100 characters, then fails as a full disk does."""

    def __init__(self, real) -> None:
        super().__init__()
        self.real = real

    def write(self, text: str) -> int:
        self.real.write(text[:100])
        self.real.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()
        super().close()


def test_report_html_when_disk_fills_mid_write_then_previous_report_intact(
        tmp_path, monkeypatch):
    import nbformat

    from research_lib import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# " + "x" * 5000)])
    ipynb = tmp_path / "done.ipynb"
    nbformat.write(nb, str(ipynb))
    html = tmp_path / "reports" / "r.html"
    html.parent.mkdir()
    html.write_text("<html>the previous report</html>")

    real_open, real_fdopen = io.open, os.fdopen

    def wrap(opener):
        def opened(file, mode="r", *a, **k):
            f = opener(file, mode, *a, **k)
            return _FullDisk(f) if "w" in mode else f
        return opened

    monkeypatch.setattr(io, "open", wrap(real_open))
    monkeypatch.setattr(os, "fdopen", wrap(real_fdopen))
    with pytest.raises(ResearchLibError, match="previous report there is kept"):
        notebooks.to_html(ipynb, html)
    monkeypatch.undo()
    assert html.read_text() == "<html>the previous report</html>"
    assert sorted(p.name for p in html.parent.iterdir()) == ["r.html"]  # no temp file left


def test_report_html_when_written_then_replaced_whole(tmp_path):
    import nbformat

    from research_lib import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# new report")])
    ipynb = tmp_path / "done.ipynb"
    nbformat.write(nb, str(ipynb))
    html = tmp_path / "r.html"
    html.write_text("old")
    notebooks.to_html(ipynb, html)
    assert "new report" in html.read_text() and sorted(os.listdir(tmp_path)) == [
        "done.ipynb", "r.html"]


# ---------------------------------------------------------------- live mode that cannot work
def test_paper_live_when_source_is_the_fixed_sample_then_exit_2_before_polling(tmp_path, capsys):
    code = main(_paper(tmp_path, "--symbols", "SPY", "--mode", "live", "--source", "sample",
                       "--duration", "3s"))
    err = _err(capsys)
    assert code == 2 and "--mode live" in err and "--source sample" in err
    assert "drop --mode live" in err and _ledgers(tmp_path) == []


class _NoNetwork:
    """A live source whose fetches fail as yfinance's do without a network (a DataError),
    optionally after ``good`` successful polls."""

    name = "nonet"

    def __init__(self, bars: pd.DataFrame, good: int = 0) -> None:
        self.bars, self.good, self.calls = bars, good, 0

    def symbols(self) -> list[str]:
        return ["SYN"]

    def fetch(self, symbol, start=None, end=None, interval="1d"):
        from research_lib.errors import DataError

        self.calls += 1
        if self.calls > self.good:
            raise DataError("yfinance: download of 'SYN' failed: ConnectionError: network is "
                            "unreachable (no network? use --source cache or --source sample)")
        return self.bars


def _live(tmp_path: Path, src: _NoNetwork):
    now = {"t": pd.Timestamp("2021-06-01 12:00", tz="UTC").timestamp()}

    def sleep(dt: float) -> None:
        now["t"] += dt

    # --duration is counted on the session's clock (here the fake one): an hour of polls
    return make_session(tmp_path, symbols=["SYN"], source=src, mode="live", run_id="live",
                        poll_seconds=60, clock=lambda: now["t"], sleep=sleep,
                        duration="1h", model="baseline:buy_and_hold")


def test_paper_live_when_no_fetch_ever_works_then_fails_loudly_and_records_why(tmp_path):
    src = _NoNetwork(random_walk(100))
    with pytest.raises(ResearchLibError, match="no symbol could be fetched at the first poll"):
        _live(tmp_path, src).run()
    assert src.calls == 1  # nothing to warm up on: stop at once
    path = tmp_path / "runs" / "live" / "ledger.sqlite"
    with sqlite3.connect(path) as conn:
        ev = conn.execute("SELECT code, reason FROM risk_events WHERE code='FEED_FAILED'"
                          ).fetchall()
    assert len(ev) == 1 and "network is unreachable" in ev[0][1]


def test_paper_live_when_network_drops_after_start_then_stops_after_bounded_failed_polls(
        tmp_path):
    from research_lib.session import LIVE_MAX_FAILED_POLLS

    bars = random_walk(100, start="2021-01-04")
    src = _NoNetwork(bars, good=1)
    with pytest.raises(ResearchLibError,
                       match=f"at {LIVE_MAX_FAILED_POLLS} polls in a row"):
        _live(tmp_path, src).run()
    assert src.calls == 1 + LIVE_MAX_FAILED_POLLS


@pytest.mark.parametrize("keep", [True, False])
def test_report_when_the_notebook_fails_mid_run_then_previous_html_and_notebook_intact(
        tmp_path, capsys, monkeypatch, keep):
    import papermill

    def fails(src, out, **kw):
        Path(out).write_text('{"partial": ')  # papermill writes as it goes
        raise papermill.PapermillExecutionError(0, 1, "", "ValueError", "boom", [])

    monkeypatch.setattr(papermill, "execute_notebook", fails)
    html = tmp_path / "r.html"
    html.write_text("previous html")
    html.with_suffix(".ipynb").write_text("previous notebook")
    code = main(["report", "data_sanity", "--out", str(html),
                 *(["--keep-notebook"] if keep else [])])
    err = _err(capsys)
    assert code == 2 and "failed in cell 1: ValueError: boom" in err
    assert html.read_text() == "previous html"
    assert html.with_suffix(".ipynb").read_text() == "previous notebook"


@pytest.mark.parametrize("how", ["unreadable", "folder", "not utf-8"])
def test_paper_when_a_config_file_cannot_be_read_then_exit_2_naming_it_and_no_run(
        tmp_path, capsys, monkeypatch, how):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    risk = cfg / "risk.yaml"
    if how == "folder":
        risk.unlink()
        risk.mkdir()
    elif how == "not utf-8":
        risk.write_bytes(b"risk:\n  max_position_pct: \xff\xfe\n")
    else:
        real = Path.read_text

        def read_text(self, *a, **k):
            if self == risk:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(Path, "read_text", read_text)
    code = main(_paper(tmp_path, *SAMPLE_WINDOW))
    err = _err(capsys)
    assert code == 2 and str(risk) in err
    assert {"unreadable": "Permission denied", "folder": "Is a directory",
            "not utf-8": "UTF-8"}[how] in err
    assert _ledgers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_features_when_the_write_fails_mid_way_then_previous_file_intact(
        tmp_path, capsys, monkeypatch, suffix):
    out = tmp_path / f"f{suffix}"
    out.write_text("previous features")

    def full_disk(self, path, *a, **k):
        Path(path).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv" if suffix == ".csv" else "to_parquet", full_disk)
    code = main(["features", "--out", str(out), "--symbols", "SPY", "--start", "2018-01-02",
                 "--end", "2018-03-01"])
    err = _err(capsys)
    assert code == 2 and "No space left on device" in err and "kept" in err
    assert out.read_text() == "previous features"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_report_html_when_target_is_a_symlink_then_link_replaced_and_its_target_untouched(
        tmp_path):
    import nbformat

    from research_lib import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# new report")])
    ipynb = tmp_path / "done.ipynb"
    nbformat.write(nb, str(ipynb))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    html = tmp_path / "reports" / "r.html"
    html.parent.mkdir()
    html.symlink_to(victim)
    notebooks.to_html(ipynb, html)
    assert victim.read_text() == "precious"
    assert not html.is_symlink() and "new report" in html.read_text()


def test_report_when_run_then_no_temporary_folder_is_left(tmp_path, monkeypatch):
    import papermill

    from research_lib import notebooks

    def runs(src, out, **kw):
        Path(out).write_text(Path(src).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", runs)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    notebooks.run_report("data_sanity", out=tmp_path / "r.html", keep_notebook=True,
                         progress=False)
    assert (tmp_path / "r.html").is_file() and (tmp_path / "r.ipynb").is_file()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_session_when_start_is_after_the_datas_end_and_no_end_given_then_no_phantom_end(
        tmp_path):
    bars = random_walk(200, start="2021-01-04")  # daily, to 2021-07-22
    s = make_session(tmp_path, symbols=["SYN"], source=FrameSource({"SYN": bars}),
                     start="2021-08-01", model="baseline:buy_and_hold")
    with pytest.raises(ResearchLibError) as exc:
        s.run()
    msg = str(exc.value)
    assert "--start 2021-08-01" in msg and "last common bar" in msg and "--end" not in msg


# ---------------------------------------------------------------- red team (round 2 merged)
def test_paper_live_when_one_symbols_feed_fails_poll_after_poll_then_stops_naming_it(tmp_path):
    """The failure bound counted polls that fetched *no* symbol: a symbol whose fetch
    failed at every poll while another's worked was polled on forever, its position marked
    at its last close (no bad bar, so no stale mark named either). Now a symbol that fails
    LIVE_MAX_FAILED_POLLS polls in a row stops the session loudly too, naming it."""
    from research_lib.errors import DataError
    from research_lib.session import LIVE_MAX_FAILED_POLLS

    class OneDown:
        name = "onedown"

        def __init__(self) -> None:
            self.frames = {"AAA": random_walk(100, symbol="AAA"),
                           "BBB": random_walk(100, seed=3, symbol="BBB")}
            self.calls = {"AAA": 0, "BBB": 0}

        def symbols(self) -> list[str]:
            return sorted(self.frames)

        def fetch(self, symbol, start=None, end=None, interval="1d"):
            self.calls[symbol] += 1
            if symbol == "BBB" and self.calls[symbol] > 1:
                raise DataError("yfinance: download of 'BBB' failed: HTTP 404 (delisted?)")
            return self.frames[symbol]

    now = {"t": pd.Timestamp("2021-06-01 12:00", tz="UTC").timestamp()}

    def sleep(dt: float) -> None:
        now["t"] += dt

    src = OneDown()
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=src, mode="live", run_id="live",
                     poll_seconds=60, clock=lambda: now["t"], sleep=sleep, duration="1h",
                     model="baseline:buy_and_hold")
    with pytest.raises(ResearchLibError, match=rf"BBB.*{LIVE_MAX_FAILED_POLLS} polls in a row"):
        s.run()
    assert src.calls["BBB"] == 1 + LIVE_MAX_FAILED_POLLS
    with sqlite3.connect(tmp_path / "runs" / "live" / "ledger.sqlite") as conn:
        ev = conn.execute("SELECT reason FROM risk_events WHERE code='FEED_FAILED'").fetchall()
    assert len(ev) == 1 and "BBB" in ev[0][0] and "HTTP 404" in ev[0][0]
