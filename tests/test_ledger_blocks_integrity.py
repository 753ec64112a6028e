"""A column block (a replay's decisions/positions as one Parquet blob in the ledger,
research_lib.ledger_columns) that was corrupted or tampered with fails closed: every reader
raises a LedgerError naming the ledger file and the block, never a pyarrow traceback and
never silently different numbers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from research_lib.errors import LedgerError
from research_lib.ledger import Ledger
from research_lib.ledger_columns import BLOCKS, BlockBuilder, bulk_arrays
from research_lib.ledger_read import deterministic_dump, read_run
from research_lib.paper.rows import DecisionRow, PositionRow


def _ledger(tmp_path: Path) -> Path:
    """Three batches of 40 steps x 3 symbols, positions and decisions as column blocks."""
    p = tmp_path / "r" / "ledger.sqlite"
    led = Ledger.create(p, {"run_id": "r", "initial_cash": 1.0})
    rng = np.random.default_rng(7)
    for b in range(3):
        steps = range(40 * b, 40 * b + 40)
        pos, dec = BlockBuilder("positions"), BlockBuilder("decisions")
        pos.add_rows([tuple(PositionRow(k, s, 0.0, None, float(rng.normal(100, 5)),
                                        0.0, 0.0, 0.0, 0.0))
                      for k in steps for s in ("A", "B", "C")])
        dec.add_rows([tuple(DecisionRow(k, f"t{k}", s, "equity", "m",
                                        float(rng.uniform()), None, None, None, 0.0, "HOLD",
                                        None, None, None, 0.1))
                      for k in steps for s in ("A", "B", "C")])
        assert led.commit_rows({"steps": [(k, f"t{k}", 3, "w", None) for k in steps],
                                "positions": pos.encode(), "decisions": dec.encode()})
    led.close()
    return p


READERS: dict[str, Callable[[Path], object]] = {
    "deterministic_dump": deterministic_dump,
    "read_run": read_run,
    "bulk_arrays": lambda p: _arrays(p),
}


def _arrays(p: Path) -> object:
    with Ledger.open(p, readonly=True) as led:
        return bulk_arrays(led.conn, "positions", ("step", "symbol", "mark"))


def _update(p: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(p)
    con.execute(sql, args)
    con.commit()
    con.close()


def _blob(p: Path, tbl: str) -> tuple[int, bytes]:
    con = sqlite3.connect(p)
    try:
        return con.execute(f"SELECT seq, data FROM {BLOCKS} WHERE tbl=? ORDER BY seq "
                           "LIMIT 1 OFFSET 1", (tbl,)).fetchone()
    finally:
        con.close()


def _fails_closed(p: Path, reader: str) -> None:
    with pytest.raises(LedgerError, match=rf"{p.name}.*column block"):
        READERS[reader](p)


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("what", ["truncated", "not parquet", "another table's blob",
                                  "row count", "step range"])
def test_a_tampered_column_block_fails_closed_with_a_ledger_error(tmp_path, what, reader):
    p = _ledger(tmp_path)
    seq, data = _blob(p, "positions")
    _, other = _blob(p, "decisions")
    change = {
        "truncated": ("UPDATE column_blocks SET data=? WHERE seq=?", data[:len(data) // 2], seq),
        "not parquet": ("UPDATE column_blocks SET data=? WHERE seq=?", b"\x00\x01\x02\x03", seq),
        "another table's blob": ("UPDATE column_blocks SET data=? WHERE seq=?", other, seq),
        "row count": ("UPDATE column_blocks SET n_rows=n_rows+3 WHERE seq=?", seq),
        "step range": ("UPDATE column_blocks SET last_step=last_step-1 WHERE seq=?", seq),
    }[what]
    _update(p, *change)
    _fails_closed(p, reader)


def test_a_flipped_bit_in_a_column_block_never_gives_silently_different_rows(tmp_path):
    """Every 5th byte of a positions block flipped in turn (page data, page headers,
    footer): the dump is the true one or the read is refused with a LedgerError."""
    p = _ledger(tmp_path)
    want = deterministic_dump(p)
    seq, data = _blob(p, "positions")
    silent, refused = [], 0
    for i in range(0, len(data), 5):
        b = bytearray(data)
        b[i] ^= 0x10
        _update(p, "UPDATE column_blocks SET data=? WHERE seq=?", bytes(b), seq)
        try:
            got = deterministic_dump(p)
        except LedgerError as exc:
            assert p.name in str(exc) and "column block" in str(exc), exc
            refused += 1
            continue
        if got != want:
            silent.append(i)
    assert not silent, f"{len(silent)} flipped bytes gave different rows silently: {silent[:10]}"
    assert refused > len(data) // 10


def test_a_fresh_process_reads_the_blocks_back(tmp_path):
    """The checks need nothing a replay happened to import first (pyarrow.compute)."""
    import subprocess
    import sys

    p = _ledger(tmp_path)
    code = ("import sys; from research_lib.ledger_read import deterministic_dump; "
            "d = deterministic_dump(sys.argv[1]); print(len(d['positions']))")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "360"


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("what", ["a block copied", "plain rows inside a block's steps"])
def test_a_step_given_twice_by_the_two_stores_fails_closed(tmp_path, what, reader):
    """A step's rows live in one store, once: a copied block row, or plain rows added for
    steps a block holds, would give its rows twice (doubled counts, a pivot traceback)."""
    p = _ledger(tmp_path)
    if what == "a block copied":
        _update(p, f"INSERT INTO {BLOCKS} (tbl, first_step, last_step, n_rows, data) "
                   f"SELECT tbl, first_step, last_step, n_rows, data FROM {BLOCKS} "
                   "WHERE tbl='positions' ORDER BY seq LIMIT 1")
    else:
        _update(p, "INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                *PositionRow(45, "A", 0.0, None, 100.0, 0.0, 0.0, 0.0, 0.0))
    _fails_closed(p, reader)


def test_blocks_written_before_page_checksums_are_still_read(tmp_path):
    """The store's first version wrote its blocks without Parquet page checksums: a ledger
    it wrote reads back the same rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = _ledger(tmp_path)
    want = deterministic_dump(p)
    con = sqlite3.connect(p)
    for seq, data in con.execute(f"SELECT seq, data FROM {BLOCKS}").fetchall():
        t = pq.read_table(pa.BufferReader(data))
        sink = pa.BufferOutputStream()
        pq.write_table(t, sink, compression="zstd", write_statistics=False)
        con.execute(f"UPDATE {BLOCKS} SET data=? WHERE seq=?", (sink.getvalue().to_pybytes(), seq))
    con.commit()
    con.close()
    assert deterministic_dump(p) == want
