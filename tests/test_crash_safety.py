"""Crash and restart, in process: a step the ledger cannot take (read-only file, full disk)
is rolled back and latches the account HALTED, so a resume starts HALTED; latched daily-loss
and drawdown states hold through a CLI ``--resume`` on the same day; the kill switch flipped
between the signal and the order stops that order; a kill file at start is recorded.

The SIGKILL fault injection and the double Ctrl+C run the CLI in a subprocess:
tests/acceptance/test_crash_restart.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from research_lib.cli import main
from research_lib.flags import KillSwitch
from research_lib.ledger import Ledger
from research_lib.ledger_read import deterministic_dump, read_run
from research_lib.run_files import halt_marker_path
from tests.kit.paper import (
    NO_COSTS,
    FrameSource,
    ScriptedModel,
    frame,
    make_session,
    random_walk,
    write_config,
)

SYM = "AAA-USD"  # a 24/7 (crypto-class) symbol: synthetic bars on any day and hour are valid


def walk(n: int = 40) -> dict:
    return {SYM: random_walk(n, seed=3, symbol=SYM)}


def write_csv(folder: Path, frames: dict) -> str:
    """Frames as a CSV folder, so a run can be resumed from the command line."""
    folder.mkdir(parents=True, exist_ok=True)
    for sym, df in frames.items():
        df.rename_axis("timestamp").to_csv(folder / f"{sym}.csv")
    return f"csv:{folder}"


def flip(prob_up: float = 1.0):
    """Long on even bar counts, flat on odd ones: an order at every step."""
    return lambda s, n, c: prob_up if n % 2 == 0 else 0.0


def without_halt_rows(dump: dict) -> dict:
    out = dict(dump)
    out["state_changes"] = [r for r in dump["state_changes"]
                            if not str(r[5]).startswith("LEDGER_WRITE_FAILED")]
    return out


def cli_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["paper", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else {}


# --------------------------------------------- a step the ledger cannot take
def test_read_only_ledger_rolls_the_step_back_latches_halted_and_a_resume_starts_halted(
        tmp_path):
    box = {}

    def hook(call: int) -> None:
        if call == 5:  # during step 4: the ledger turns read-only before its commit
            box["s"].ledger.conn.execute("PRAGMA query_only=1")

    src = FrameSource(walk())
    kw = dict(symbols=[SYM], source=src, start="2021-01-20", run_id="ro")
    s = make_session(tmp_path, router=ScriptedModel([SYM], prob=flip(), hook=hook), **kw)
    box["s"] = s
    res = s.run()

    assert res.exit_code == 3 and res.summary["state"] == "HALTED"
    err = res.summary["error"]
    assert "step 4 could not be committed (attempt to write a readonly database)" in err
    marker = halt_marker_path(res.ledger_path)  # the ledger takes no row: a marker file
    assert f"The account is HALTED (recorded in {marker})" in err
    assert "research-lib reset-halt ro" in err
    assert json.loads(marker.read_text())["reason"].startswith("LEDGER_WRITE_FAILED: step=4")
    # the committed state is exactly that of the same run stopped after 4 steps
    ref = make_session(tmp_path / "ref", router=ScriptedModel([SYM], prob=flip()),
                       max_steps=4, **kw).run()
    assert deterministic_dump(res.ledger_path) == deterministic_dump(ref.ledger_path)

    with Ledger.open(res.ledger_path, readonly=True) as led:
        st = led.load_state()
    assert st.state == "HALTED" and st.halt_reason.startswith("LEDGER_WRITE_FAILED: step=4")
    assert st.last_step == 3

    again = make_session(tmp_path, resume="ro", source=src,
                         router=ScriptedModel([SYM], prob=flip()), max_steps=3).run()
    assert again.exit_code == 0 and again.summary["state"] == "HALTED"
    assert not marker.exists()  # moved into the ledger
    run = read_run(again.ledger_path)
    sc = run["state_changes"]
    [halt] = sc[sc["reason"].str.startswith("LEDGER_WRITE_FAILED")].itertuples()
    assert (halt.step, halt.scope, halt.to_state) == (3, "account", "HALTED")
    eq = run["equity"].set_index("step")
    assert (eq.loc[4:, "state"] == "HALTED").all()
    new = run["orders"][run["orders"]["step"] >= 4]
    assert set(new["kind"]) <= {"flatten"}  # closing orders only
    assert run["positions"].set_index(["step", "symbol"]).loc[(6, SYM), "qty"] == 0.0

    assert main(["reset-halt", "ro", "--run-dir", str(tmp_path / "runs")]) == 0
    after = make_session(tmp_path, resume="ro", source=src,
                         router=ScriptedModel([SYM], prob=flip())).run()
    assert after.summary["state"] == "ACTIVE"
    buys = read_run(after.ledger_path)["orders"].query("side == 'BUY' and step > 6")
    assert len(buys) > 0  # trading again only after a person reset the halt


def _read_only_at_step_4(tmp_path, run_id):
    box = {}

    def hook(call: int) -> None:
        if call == 5:
            box["s"].ledger.conn.execute("PRAGMA query_only=1")

    s = make_session(tmp_path, symbols=[SYM], source=FrameSource(walk()), start="2021-01-20",
                     router=ScriptedModel([SYM], prob=flip(), hook=hook), run_id=run_id)
    box["s"] = s
    return s.run()


def test_reset_halt_clears_a_halt_marker_left_by_a_failed_step(tmp_path, capsys):
    res = _read_only_at_step_4(tmp_path, "mk")
    marker = halt_marker_path(res.ledger_path)
    assert res.exit_code == 3 and marker.is_file()
    assert main(["reset-halt", "mk", "--run-dir", str(tmp_path / "runs")]) == 0
    assert "HALTED -> ACTIVE" in capsys.readouterr().out
    assert not marker.exists()
    with Ledger.open(res.ledger_path, readonly=True) as led:
        st = led.load_state()
    assert st.state == "ACTIVE"
    sc = [r[0] for r in led_rows(res.ledger_path, "SELECT reason FROM state_changes "
                                                  "WHERE scope='account' ORDER BY seq")]
    assert sc[0].startswith("LEDGER_WRITE_FAILED: step=4") and sc[1].startswith("RESET_HALT")


def test_a_halt_that_nothing_can_record_is_said_plainly(tmp_path, monkeypatch):
    def no_new_file(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "touch", no_new_file)
    res = _read_only_at_step_4(tmp_path, "nothing")
    assert res.exit_code == 3 and res.summary["state"] == "HALTED"
    assert ("The account is HALTED (NOT recorded: nothing could be written; a resume fails "
            "the same way until the disk has room)") in res.summary["error"]
    assert not halt_marker_path(res.ledger_path).exists()


def led_rows(path, sql):
    with Ledger.open(path, readonly=True) as led:
        return led.conn.execute(sql).fetchall()


def test_full_disk_rolls_the_step_back_latches_halted_and_a_cli_resume_starts_halted(
        tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    source = write_csv(tmp_path / "csv", walk(60))
    box = {}

    def hook(call: int) -> None:
        if call == 4:  # from step 3 on, SQLite may not grow the file: a full disk
            conn = box["s"].ledger.conn
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={pages}")

    kw = dict(symbols=[SYM], source=source, start="2021-01-20", run_id="full",
              config_dir=cfg)
    s = make_session(tmp_path, router=ScriptedModel([SYM], prob=flip(), hook=hook), **kw)
    box["s"] = s
    res = s.run()
    assert res.exit_code == 3 and res.summary["state"] == "HALTED"
    failed = res.summary["steps"]  # committed steps before the one that did not fit
    assert failed >= 3
    assert (f"step {failed} could not be committed (database or disk is full)"
            in res.summary["error"])
    assert "The account is HALTED (recorded in the ledger)" in res.summary["error"]
    assert not halt_marker_path(res.ledger_path).exists()
    ref = make_session(tmp_path / "ref", router=ScriptedModel([SYM], prob=flip()),
                       max_steps=failed, **{**kw, "config_dir": cfg}).run()
    assert (without_halt_rows(deterministic_dump(res.ledger_path))
            == deterministic_dump(ref.ledger_path))  # the previous state, intact

    # the command-line resume (a new connection: the disk has room again) starts HALTED
    code, summary = cli_json(capsys, "--resume", "full", "--run-dir", str(tmp_path / "runs"),
                             "--config-dir", str(cfg), "--max-steps", "4")
    assert code == 0 and summary["state"] == "HALTED"
    run = read_run(summary["ledger"])
    eq = run["equity"].set_index("step")
    assert (eq.loc[failed:, "state"] == "HALTED").all()
    assert set(run["orders"].query(f"step >= {failed}")["kind"]) <= {"flatten"}


def test_a_run_folder_that_cannot_be_locked_is_refused_with_a_clear_message(tmp_path):
    src = FrameSource(walk())
    make_session(tmp_path, symbols=[SYM], source=src, start="2021-01-20", run_id="lk",
                 max_steps=3, model="baseline:buy_and_hold").run()
    ledger = tmp_path / "runs" / "lk" / "ledger.sqlite"
    before = deterministic_dump(ledger)
    lock = ledger.with_name("ledger.sqlite.lock")
    lock.unlink()
    lock.mkdir()  # the lock file cannot be opened for writing (works as root, unlike chmod)
    with pytest.raises(Exception, match=r"cannot lock the run for writing .*Refusing to trade"):
        make_session(tmp_path, resume="lk", source=src, model="baseline:buy_and_hold").run()
    assert deterministic_dump(ledger) == before


# ------------------------------------------- latched halts through a CLI resume
def test_daily_loss_reducing_holds_after_a_cli_resume_on_the_same_day(tmp_path, capsys):
    # hourly bars; hours 0-4 warm up; buys at hour 5; a 10% drop at hour 7: 5% loss on the
    # day -> REDUCING. The first session stops at hour 9; by the resume (hour 10) the price
    # is back to 99, a 0.5% loss: only the latch, not the numbers, keeps it REDUCING
    closes = [100.0] * 7 + [90.0] * 3 + [99.0] * 27
    source = write_csv(tmp_path / "csv", {SYM: frame(closes, start="2021-01-04 00:00",
                                                      freq="h", symbol=SYM)})
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 1.0},
                       session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS,
                                "kill_file": str(tmp_path / "kill.flag")},
                       signal={"target_weight": 0.5})
    common = ["--run-dir", str(tmp_path / "runs"), "--config-dir", str(cfg)]
    code, first = cli_json(capsys, "--symbols", SYM, "--source", source, "--interval", "1h",
                           "--start", "2021-01-04 05:00", "--model", "baseline:buy_and_hold",
                           "--run-id", "dl", "--max-steps", "5", *common)
    assert code == 0 and first["state"] == "REDUCING"
    code, again = cli_json(capsys, "--resume", "dl", "--max-steps", "5", *common)
    assert code == 0 and again["state"] == "REDUCING"  # same day: still reducing
    run = read_run(again["ledger"])
    eq = run["equity"].set_index("step")
    assert (eq.loc[5:9, "day"] == "2021-01-04").all()
    assert (eq.loc[2:9, "state"] == "REDUCING").all()
    assert 1 - eq.loc[9, "equity"] / eq.loc[9, "day_start_equity"] < 0.03  # not re-derived
    sc = run["state_changes"].query("scope == 'account'")
    assert list(zip(sc["step"], sc["to_state"], strict=True)) == [(2, "REDUCING")]
    assert list(run["orders"].query("side == 'BUY'")["step"]) == [0]


def test_drawdown_halt_holds_after_a_cli_resume_until_reset_halt(tmp_path, capsys):
    closes = [100.0] * 6 + [95.0, 90.0, 85.0, 79.0] + [80.0] * 10
    source = write_csv(tmp_path / "csv", {SYM: frame(closes, symbol=SYM)})
    cfg = write_config(tmp_path / "config",
                       risk={"max_position_pct": 1.0, "cash_buffer_pct": 0.0,
                             "daily_loss_stop_pct": 0.5},
                       session={"warmup_bars": 5, "rebalance_band": 0.0, **NO_COSTS,
                                "kill_file": str(tmp_path / "kill.flag")},
                       signal={"target_weight": 1.0})
    common = ["--run-dir", str(tmp_path / "runs"), "--config-dir", str(cfg)]
    code, first = cli_json(capsys, "--symbols", SYM, "--source", source, "--start",
                           "2021-01-09", "--model", "baseline:buy_and_hold", "--run-id", "dd",
                           "--max-steps", "6", *common)
    assert code == 0 and first["state"] == "HALTED"
    code, again = cli_json(capsys, "--resume", "dd", "--max-steps", "3", *common)
    assert code == 0 and again["state"] == "HALTED"
    run = read_run(again["ledger"])
    assert (run["orders"]["step"] <= 4).all()  # only the buy and the flatten at step 4
    assert set(run["equity"].set_index("step").loc[4:, "state"]) == {"HALTED"}
    sc = run["state_changes"].query("scope == 'account'")  # carried over, not re-derived
    assert list(zip(sc["step"], sc["to_state"], strict=True)) == [(4, "HALTED")]
    assert main(["reset-halt", "dd", "--run-dir", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    code, after = cli_json(capsys, "--resume", "dd", *common)
    assert code == 0 and after["state"] == "ACTIVE"


# ------------------------------------------------------------ kill switches
@pytest.mark.parametrize("how", ["env", "kill_file"])
def test_kill_switch_set_between_the_signal_and_the_order_stops_the_order(
        tmp_path, monkeypatch, how):
    monkeypatch.delenv("FLAG_TRADING_HALTED", raising=False)
    kill_file = tmp_path / "kill.flag"

    def hook(call: int) -> None:  # inside predict of step 3: after the signal, before orders
        if call == 4:
            if how == "env":
                monkeypatch.setenv("FLAG_TRADING_HALTED", "1")
            else:
                kill_file.touch()

    syms = [SYM, "BBB-USD"]
    src = FrameSource({SYM: random_walk(40, seed=3, symbol=SYM),
                       "BBB-USD": random_walk(40, seed=4, price=40.0, symbol="BBB-USD")})
    s = make_session(tmp_path, symbols=syms, source=src, start="2021-01-20",
                     router=ScriptedModel(syms, prob=flip(), hook=hook),
                     kill_switch=KillSwitch(kill_file))  # the real environment
    res = s.run()
    run = read_run(res.ledger_path)
    d = run["decisions"]
    assert "SUBMITTED" in set(d[d["step"] < 3]["verdict"])
    late = d[d["step"] >= 3]
    assert set(late[late["step"] == 3]["verdict"]) == {"DENIED"}  # both wanted to trade
    assert set(late["verdict"]) == {"DENIED", "HOLD"}  # every wanted order from step 3 on
    why = "FLAG_TRADING_HALTED=1" if how == "env" else f"KILL_FILE: {kill_file}"
    denied = late[late["verdict"] == "DENIED"]
    assert denied["reason"].str.startswith(f"KILL_SWITCH: {why}").all()
    o = run["orders"]
    assert set(o[o["step"] >= 3]["status"]) == {"denied"}
    assert run["fills"]["step"].max() <= 3  # step 2's orders fill at step 3's open, no more


def test_kill_file_at_start_starts_halted_with_the_reason_recorded(tmp_path):
    kill_file = tmp_path / "kill.flag"
    kill_file.touch()
    res = make_session(tmp_path, symbols=[SYM], source=FrameSource(walk()),
                       start="2021-01-20", model="baseline:buy_and_hold", run_id="kf",
                       kill_switch=KillSwitch(kill_file, env={})).run()
    assert res.summary["orders"] == 0 and res.summary["fills"] == 0
    run = read_run(res.ledger_path)
    [row] = run["state_changes"].query("scope == 'kill_switch'").itertuples()
    assert (row.step, row.from_state, row.to_state) == (0, "CLEAR", "ENGAGED")
    assert row.reason == f"KILL_SWITCH_AT_START: KILL_FILE: {kill_file}"
    assert set(run["orders"]["status"]) == {"denied"}
    with Ledger.open(res.ledger_path, readonly=True) as led:
        assert led.load_state().halted_symbols == {}  # not mistaken for a symbol's breaker


def test_the_ledger_refuses_a_second_fill_of_one_client_order_id(tmp_path):
    res = make_session(tmp_path, symbols=[SYM], source=FrameSource(walk()),
                       start="2021-01-20", model="baseline:buy_and_hold").run()
    con = sqlite3.connect(res.ledger_path)
    cid, *rest = con.execute("SELECT * FROM fills LIMIT 1").fetchone()
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: fills"):
        con.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (cid, *rest))
    con.close()
