"""``research-lib runs list | show | export``: runs read back through the ledger readers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.ledger import COLUMNS
from research_lib.ledger_read import read_run
from research_lib.paper.session import run_session


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A step replay and a fast dry run in one run folder, and a report's run below
    ``reports/`` (made once for the module)."""
    root = tmp_path_factory.mktemp("runs")
    common = dict(symbols=["SPY", "QQQ"], start="2018-01-02", end="2018-03-01",
                  model="baseline:sma_cross", log_file=False)
    run_session(run_dir=str(root), run_id="a-step", **common)
    run_session(run_dir=str(root), run_id="b-fast", fast=True, dry_run=True, **common)
    run_session(run_dir=str(root / "reports"), run_id="c-report", **common)
    return root


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_list_when_runs_exist_then_one_line_each_with_mode_engine_span_steps_state(
        runs, capsys):
    code, out, err = cli(capsys, "runs", "list", "--run-dir", str(runs))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "MODE", "ENGINE", "SYMBOLS", "SPAN", "STEPS", "STATE"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:-1]}
    assert set(rows) == {"a-step", "b-fast", "c-report"}
    assert rows["a-step"][1:] == ["replay", "step", "SPY,QQQ", "2018-01-02..2018-03-01",
                                  "41", "ACTIVE"]
    assert rows["b-fast"][1:4] == ["replay", "dry", "fast"]
    assert lines[-1] == f"3 run(s) under {runs}"


def test_runs_list_when_json_then_every_field_and_the_ledger_step_count(runs, capsys):
    code, out, _ = cli(capsys, "runs", "list", "--run-dir", str(runs), "--json")
    doc = {r["run_id"]: r for r in json.loads(out)}
    a = doc["a-step"]
    assert code == 0
    assert (a["mode"], a["engine"], a["symbols"], a["state"], a["dry_run"]) == \
        ("replay", "step", ["SPY", "QQQ"], "ACTIVE", False)
    assert a["steps"] == len(read_run(a["ledger"])["steps"])
    assert a["first_step_ts"].startswith("2018-01-02") and a["last_step_ts"].startswith(
        "2018-03-01")
    assert doc["b-fast"]["engine"] == "fast" and doc["b-fast"]["dry_run"] is True


def test_runs_list_when_a_ledger_is_unreadable_then_listed_as_such_and_others_shown(
        tmp_path, runs, capsys):
    import shutil

    root = tmp_path / "r"
    shutil.copytree(runs / "a-step", root / "a-step")
    (root / "broken").mkdir()
    (root / "broken" / "ledger.sqlite").write_bytes(b"not a database at all" * 10)
    code, out, _ = cli(capsys, "runs", "list", "--run-dir", str(root), "--json")
    doc = {r["run_id"]: r for r in json.loads(out)}
    assert code == 0
    assert doc["a-step"]["state"] == "ACTIVE"
    assert doc["broken"]["state"] == "UNREADABLE" and doc["broken"]["error"]


def test_runs_list_when_no_runs_then_says_how_to_start_one(tmp_path, capsys):
    code, out, _ = cli(capsys, "runs", "list", "--run-dir", str(tmp_path / "none"))
    assert code == 0 and "no runs under" in out and "research-lib paper" in out


def test_runs_show_when_run_given_by_id_then_summary_from_the_ledger(runs, capsys):
    code, out, err = cli(capsys, "runs", "show", "a-step", "--run-dir", str(runs), "--json")
    assert code == 0, err
    doc = json.loads(out)
    s = doc["summary"]
    run = read_run(runs / "a-step")
    assert s["fills"] == int((run["orders"]["status"] == "filled").sum()) > 0
    assert s["final_equity"] == pytest.approx(run["equity"]["equity"].iloc[-1])
    assert doc["tables"] == {t: len(run[t]) for t in COLUMNS}
    assert doc["spec"]["source"] == "sample"
    code, text, _ = cli(capsys, "runs", "show", "a-step", "--run-dir", str(runs))
    assert code == 0 and "run        a-step" in text and "this session" not in text
    assert "steps      41 (2018-01-02" in text


def test_runs_show_when_run_is_below_reports_then_found_by_id(runs, capsys):
    code, out, err = cli(capsys, "runs", "show", "c-report", "--run-dir", str(runs), "--json")
    assert code == 0, err
    assert json.loads(out)["info"]["ledger"] == str(runs / "reports" / "c-report" /
                                                    "ledger.sqlite")


@pytest.mark.parametrize("run", ["nope", "../a-step"])
def test_runs_show_when_run_is_unknown_then_exit_2_naming_it_and_how_to_list(
        runs, capsys, run):
    code, out, err = cli(capsys, "runs", "show", run, "--run-dir", str(runs))
    assert code == 2 and out == ""
    assert repr(run) in err and "research-lib runs list" in err


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_runs_export_when_asked_then_one_file_per_table_equal_to_read_run(
        runs, tmp_path, capsys, fmt):
    out_dir = tmp_path / "exp"
    code, out, err = cli(capsys, "runs", "export", "a-step", "--run-dir", str(runs),
                         "--format", fmt, "--out", str(out_dir))
    assert code == 0, err
    tables = read_run(runs / "a-step")
    meta = tables.pop("meta")
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{t}.{fmt}" for t in tables] + ["meta.json"])
    for name, df in tables.items():
        got = (pd.read_parquet(out_dir / f"{name}.parquet") if fmt == "parquet"
               else pd.read_csv(out_dir / f"{name}.csv"))
        assert list(got.columns) == list(df.columns), name
        assert len(got) == len(df), name
    eq = tables["equity"]
    got = (pd.read_parquet(out_dir / f"equity.{fmt}") if fmt == "parquet"
           else pd.read_csv(out_dir / "equity.csv"))
    assert got["equity"].tolist() == pytest.approx(eq["equity"].tolist(), rel=1e-12)
    assert json.loads((out_dir / "meta.json").read_text())["run_id"] == meta["run_id"]


def test_runs_export_when_out_is_the_run_folder_then_refused_and_ledger_untouched(
        runs, capsys):
    before = (runs / "a-step" / "ledger.sqlite").read_bytes()
    code, _, err = cli(capsys, "runs", "export", "a-step", "--run-dir", str(runs), "--out",
                       str(runs / "a-step"))
    assert code == 2 and "run's own folder" in err
    assert (runs / "a-step" / "ledger.sqlite").read_bytes() == before


def test_runs_export_when_run_is_unknown_then_exit_2_naming_it(runs, tmp_path, capsys):
    code, _, err = cli(capsys, "runs", "export", "zzz", "--run-dir", str(runs), "--out",
                       str(tmp_path / "x"))
    assert code == 2 and "'zzz'" in err and "research-lib runs list" in err
    assert not (tmp_path / "x").exists()


def test_runs_when_no_run_dir_given_then_the_homes_runs_folder(tmp_path, monkeypatch, capsys):
    from research_lib.project import init_home

    home = tmp_path / "h"
    init_home(home)
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    run_session(symbols=["SPY"], start="2018-01-02", end="2018-01-20",
                model="baseline:buy_and_hold", run_id="mine", log_file=False)
    code, out, _ = cli(capsys, "runs", "list", "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == ["mine"]
    assert json.loads(out)[0]["ledger"] == str(home / "runs" / "mine" / "ledger.sqlite")
