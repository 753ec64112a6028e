"""The replay's column store (research_lib.ledger_columns): a block gives back exactly what
SQLite would have (types, NULLs, NaN, -0.0), readers merge both stores in step order, a
fast replay keeps its bulk rows in blocks committed with their steps, and a ledger made
before the store still opens."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research_lib.ledger import Ledger, StepRecord
from research_lib.ledger_columns import (
    BLOCKS,
    BlockBuilder,
    bulk_arrays,
    bulk_columns,
    bulk_count,
    bulk_rows,
    iter_bulk,
)
from research_lib.ledger_read import bulk_connection, deterministic_dump, read_run
from research_lib.paper.fast import FLUSH_ROWS
from research_lib.paper.rows import DecisionRow, PositionRow, Same, create_table

floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-10**6, 10**6), st.just(-0.0))
texts = st.one_of(st.none(), st.text(max_size=6))


def _sqlite_roundtrip(table: str, row: type, rows: list[tuple]) -> list[tuple]:
    con = sqlite3.connect(":memory:")
    con.execute(create_table(table, row))
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row._fields))})", rows)
    return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def _block_roundtrip(table: str, rows: list[tuple], split: int, as_columns: bool) -> list[tuple]:
    """Rows through a block: the first ``split`` as tuples, the rest as named columns."""
    b = BlockBuilder(table)
    b.add_rows(rows[:split])
    rest = rows[split:]
    if rest:
        names = (DecisionRow if table == "decisions" else PositionRow)._fields
        if as_columns:
            b.add_columns(len(rest), **{f: [r[i] for r in rest] for i, f in enumerate(names)})
        else:
            b.add_rows(rest)
    blk = b.encode()
    con = sqlite3.connect(":memory:")
    con.execute(create_table(table, DecisionRow if table == "decisions" else PositionRow))
    con.execute(f"CREATE TABLE {BLOCKS} (seq INTEGER PRIMARY KEY, tbl TEXT, first_step "
                "INTEGER, last_step INTEGER, n_rows INTEGER, data BLOB)")
    con.execute(f"INSERT INTO {BLOCKS} (tbl, first_step, last_step, n_rows, data) "
                "VALUES (?, ?, ?, ?, ?)", blk.row())
    return bulk_rows(con, table)


def _same(a: list[tuple], b: list[tuple]) -> bool:
    """Equal value for value, type for type (repr tells 1 from 1.0 and -0.0 from 0.0)."""
    return [tuple(map(repr, r)) for r in a] == [tuple(map(repr, r)) for r in b]


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(floats, floats, floats, floats, floats, floats, floats),
                     min_size=1, max_size=30),
       split=st.integers(0, 30), as_columns=st.booleans())
def test_positions_block_gives_back_what_sqlite_stores(data, split, as_columns):
    rows = [(k // 3, f"S{k % 3}", 0.0 if q is None or q != q else q, a, m, v, r, u, f)
            for k, (q, a, m, v, r, u, f) in enumerate(data)]  # qty is NOT NULL
    assert _same(_block_roundtrip("positions", rows, split, as_columns),
                 _sqlite_roundtrip("positions", PositionRow, rows))


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(texts, floats, texts, floats, st.sampled_from(["HOLD", "BUY"]),
                               texts), min_size=1, max_size=30),
       split=st.integers(0, 30), as_columns=st.booleans())
def test_decisions_block_gives_back_what_sqlite_stores(data, split, as_columns):
    rows = [tuple(DecisionRow(k // 2, "2020-01-01T00:00:00+00:00", f"S{k % 2}", "equities",
                              m, p, None, None, m, t, v, r, None, p, 0.5))
            for k, (m, p, r, t, v, _) in enumerate(data)]
    assert _same(_block_roundtrip("decisions", rows, split, as_columns),
                 _sqlite_roundtrip("decisions", DecisionRow, rows))


def test_a_block_refuses_a_missing_or_unknown_column_and_a_bad_length():
    b = BlockBuilder("positions")
    cols = {f: [0.0] for f in PositionRow._fields}
    with pytest.raises(TypeError, match="missing \\['fees'\\]"):
        b.add_columns(1, **{k: v for k, v in cols.items() if k != "fees"})
    with pytest.raises(TypeError, match="unknown \\['extra'\\]"):
        b.add_columns(1, **cols, extra=[1])
    with pytest.raises(ValueError, match="positions.qty: 2 values for 1 rows"):
        b.add_columns(1, **{**cols, "qty": [1.0, 2.0]})
    b.add_columns(1, **{**cols, "step": [1.5], "symbol": Same("X")})
    with pytest.raises(TypeError, match="positions.step: 1.5 is not an integer"):
        b.encode()


def test_a_fast_replay_keeps_decisions_and_positions_in_blocks_with_the_step_loops_dump(
        tmp_path):
    import research_lib as rl

    kw = dict(symbols=["SPY", "BTC-USD"], model="baseline:sma_cross", start="2016-01-01",
              end="2017-12-31")
    fast = rl.run_session(**kw, run_dir=tmp_path / "fast", fast=True)
    step = rl.run_session(**kw, run_dir=tmp_path / "step", fast=False)
    with Ledger.open(fast.ledger_path, readonly=True) as led:
        c = led.conn
        assert c.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM positions").fetchone()[0] == 0
        blocks = c.execute(f"SELECT tbl, COUNT(*), SUM(n_rows) FROM {BLOCKS} GROUP BY tbl "
                           "ORDER BY tbl").fetchall()
        n_dec, n_pos = bulk_count(c, "decisions"), bulk_count(c, "positions")
        arrays = bulk_arrays(c, "positions", ("step", "qty"))
    assert [b[0] for b in blocks] == ["decisions", "positions"]
    assert {b[0]: b[2] for b in blocks} == {"decisions": n_dec, "positions": n_pos} and n_dec
    with Ledger.open(step.ledger_path, readonly=True) as led:
        c = led.conn
        assert c.execute(f"SELECT COUNT(*) FROM {BLOCKS}").fetchone()[0] == 0
        assert bulk_count(c, "decisions") == n_dec and bulk_count(c, "positions") == n_pos
        want = c.execute("SELECT step, qty FROM positions ORDER BY rowid").fetchall()
    assert list(zip(arrays["step"].tolist(), arrays["qty"].tolist(), strict=True)) == want
    assert deterministic_dump(fast.ledger_path) == deterministic_dump(step.ledger_path)
    a, b = read_run(fast.ledger_path), read_run(step.ledger_path)
    for t in ("decisions", "positions"):
        assert list(a[t].dtypes) == list(b[t].dtypes)
        assert a[t].drop(columns=["latency_ms", "client_order_id"], errors="ignore").equals(
            b[t].drop(columns=["latency_ms", "client_order_id"], errors="ignore"))
    sql = bulk_connection(fast.ledger_path)  # ad-hoc SQL sees every row, steps attached
    assert sql.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == n_dec
    assert sql.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == fast.summary["steps"]


def test_a_step_that_is_already_committed_writes_no_block(tmp_path):
    led = Ledger.create(tmp_path / "r" / "ledger.sqlite", {"run_id": "r", "initial_cash": 1.0})
    b = BlockBuilder("positions")
    b.add_rows([tuple(PositionRow(0, "X", 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0))])
    rec = StepRecord(0, "2020-01-01T00:00:00+00:00", 1)
    rows = {"steps": [(0, rec.ts, 1, "w", None)], "positions": b.encode()}
    assert led.commit_rows(rows)
    assert not led.commit_rows(rows)  # rolled back whole: the block too
    assert bulk_count(led.conn, "positions") == 1
    assert bulk_rows(led.conn, "positions", ("symbol", "mark"), step=0) == [("X", 1.0)]
    assert bulk_rows(led.conn, "positions", ("symbol",), step=1) == []
    led.close()


def test_a_ledger_made_before_the_store_is_read_and_gets_the_table_when_written(tmp_path):
    p = tmp_path / "old" / "ledger.sqlite"
    Ledger.create(p, {"run_id": "old", "initial_cash": 1.0}).close()
    con = sqlite3.connect(p)
    con.execute(f"DROP TABLE {BLOCKS}")
    con.commit()
    con.close()
    with Ledger.open(p, readonly=True) as led:  # a reader never writes
        assert bulk_columns(led.conn, "decisions", ("step",)) == {"step": []}
        assert bulk_count(led.conn, "decisions") == 0
    with Ledger.open(p) as led:
        assert led.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name=?",
                                (BLOCKS,)).fetchone()[0] == 1


def test_a_batch_holds_at_most_flush_rows_symbol_steps():
    """Memory flat in bars and in symbols: the fast replay commits before FLUSH_ROWS
    symbol-steps pile up (3,000 symbols: 133 steps a batch, not 2,048)."""
    import research_lib.paper.fast as fr

    for n, want in ((1, fr.FLUSH_STEPS), (100, fr.FLUSH_STEPS), (3000, FLUSH_ROWS // 3000),
                    (10**6, fr.BLOCK_MIN)):
        assert fr.steps_per_batch(n) == want
        assert fr.steps_per_batch(n) * n <= max(FLUSH_ROWS, fr.BLOCK_MIN * n)


def test_plain_rows_between_blocks_come_back_in_step_order_part_by_part(tmp_path):
    """A run resumed across engines holds plain rows before, between and after blocks:
    readers give them in step order, and iter_bulk streams them a part at a time."""
    led = Ledger.create(tmp_path / "m" / "ledger.sqlite", {"run_id": "m", "initial_cash": 1.0})

    def pos(k: int, sym: str) -> tuple:
        return tuple(PositionRow(k, sym, float(k), 0.0, 1.0, 0.0, 0.0, 0.0, 0.0))

    def commit(steps: range, block: bool) -> None:
        rows = [pos(k, s) for k in steps for s in ("A", "B")]
        if block:
            b = BlockBuilder("positions")
            b.add_rows(rows)
            rows = b.encode()
        assert led.commit_rows({"steps": [(k, f"t{k}", 2, "w", None) for k in steps],
                                "positions": rows})

    for steps, block in ((range(0, 2), False), (range(2, 4), True), (range(4, 5), False),
                         (range(5, 7), True), (range(7, 9), False)):
        commit(steps, block)
    want = [(k, s) for k in range(9) for s in ("A", "B")]
    assert bulk_rows(led.conn, "positions", ("step", "symbol")) == want
    parts = list(iter_bulk(led.conn, "positions", ("step", "symbol"), chunk=3))
    assert max(len(p["step"]) for p in parts) <= 4 and len(parts) >= 6
    got = [(int(k), s) for p in parts for k, s in zip(p["step"], p["symbol"], strict=True)]
    assert got == want
    assert bulk_arrays(led.conn, "positions", ("step",))["step"].tolist() == [k for k, _ in want]
    assert bulk_rows(led.conn, "positions", ("qty",), step=5) == [(5.0,), (5.0,)]
    led.close()
