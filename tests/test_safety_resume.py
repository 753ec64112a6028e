"""Issue 10, class 1: a resume continues exactly the run that was started, or refuses.

``paper --resume RUN`` refuses the options that would change the run, a config folder whose
values differ from the ones the run last applied, a changed model file, bars the run
already consumed that now differ, and a ledger without recorded inputs: exit 2 naming each
difference and the fix; the ledger is left as it was (research_lib.resume).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.ledger_read import deterministic_dump
from research_lib.run_files import ledger_path
from tests.kit.paper import (
    NO_COSTS,
    FrameSource,
    ScriptedModel,
    edit_yaml,
    make_session,
    random_walk,
    write_config,
)

SYM = "AAA-USD"  # 24/7 (crypto class): synthetic daily bars on any day are valid
ROOT = Path(__file__).resolve().parents[1]


def write_csv(folder: Path, frames: dict[str, pd.DataFrame]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for sym, df in frames.items():
        df.rename_axis("timestamp").to_csv(folder / f"{sym}.csv")
    return f"csv:{folder}"


def paper(capsys, *argv: str) -> tuple[int, dict, str]:
    """``research-lib paper ARGV --json``: exit code, summary, stderr."""
    code = main(["paper", *argv, "--json"])
    cap = capsys.readouterr()
    out = cap.out.strip()
    return code, json.loads(out) if out.startswith("{") else {}, cap.err


class Run:
    """A CSV-sourced run of ``SYM`` started from the command line and stopped after
    ``steps`` steps (as a kill would leave it), ready to be resumed."""

    def __init__(self, tmp: Path, capsys, steps: int = 10, n: int = 60, **risk: float) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.csv = tmp / "csv"
        self.df = random_walk(n, seed=5, symbol=SYM)
        self.source = write_csv(self.csv, {SYM: self.df})
        self.cfg = write_config(tmp / "config", risk={"max_position_pct": 0.15, **risk},
                                session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS,
                                         "kill_file": str(tmp / "kill.flag")},
                                signal={"target_weight": 0.15})
        self.runs = tmp / "runs"
        code, self.first, err = paper(
            capsys, "--symbols", SYM, "--source", self.source, "--start", "2021-01-15",
            "--model", "baseline:buy_and_hold", "--run-id", "r1", "--max-steps", str(steps),
            "--run-dir", str(self.runs), "--config-dir", str(self.cfg))
        assert code == 0, err
        assert self.first["steps"] == steps
        self.ledger = ledger_path(self.runs, "r1")
        self.dump = deterministic_dump(self.ledger)

    def resume(self, *argv: str, config: Path | None = None) -> tuple[int, dict, str]:
        return paper(self.capsys, "--resume", "r1", "--run-dir", str(self.runs),
                     "--config-dir", str(config or self.cfg), *argv)

    def rewrite(self, df: pd.DataFrame) -> None:
        write_csv(self.csv, {SYM: df})

    def step_ts(self, step: int) -> str:
        with sqlite3.connect(self.ledger) as c:
            return c.execute("SELECT ts FROM steps WHERE step = ?", (step,)).fetchone()[0]

    def unchanged(self) -> bool:
        return deterministic_dump(self.ledger) == self.dump


# ------------------------------------------------------------------- options
FIXED = [
    ("--dry-run",),
    ("--start", "2021-01-25"),
    ("--end", "2021-02-10"),
    ("--model", "baseline:sma_cross"),
    ("--source", "sample"),
    ("--interval", "1h"),
    ("--mode", "live"),
    ("--run-id", "other"),
    ("--symbols", SYM),
]


@pytest.mark.parametrize("option", FIXED, ids=[o[0] for o in FIXED])
def test_cli_resume_when_an_option_that_fixes_the_run_is_given_then_exit_2_and_nothing_written(
        tmp_path, capsys, option):
    run = Run(tmp_path, capsys, steps=8)
    code, summary, err = run.resume(*option)
    assert code == 2, (summary, err)
    assert f"{option[0]} " in err and "cannot be used with --resume" in err, err
    assert "start a new run" in err
    assert run.unchanged()
    code, summary, err = run.resume("--max-steps", "3")  # without it: continues
    assert code == 0, err
    assert summary["steps"] == 11 and summary["dry_run"] is False


@pytest.mark.parametrize("field,value", [("dry_run", True), ("start", "2021-01-25"),
                                         ("end", "2021-02-10"), ("interval", "1h"),
                                         ("mode", "replay"), ("model", "baseline:sma_cross"),
                                         ("run_id", "other"), ("source", "sample"),
                                         ("symbols", [SYM])])
def test_api_resume_when_spec_sets_a_field_that_fixes_the_run_then_config_error_names_it(
        tmp_path, capsys, field, value):
    run = Run(tmp_path, capsys, steps=4)
    s = make_session(tmp_path, resume="r1", run_dir=run.runs, config_dir=run.cfg,
                     **{field: value})
    with pytest.raises(ConfigError, match="cannot be used with --resume"):
        s.run()
    assert run.unchanged()


# -------------------------------------------------------------------- config
def test_cli_resume_when_config_dir_has_looser_limits_then_exit_2_naming_each_difference(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=8)
    loose = write_config(tmp_path / "loose", risk={"max_position_pct": 0.6,
                                                   "max_drawdown_pct": 0.5},
                         session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS,
                                  "kill_file": str(tmp_path / "kill.flag")},
                         signal={"target_weight": 0.55})
    code, _, err = run.resume(config=loose)
    assert code == 2
    assert "risk.max_position_pct: 0.15 -> 0.6" in err
    assert "risk.max_drawdown_pct: 0.2 -> 0.5" in err
    assert "signal.target_weight: 0.15 -> 0.55" in err
    assert "start a new run" in err and str(loose) in err
    assert f"the run was started with --config-dir {run.cfg}" in err
    assert run.unchanged()


@pytest.mark.parametrize("edit,expect", [
    (lambda cfg: edit_yaml(cfg / "risk.yaml", "risk", max_position_pct=0.5),
     "risk.max_position_pct: 0.15 -> 0.5"),
    (lambda cfg: edit_yaml(cfg / "session.yaml", "session", commission_bps=0.5),
     "session.commission_bps: 0.0 -> 0.5"),
    (lambda cfg: edit_yaml(cfg / "assets.yaml", "overrides", **{SYM: "equities"}),
     f"assets.overrides.{SYM}: '<absent>' -> 'equities'"),
    # the bar gate's thresholds decide which re-fed bars count (merged with class 5)
    (lambda cfg: edit_yaml(cfg / "session.yaml", "gate", jump_threshold_xnys=0.5),
     "gate.jump_threshold_xnys: 0.25 -> 0.5"),
], ids=["risk", "session", "assets-overrides", "gate"])
def test_cli_resume_when_a_config_file_was_edited_after_the_kill_then_exit_2_key_recorded_now(
        tmp_path, capsys, edit, expect):
    run = Run(tmp_path, capsys, steps=6)
    edit(run.cfg)
    code, _, err = run.resume()
    assert code == 2
    assert expect in err, err
    assert run.unchanged()


def test_cli_resume_when_a_config_file_is_invalid_then_exit_2_and_nothing_written(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=6)
    edit_yaml(run.cfg / "risk.yaml", "risk", max_position_pct=7.0)
    code, _, err = run.resume()
    assert code == 2 and "max_position_pct" in err
    assert run.unchanged()


def test_resume_after_a_hot_reload_then_checks_against_the_reloaded_config(tmp_path):
    src = write_csv(tmp_path / "csv", {SYM: random_walk(60, seed=9, symbol=SYM)})
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 0.15},
                       session={"warmup_bars": 5, **NO_COSTS}, signal={"target_weight": 0.1})

    def hook(call: int) -> None:
        if call == 3:  # mid-run: tighten the position limit (applied by the hot reload)
            edit_yaml(cfg / "risk.yaml", "risk", max_position_pct=0.125)

    first = make_session(tmp_path, symbols=[SYM], source=src, start="2021-01-15", max_steps=8,
                         run_id="hr", config_dir=cfg,
                         router=ScriptedModel([SYM], hook=hook)).run()
    assert first.exit_code == 0
    rows = sqlite3.connect(first.ledger_path).execute(
        "SELECT step FROM config_history").fetchall()
    assert rows == [(3,)]  # read at the step after the edit
    # the reloaded file is what the run applies now: the resume continues
    again = make_session(tmp_path, resume="hr", max_steps=3, router=ScriptedModel([SYM]),
                         config_dir=cfg).run()
    assert again.exit_code == 0 and again.summary["steps"] == 11
    # the file put back to the start's value differs from what the run last applied
    edit_yaml(cfg / "risk.yaml", "risk", max_position_pct=0.15)
    s = make_session(tmp_path, resume="hr", router=ScriptedModel([SYM]), config_dir=cfg)
    with pytest.raises(ConfigError, match=r"risk.max_position_pct: 0.125 -> 0.15"):
        s.run()


# ---------------------------------------------------------------------- bars
def test_cli_resume_when_csv_prices_were_halved_after_the_kill_then_exit_2_naming_first_step(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=10)
    changed = pd.Timestamp(run.step_ts(4))
    df = run.df.copy()
    cols = ["open", "high", "low", "close"]
    df.loc[df.index >= changed, cols] = df.loc[df.index >= changed, cols] / 2
    run.rewrite(df)
    code, _, err = run.resume()
    assert code == 2, err
    assert f"first at step 4 (recorded at {run.step_ts(4)}" in err, err
    assert f"{SYM} close" in err and "start a new run" in err
    assert run.unchanged()
    code, _, err = run.resume("--fast")  # the fast engine checks the same
    assert code == 2 and "first at step 4" in err
    assert run.unchanged()


def test_api_resume_when_the_source_object_serves_other_prices_then_config_error(tmp_path):
    # a Source object cannot be stored: the caller passes it again; the bars must match
    df = random_walk(60, seed=11, symbol=SYM)
    kw = dict(model="baseline:buy_and_hold", run_dir=tmp_path / "runs")
    first = make_session(tmp_path, symbols=[SYM], source=FrameSource({SYM: df}),
                         start="2021-01-20", run_id="obj", max_steps=8, **kw).run()
    assert first.summary["steps"] == 8
    before = deterministic_dump(first.ledger_path)
    other = df.copy()
    other.loc[other.index[-45:], "close"] *= 1.01  # from the 16th bar: inside the 8 steps
    s = make_session(tmp_path, resume="obj", source=FrameSource({SYM: other}),
                     run_dir=tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"the bars differ from the ones the run consumed, "
                                          r"first at step \d"):
        s.run()
    assert deterministic_dump(first.ledger_path) == before
    same = make_session(tmp_path, resume="obj", source=FrameSource({SYM: df}),
                        run_dir=tmp_path / "runs").run()
    assert same.exit_code == 0 and same.summary["steps_this_session"] > 0


def test_cli_resume_when_every_price_was_halved_then_exit_2_at_step_0(tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=10)
    df = run.df.copy()
    df[["open", "high", "low", "close"]] /= 2
    run.rewrite(df)
    code, _, err = run.resume()
    assert code == 2 and "first at step 0" in err and "warm-up" in err, err
    assert run.unchanged()


def test_cli_resume_when_a_volume_changed_in_the_warmup_then_exit_2(tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=5)
    df = run.df.copy()
    warm = df.index[df.index < pd.Timestamp("2021-01-15", tz="UTC")][-1]  # the last warm-up bar
    df.loc[warm, "volume"] += 1.0
    run.rewrite(df)
    code, _, err = run.resume()
    assert code == 2 and "first at step 0" in err, err
    assert run.unchanged()


def test_cli_resume_when_the_data_no_longer_reaches_the_last_committed_step_then_exit_2(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=10)
    run.rewrite(run.df[run.df.index <= pd.Timestamp(run.step_ts(5))])
    code, _, err = run.resume()
    assert code == 2 and "the data now ends before committed step 6" in err, err
    assert run.unchanged()


def test_cli_resume_when_only_bars_after_the_last_committed_step_changed_then_it_continues(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=10)
    df = run.df.copy()
    later = df.index > pd.Timestamp(run.step_ts(9))
    df.loc[later, "volume"] += 1.0  # not consumed yet: not part of the run so far
    run.rewrite(df)
    code, summary, err = run.resume()
    assert code == 0, err
    assert summary["steps_this_session"] > 0


def test_bar_digests_when_written_by_the_fast_engine_then_equal_to_the_step_engine(tmp_path):
    src = write_csv(tmp_path / "csv", {SYM: random_walk(120, seed=4, symbol=SYM)})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 20})
    got = {}
    for fast in (False, True):
        res = make_session(tmp_path / str(fast), symbols=[SYM], source=src, start="2021-02-01",
                           model="baseline:sma_cross", run_id="d", config_dir=cfg,
                           fast=fast).run()
        got[fast] = sqlite3.connect(res.ledger_path).execute(
            "SELECT step, digest FROM bar_digests ORDER BY step").fetchall()
        assert [r[0] for r in got[fast]] == list(range(res.summary["steps"]))
    assert got[False] == got[True]
    assert len({d for _, d in got[False]}) == len(got[False])  # rolling: all distinct


def test_cli_resume_when_bar_fingerprints_are_missing_then_exit_2(tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=6)
    with sqlite3.connect(run.ledger) as c:
        c.execute("DELETE FROM bar_digests WHERE step = 3")
    code, _, err = run.resume()
    assert code == 2 and "no bar fingerprint for committed step 3" in err, err


def test_cli_resume_when_a_relative_kill_file_resolves_elsewhere_then_exit_2(
        tmp_path, capsys, monkeypatch):
    # kill_file 'kill.flag' is taken from the project home (the one rule for relative
    # paths): resumed under another home, the session would watch another file than the
    # operator's; from another working folder under the same home it is the same file
    source = write_csv(tmp_path / "csv", {SYM: random_walk(40, seed=2, symbol=SYM)})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 5, "kill_file": "kill.flag"})
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    common = ["--run-dir", str(tmp_path / "runs"), "--config-dir", str(cfg)]
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path / "a"))
    code, _, err = paper(capsys, "--symbols", SYM, "--source", source, "--start", "2021-01-15",
                         "--model", "baseline:buy_and_hold", "--run-id", "k", "--max-steps",
                         "4", *common)
    assert code == 0, err
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path / "b"))
    code, _, err = paper(capsys, "--resume", "k", *common)
    assert code == 2
    assert (f"kill switch file (a relative session.kill_file is taken from the project "
            f"home, else the working directory): '{tmp_path / 'a' / 'kill.flag'}' -> "
            f"'{tmp_path / 'b' / 'kill.flag'}'" in err), err
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path / "a"))
    monkeypatch.chdir(tmp_path / "b")  # another working folder, the same home: same file
    code, summary, err = paper(capsys, "--resume", "k", "--max-steps", "2", *common)
    assert code == 0 and summary["steps"] == 6, err


# ------------------------------------------------------- models, old ledgers
def test_cli_resume_when_the_ledger_predates_recorded_inputs_then_exit_2_start_a_new_run(
        tmp_path, capsys):
    run = Run(tmp_path, capsys, steps=6)
    with sqlite3.connect(run.ledger) as c:
        c.execute("DELETE FROM meta WHERE key = 'inputs'")
    before = deterministic_dump(run.ledger)
    code, _, err = run.resume()
    assert code == 2
    assert "did not record the run's inputs" in err and "start a new run" in err, err
    assert deterministic_dump(run.ledger) == before


def test_cli_resume_when_the_forced_model_file_changed_then_exit_2_naming_the_model(
        tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(ROOT / "config", home / "config")
    shutil.copytree(ROOT / "models", home / "models")
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    runs = str(tmp_path / "runs")
    code, first, err = paper(capsys, "--symbols", "SPY", "--start", "2018-01-01", "--end",
                             "2018-03-01", "--model", "universal_v1", "--run-id", "m",
                             "--max-steps", "5", "--run-dir", runs)
    assert code == 0, err
    # the file replaced by another model and its pin updated to match: the router would serve it
    other = home / "models" / "equities_v1.onnx"
    shutil.copy(other, home / "models" / "universal_v1.onnx")
    import hashlib
    new_sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assets = home / "config" / "assets.yaml"
    text = assets.read_text()
    old_sha = "f18b5abc7c897d2068a6769a9b0366668d146ed238566e82d045fa5bfa43d5d6"
    assert old_sha in text
    assets.write_text(text.replace(old_sha, new_sha))
    code, _, err = paper(capsys, "--resume", "m", "--run-dir", runs)
    assert code == 2
    assert f"model file universal_v1 sha256: '{old_sha}' -> '{new_sha}'" in err, err
    assert f"assets.models.universal_v1.sha256: '{old_sha}' -> '{new_sha}'" in err


# ---------------------------------------------------------------- red team (round 2 merged)
@pytest.mark.parametrize("option", ["--config-dir", "--run-dir"])
def test_cli_paper_when_a_folder_option_is_empty_then_exit_2_not_the_default_folder(
        tmp_path, capsys, monkeypatch, option):
    """``--config-dir "$TIGHT"`` with TIGHT unset ran on the project's config (another
    folder's limits, silently; a resume compared against that folder too); an empty
    ``--run-dir`` wrote under the default runs folder. An empty folder option is refused."""
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path))
    write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    other = {"--config-dir": ("--run-dir", str(tmp_path / "runs")),
             "--run-dir": ("--config-dir", str(tmp_path / "config"))}[option]
    code, _, err = paper(capsys, "--symbols", "SPY", "--start", "2018-01-01", "--end",
                         "2018-02-01", "--model", "baseline:buy_and_hold", option, "", *other)
    assert code == 2, err
    assert f"{option} is empty" in err
    assert not (tmp_path / "runs").exists()
