"""Ledger: one transaction per step, unique client order ids, replay, refusing bad files."""

from __future__ import annotations

import sqlite3

import pytest

from research_lib.errors import LedgerError
from research_lib.ledger import Ledger, StepRecord
from research_lib.ledger_read import deterministic_dump, read_run, replay
from tests.kit.paper import FrameSource, make_session, random_walk, write_config


@pytest.fixture
def finished(tmp_path):
    """A short finished session with trades: (session, ledger path)."""
    frames = {"AAA": random_walk(160, seed=1, symbol="AAA"),
              "BBB": random_walk(160, seed=2, price=50.0, symbol="BBB")}
    write_config(tmp_path / "config", session={"rebalance_band": 0.0})
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=FrameSource(frames),
                     start="2021-03-15", model="baseline:sma_cross", run_id="led")
    res = s.run()
    assert res.summary["fills"] > 5
    return s, res.ledger_path


def _step(step: int, ts: str = "2030-01-01T00:00:00+00:00") -> StepRecord:
    rec = StepRecord(step, ts, 0)
    rec.add("equity", (step, ts, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, "2030-01-01", "ACTIVE"))
    return rec


def count(path, table):
    with Ledger.open(path, readonly=True) as led:
        return led.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_replay_of_fills_rebuilds_final_cash_positions_and_open_orders_exactly(finished):
    session, path = finished
    rebuilt = replay(path)
    assert rebuilt.cash == session.broker.cash  # exact, not approx
    assert dict(rebuilt.positions) == dict(session.broker.positions)
    assert rebuilt.open_orders == session.broker.open_orders
    assert rebuilt.known_ids == session.broker.known_ids


def test_a_failing_step_is_rolled_back_whole(finished):
    _, path = finished
    with Ledger.open(path) as led:
        last = led.load_state().last_step
        existing = led.fills()[0]
        rec = _step(last + 1)
        rec.add("decisions", (last + 1, "t", "AAA", "c", "m", 0.5, None, None, None, 0.1,
                              "HOLD", None, None, None, 0.1))
        rec.add("fills", (existing.client_order_id, last + 1, "t", "AAA", 1.0, 1.0, 1.0, 0.0,
                          -1.0))  # the same order filling twice
        n_dec = count(path, "decisions")
        with pytest.raises(LedgerError, match="could not be committed.*rolled back"):
            led.commit_step(rec)
        assert led.load_state().last_step == last
    assert count(path, "decisions") == n_dec  # nothing of the failed step was written


def test_committing_the_same_step_again_writes_nothing(finished):
    _, path = finished
    before = deterministic_dump(path)
    with Ledger.open(path) as led:
        last = led.load_state().last_step
        assert led.commit_step(_step(last)) is False
    assert deterministic_dump(path) == before


def test_resuming_a_finished_run_adds_no_step_and_no_fill(finished, tmp_path):
    session, path = finished
    before = deterministic_dump(path)
    again = make_session(tmp_path, resume="led", source=session.spec.source).run()
    assert again.summary["steps_this_session"] == 0
    assert deterministic_dump(path) == before


def test_truncated_ledger_is_refused_naming_the_file_and_kept(finished):
    _, path = finished
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    kept = path.read_bytes()
    with pytest.raises(LedgerError) as err:
        Ledger.open(path).load_state()
    assert str(path) in str(err.value) and "refusing to trade" in str(err.value)
    assert path.read_bytes() == kept


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    p = tmp_path / "ledger.sqlite"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not an SQLite database"):
        Ledger.open(p)
    assert p.read_bytes() == b"this is not a database" * 100


def test_cash_that_does_not_match_the_fills_is_refused(finished):
    _, path = finished
    con = sqlite3.connect(path)
    con.execute("UPDATE fills SET cash_delta = cash_delta + 1 WHERE rowid = 1")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="cash rebuilt from fills"):
        Ledger.open(path).load_state()


def test_session_resume_on_a_corrupt_ledger_refuses_to_trade(finished, tmp_path):
    session, path = finished
    path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(LedgerError, match=str(path)):
        make_session(tmp_path, resume="led", source=session.spec.source).run()


def test_a_second_writer_on_the_same_run_is_refused(finished, tmp_path):
    session, path = finished
    with Ledger.open(path):  # a session is writing this run
        with pytest.raises(LedgerError, match="in use by pid"):
            make_session(tmp_path, resume="led", source=session.spec.source).run()
    make_session(tmp_path, resume="led", source=session.spec.source).run()  # free again


def test_create_refuses_an_existing_ledger(finished):
    _, path = finished
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(path, {"run_id": "led"})


def test_client_order_ids_are_run_step_symbol_and_unique(finished):
    _, path = finished
    orders = read_run(path)["orders"]
    assert orders["client_order_id"].is_unique
    expected = "led-" + orders["step"].astype(str) + "-" + orders["symbol"]
    assert (orders["client_order_id"] == expected).all()


def test_read_run_gives_frames_and_meta_for_reports(finished):
    _, path = finished
    run = read_run(path.parent)
    for key in ("orders", "fills", "equity", "positions", "risk_events", "decisions",
                "state_changes", "steps"):
        assert key in run
    eq = run["equity"]
    assert {"cash", "equity", "gross", "net", "drawdown", "state", "pos_AAA", "pos_BBB"} <= set(
        eq.columns)
    assert str(eq.index.tz) == "UTC"
    o = run["orders"]
    assert set(o["status"]) <= {"filled", "open", "denied", "rejected", "dry_run"}
    assert (o.loc[o["status"] == "filled", "fill_price"] > 0).all()
    d = run["decisions"]
    assert {"asset_class", "model", "probability", "target", "verdict", "latency_ms"} <= set(
        d.columns)
    meta = run["meta"]
    assert meta["run_id"] == "led" and meta["symbols"] == ["AAA", "BBB"]
    assert meta["labels"]["AAA"] == "AAA (synthetic)"
    assert meta["config"]["risk"]["max_position_pct"] == 0.15


class _Killed(BaseException):
    """Stands for a SIGKILL: no except clause of the package catches it, nothing cleans up."""


def test_ledger_create_when_killed_before_its_meta_is_written_then_no_ledger_file_is_left(
        tmp_path, monkeypatch):
    # a kill between the file appearing and its schema committing left a ledger with no
    # tables: every resume failed with "no such table: steps"
    import research_lib.ledger as ledger_mod

    path = tmp_path / "runs" / "r1" / "ledger.sqlite"

    def killed() -> str:
        raise _Killed

    monkeypatch.setattr(ledger_mod, "now_iso", killed)
    with pytest.raises(_Killed):
        Ledger.create(path, {"run_id": "r1"})
    assert not path.exists()
    with pytest.raises(LedgerError):
        Ledger.open(path)  # nothing to resume: said so, not "no such table"
    monkeypatch.undo()
    import gc

    gc.collect()  # the killed attempt's lock handle (a dead process would drop it)
    with Ledger.create(path, {"run_id": "r1"}) as led:
        assert led.meta()["run_id"] == "r1"
