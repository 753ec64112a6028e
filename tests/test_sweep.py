"""Parameter sweeps (issue 15): research_lib.sweep and research-lib sweep, offline on the
shipped sample, short windows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

import research_lib as rl
from research_lib.cli import main
from research_lib.config_overrides import check_settings_overrides
from research_lib.errors import ConfigError
from research_lib.ledger_read import deterministic_dump
from research_lib.sweeps import expand, parse_grid_args, split_point

SYMS = ["SPY", "QQQ"]
WINDOW = {"start": "2017-01-01", "end": "2017-06-30"}
MODEL = "baseline:sma_cross"
GRID = {"risk.max_position_pct": [0.1, 0.15], "signal.target_weight": [0.05, 0.1]}
METRICS = ["total_return_pct", "sharpe", "max_drawdown_pct", "fills", "final_equity", "steps"]


def _sweep(out: Path, **kw):
    args = {"model": MODEL, "jobs": 2, **WINDOW, **kw}
    grid = args.pop("grid", None)
    if grid is None and "points" not in args:
        grid = GRID
    return rl.sweep(SYMS, grid, out=out, **args)


@pytest.fixture(scope="module")
def loky_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    calls: list[tuple[int, int]] = []
    res = _sweep(out, backend="local", progress=lambda d, t: calls.append((d, t)))
    return res, calls


def test_sweep_when_run_on_loky_then_one_ok_row_per_point_in_parquet(loky_sweep):
    res, calls = loky_sweep
    table = pd.read_parquet(res.results_path)
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert table[["risk.max_position_pct", "signal.target_weight"]].values.tolist() == [
        [0.1, 0.05], [0.1, 0.1], [0.15, 0.05], [0.15, 0.1]]
    assert table["run_id"].tolist() == [f"{res.sweep_id}-p{i:04d}" for i in range(4)]
    assert (table["steps"] > 100).all() and (table["wall_s"] > 0).all()
    # a larger target weight trades more: the override reached the run
    assert table.loc[1, "fills"] > table.loc[0, "fills"]
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and len(calls) == 5
    assert (res.ran, res.skipped, res.failed) == (4, 0, 0)


def test_sweep_point_when_compared_then_same_ledger_as_a_solo_run(loky_sweep, tmp_path):
    res, _ = loky_sweep
    row = res.table.iloc[1]
    solo = rl.run_session(symbols=SYMS, source="sample", model=MODEL, fast=True,
                          risk={"max_position_pct": 0.1},
                          settings={"signal": {"target_weight": 0.1}},
                          run_dir=tmp_path / "solo", **WINDOW)
    point = deterministic_dump(res.out / "runs" / row["run_id"] / "ledger.sqlite")
    assert point == deterministic_dump(solo.ledger_path)
    assert solo.summary["fills"] == row["fills"]


def test_sweep_when_run_serially_and_on_dask_then_same_table_as_loky(loky_sweep, tmp_path):
    res, _ = loky_sweep
    serial = _sweep(tmp_path / "serial", backend="serial")
    # no scheduler address: the sweep starts a LocalCluster of 2 worker processes itself
    # (loopback only: the tests are offline) and closes it
    dask = _sweep(tmp_path / "dask", backend="dask", jobs=2)
    want = res.table.drop(columns=["wall_s"])
    # every metric to the last digit (check_exact: no tolerance on the floats)
    pd.testing.assert_frame_equal(serial.table.drop(columns=["wall_s"]), want,
                                  check_exact=True)
    pd.testing.assert_frame_equal(dask.table.drop(columns=["wall_s"]), want, check_exact=True)
    assert dask.sweep_id == res.sweep_id  # the same sweep: the same id and run ids
    assert (dask.table["status"] == "ok").all() and dask.table["sharpe"].notna().all()


def test_sweep_on_a_dask_scheduler_address_when_run_then_same_table(loky_sweep, tmp_path):
    from distributed import LocalCluster

    res, _ = loky_sweep
    # a scheduler in this process (light), on loopback only
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp", dashboard_address=None) as cluster:
        dask = _sweep(tmp_path / "dask", backend="dask", scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(dask.table.drop(columns=["wall_s"]),
                                  res.table.drop(columns=["wall_s"]), check_exact=True)


def test_sweep_report_when_written_then_self_contained_sorted_with_two_figures(loky_sweep):
    res, _ = loky_sweep
    page = res.report_path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2  # heatmap, best vs median equity
    assert "<script" not in page and "http://" not in page and "https://" not in page
    body = page.split("<tbody>")[1]
    best = res.table.sort_values(["sharpe", "point"], ascending=[False, True]).iloc[0]
    assert body.index(best["run_id"]) == min(body.index(r) for r in res.table["run_id"])


def test_sweep_when_a_point_fails_then_recorded_and_the_rerun_skips_finished(tmp_path):
    points = [{"signal.target_weight": 0.05}, {"start": "2031-01-01"}]
    first = _sweep(tmp_path / "o", points=points, jobs=1, backend="serial", report=False)
    t = first.table
    assert t["status"].tolist() == ["ok", "failed"]
    assert "ConfigError" in t.loc[1, "error"] and "2031-01-01" in t.loc[1, "error"]
    assert t.loc[0, "fills"] > 0 and pd.isna(t.loc[1, "sharpe"])
    ledger = tmp_path / "o" / "runs" / t.loc[0, "run_id"] / "ledger.sqlite"
    stamp = ledger.stat().st_mtime_ns
    again = _sweep(tmp_path / "o", points=points, jobs=1, backend="serial", report=False)
    assert (again.ran, again.skipped, again.failed) == (1, 1, 1)
    assert ledger.stat().st_mtime_ns == stamp  # the finished point was not run again
    assert again.table.loc[0, "wall_s"] == t.loc[0, "wall_s"]


def test_sweep_when_out_holds_another_sweep_then_refused(tmp_path):
    _sweep(tmp_path / "o", points=[{"signal.target_weight": 0.05}], backend="serial",
           report=False)
    with pytest.raises(ConfigError, match="holds sweep sweep-"):
        _sweep(tmp_path / "o", points=[{"signal.target_weight": 0.1}], backend="serial")


def test_grid_when_parsed_then_cartesian_product_in_order():
    grid = parse_grid_args(["risk.max_position_pct=0.1,0.15", "signal.target_weight=0.05",
                            "model=baseline:sma_cross,baseline:buy_and_hold",
                            "symbols=SPY,QQQ;SPY"])
    assert grid["risk.max_position_pct"] == [0.1, 0.15]
    assert grid["model"] == ["baseline:sma_cross", "baseline:buy_and_hold"]
    assert grid["symbols"] == ["SPY,QQQ", "SPY"]
    pts = expand(grid)
    assert len(pts) == 8 and pts[0]["risk.max_position_pct"] == 0.1
    assert split_point(pts[0]) == {"model": "baseline:sma_cross", "symbols": ["SPY", "QQQ"],
                                   "risk": {"max_position_pct": 0.1},
                                   "settings": {"signal": {"target_weight": 0.05}}}


@pytest.mark.parametrize("point, words", [
    ({"signal.target_wait": 0.1}, ["signal.target_wait", "target_weight"]),
    ({"signal.target_weight": 1.5}, ["signal.target_weight", "1.5"]),
    ({"risk.max_position_pct": 2}, ["risk.max_position_pct", "2"]),
    ({"gate.jump_confirm_bars": 2}, ["gate.jump_confirm_bars", "risk, signal, session"]),
    ({"session.run_dir": "x"}, ["session.run_dir", "--out"]),
    ({"window": 3}, ["'window'", "risk.<limit>"]),
    ({"fast": "yes"}, ["sweep key fast", "'yes'", "true or false"]),
])
def test_grid_when_a_key_or_value_is_bad_then_refused_naming_it(point, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        rl.sweep(SYMS, points=[point], out=tmp_path / "o")
    for w in words:
        assert w in str(err.value)
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_grid_arg_when_malformed_then_refused():
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid_args(["risk.max_position_pct"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid_args(["signal.target_weight=0.1", "signal.target_weight=0.2"])


def test_settings_override_when_thresholds_cross_then_refused_and_nothing_changed(tmp_path):
    env = dict(os.environ)
    with pytest.raises(ConfigError, match="short_threshold"):
        rl.run_session(symbols=["SPY"], model=MODEL, run_dir=tmp_path / "r", fast=True,
                       settings={"signal": {"short_threshold": 0.6}}, **WINDOW)
    assert dict(os.environ) == env
    with pytest.raises(ConfigError, match="section 'gate' cannot be overridden"):
        check_settings_overrides({"gate": {"jump_confirm_bars": 2}})
    with pytest.raises(ConfigError, match="session.slippage_bps"):
        check_settings_overrides({"session": {"slippage_bps": -1}})


def test_settings_override_when_given_then_the_run_uses_it(tmp_path):
    base = rl.run_session(symbols=["SPY"], model=MODEL, run_dir=tmp_path, fast=True,
                          **WINDOW)
    costly = rl.run_session(symbols=["SPY"], model=MODEL, run_dir=tmp_path, fast=True,
                            settings={"session": {"commission_bps": 50.0}}, **WINDOW)
    assert costly.trades["commission"].sum() > 10 * base.trades["commission"].sum() > 0


def test_cli_sweep_when_json_then_one_object_per_point(tmp_path, capsys):
    rc = main(["sweep", "--symbols", "SPY", "--model", MODEL, "--grid",
               "signal.target_weight=0.05,0.1", "--start", WINDOW["start"], "--end",
               WINDOW["end"], "--backend", "serial", "--out", str(tmp_path / "o"), "--json",
               "--no-report"])
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert rc == 0 and [r["signal.target_weight"] for r in rows] == [0.05, 0.1]
    assert {r["status"] for r in rows} == {"ok"} and out.err == ""
    assert not (tmp_path / "o" / "sweep.html").exists()
    rc = main(["sweep", "--symbols", "SPY", "--grid", "risk.max_position_pct=0.1",
               "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "p")])
    assert rc == 2 and "--scheduler tcp://127.0.0.1:1 needs --backend dask" in \
        capsys.readouterr().err
