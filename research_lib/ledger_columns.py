"""The replay's columnar store for the ledger's bulk tables (issue 12).

A replay writes one ``decisions`` row per symbol and bar and one ``positions`` row per
symbol and step: ~99% of a ledger's rows. Inserted one by one into SQLite they bound a
replay near 100k symbol-bars/s. The fast replay (:mod:`research_lib.paper.fast`) writes
them instead as **column blocks**: the rows of a batch of steps, per table, as one Parquet
blob (pyarrow, zstd) in the ``column_blocks`` table, inside the *same* SQLite transaction
as the batch's ``steps``, ``equity``, orders and fills. So a block is committed with its
steps or not at all: a killed replay leaves no half-written block and no orphan file, and
``--resume`` continues from the last committed step to the identical ledger. A live
session and the step loop keep writing plain rows, one transaction per step.

Readers never see the difference: :func:`bulk_columns` / :func:`bulk_rows` return a bulk
table's rows from both stores, in step order, with the values SQLite would give back
(REAL: float, NaN stored as NULL, ``-0.0`` as ``0.0``; INTEGER: int; TEXT: str; NULL:
None); :func:`~research_lib.ledger_read.read_run` and
:func:`~research_lib.ledger_read.deterministic_dump` read through them, so a run gives the
same tables and the same dump whatever stored it (``tests/test_ledger_columns.py``).
:func:`~research_lib.ledger_read.bulk_connection` gives ad-hoc SQL (a sqlite3 shell habit, a test) a connection
where ``decisions`` and ``positions`` hold every row.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from .errors import LedgerError
from .paper.rows import DecisionRow, PositionRow, Same

BULK_TABLES: dict[str, type[Any]] = {"decisions": DecisionRow, "positions": PositionRow}
BLOCKS = "column_blocks"
_INSERT_BLOCK = (f"INSERT INTO {BLOCKS} (tbl, first_step, last_step, n_rows, data) "
                 "VALUES (?, ?, ?, ?, ?)")


def _affinity(row: type[Any]) -> dict[str, str]:
    """Column -> INTEGER | REAL | TEXT, from the table's one SQL definition."""
    out = {}
    for f in row._fields:
        m = re.search(rf"\b{f}\s+(INTEGER|REAL|TEXT)\b", row.SQL)
        if m is None:  # pragma: no cover - a definition this module does not know
            raise TypeError(f"{row.__name__}.{f}: no INTEGER/REAL/TEXT type in its SQL")
        out[f] = m.group(1)
    return out


_KINDS = {t: _affinity(r) for t, r in BULK_TABLES.items()}


@dataclass
class ColumnBlock:
    """One bulk table's rows over a batch of steps, encoded (what ``commit_rows`` stores)."""

    table: str
    first_step: int
    last_step: int
    n_rows: int
    data: bytes

    def row(self) -> tuple[Any, ...]:
        return (self.table, self.first_step, self.last_step, self.n_rows, self.data)


@dataclass
class BlockBuilder:
    """A bulk table's rows over a batch, in step order, as pieces: plain tuples (a step the
    step code ran) or named columns (a quiet block of the fast replay, no object per row)."""

    table: str
    pieces: list[tuple[str, Any, int]] = field(default_factory=list)
    n: int = 0

    def add_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.pieces.append(("rows", rows, len(rows)))
            self.n += len(rows)

    def add_columns(self, n: int, **cols: Any) -> None:
        """Rows from named columns: each a sequence of ``n`` values or :class:`Same`; every
        field of the table named once (a missing or unknown name is a TypeError)."""
        fields = BULK_TABLES[self.table]._fields
        if set(cols) != set(fields):
            missing = [f for f in fields if f not in cols]
            unknown = sorted(set(cols) - set(fields))
            raise TypeError(f"{self.table}: columns missing {missing}, unknown {unknown}")
        for f, v in cols.items():
            if not isinstance(v, Same) and len(v) != n:
                raise ValueError(f"{self.table}.{f}: {len(v)} values for {n} rows")
        if n:
            self.pieces.append(("cols", cols, n))
            self.n += n

    def _column(self, i: int, name: str) -> list[Any]:
        parts: list[Any] = []
        for kind, data, n in self.pieces:
            if kind == "rows":
                parts.append([r[i] for r in data])
            else:
                v = data[name]
                parts.append(list(repeat(v.value, n)) if isinstance(v, Same) else v)
        return parts

    def encode(self) -> ColumnBlock:
        import pyarrow as pa

        row = BULK_TABLES[self.table]
        kinds = _KINDS[self.table]
        arrays = {}
        for i, name in enumerate(row._fields):
            arrays[name] = _arrow(self._column(i, name), kinds[name], f"{self.table}.{name}")
        table = pa.table(arrays)
        steps = table.column("step")
        first, last = (int(pa.compute.min(steps).as_py()), int(pa.compute.max(steps).as_py()))
        return ColumnBlock(self.table, first, last, self.n, _parquet(table))


def _objects(p: Any) -> np.ndarray:
    if isinstance(p, np.ndarray) and p.dtype == object:
        return p
    a = np.empty(len(p), dtype=object)
    a[:] = p.tolist() if isinstance(p, np.ndarray) else p
    return a


def _arrow(parts: list[Any], kind: str, what: str) -> Any:
    """One column as an Arrow array holding what SQLite would store for it."""
    import pyarrow as pa

    if kind == "REAL":
        arr = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) + 0.0  # -0.0
        nan = np.isnan(arr)  # SQLite stores NaN as NULL (and None arrived as NaN here)
        return pa.array(arr, type=pa.float64(), mask=nan if nan.any() else None)
    if kind == "INTEGER":
        ints = [p if isinstance(p, np.ndarray) else np.asarray(p) for p in parts]
        if all(a.dtype.kind in "iu" for a in ints):
            return pa.array(np.concatenate(ints).astype(np.int64), type=pa.int64())
        vals = np.concatenate([_objects(p) for p in parts]).tolist()
        for v in vals:
            if isinstance(v, float) and not v.is_integer():
                raise TypeError(f"{what}: {v!r} is not an integer")
        return pa.array([None if v is None else int(v) for v in vals], type=pa.int64())
    try:
        return pa.array(np.concatenate([_objects(p) for p in parts]), type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise TypeError(f"{what}: a TEXT column holds a non-text value ({exc})") from exc


def _parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # page checksums: a flipped bit in a block's data is refused on read, not read as a number
    pq.write_table(table, sink, compression="zstd", write_statistics=False,
                   write_page_checksum=True)
    return sink.getvalue().to_pybytes()


_ARROW_TYPES = {"INTEGER": "int64", "REAL": "double", "TEXT": "string"}


def _read_block(conn: sqlite3.Connection, block: Sequence[Any], table: str,
                cols: Sequence[str]) -> Any:
    """Columns ``cols`` of one stored block (``seq, first_step, last_step, n_rows, data``)
    as an Arrow table, checked against its row in ``column_blocks`` (the table's columns
    and types, the row count, the step range, the page checksums): a corrupted or tampered
    block is a :class:`LedgerError` naming the ledger file and the block."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    seq, first, last, n_rows, blob = block
    kinds = _KINDS[table]
    try:
        f = pq.ParquetFile(pa.BufferReader(blob), page_checksum_verification=True)
        schema = f.schema_arrow
        types = [str(schema.field(n).type) for n in schema.names]
        want_types = [_ARROW_TYPES[kinds[n]] for n in kinds]
        if schema.names != list(kinds) or types != want_types:
            raise ValueError(f"its columns are {list(zip(schema.names, types, strict=True))}, "
                             f"not {table}'s {list(zip(kinds, want_types, strict=True))}")
        if f.metadata.num_rows != n_rows:
            raise ValueError(f"it holds {f.metadata.num_rows} rows, its entry says {n_rows}")
        t = f.read(columns=list(dict.fromkeys([*cols, "step"])))
        steps = t.column("step")
        lo, hi = pc.min(steps).as_py(), pc.max(steps).as_py()
        if (lo, hi) != (first, last) or steps.null_count:
            raise ValueError(f"its steps run {lo}..{hi}, its entry says {first}..{last}")
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        raise LedgerError(
            f"{_ledger_name(conn)}: column block {seq} ({table}, steps {first}..{last}) is corrupt or was "
            f"changed ({exc}); refusing to read it; the file is kept as is: restore the "
            "ledger from a copy or replay the run again") from exc
    return t


def bulk_arrays(conn: sqlite3.Connection, table: str, cols: Sequence[str]
                ) -> dict[str, np.ndarray]:
    """:func:`bulk_columns` as numpy arrays for readers that compute over them: REAL as
    float64 (NULL: NaN), INTEGER as int64 (object when a NULL is there), TEXT as object
    (NULL: None). Decodes a block straight to arrays, no Python object per number."""
    parts = list(iter_bulk(conn, table, cols))
    if not parts:
        return {c: _array([], _KINDS[table][c]) for c in cols}
    return {c: np.concatenate([p[c] for p in parts]) for c in cols}


def iter_bulk(conn: sqlite3.Connection, table: str, cols: Sequence[str],
              chunk: int = 100_000) -> Iterator[dict[str, np.ndarray]]:
    """Bulk ``table``'s columns ``cols`` in step order, a part at a time (a block, or up to
    ``chunk`` plain rows), as :func:`bulk_arrays` gives them: a reader aggregating part by
    part holds one part in memory, whatever the history (the summary's readers)."""
    kinds = _KINDS[table]
    for part in _parts(conn, table, cols, None, chunk):
        yield {c: _array(v, kinds[c]) for c, v in part.items()}


def _parts(conn: sqlite3.Connection, table: str, cols: Sequence[str], step: int | None,
           chunk: int) -> Iterator[dict[str, Any]]:
    """The one walk over both stores, in step order: plain rows live in the gaps between
    blocks. Each part maps ``cols`` to a list (plain rows, as SQLite gives them) or an
    Arrow column (a block); only step ``step`` if given."""
    import pyarrow.compute as pc

    kinds = _KINDS[table]
    cols = list(cols)
    unknown = [c for c in cols if c not in kinds]
    if unknown:
        raise ValueError(f"{table}: no column {unknown}; columns: {list(kinds)}")

    def plain(lo: int | None, hi: int | None) -> Iterator[dict[str, Any]]:
        if step is not None:
            lo, hi = step, step
        where = " AND ".join(w for w, v in (("step >= ?", lo), ("step <= ?", hi))
                             if v is not None)
        cur = conn.execute(f"SELECT {', '.join(cols)} FROM main.{table} "
                           f"{'WHERE ' + where if where else ''} ORDER BY rowid",
                           tuple(v for v in (lo, hi) if v is not None))
        while rows := cur.fetchmany(chunk):
            yield {c: list(v) for c, v in zip(cols, zip(*rows, strict=True), strict=True)}

    lo: int | None = None
    blocks = _block_index(conn, table, step)
    for seq, first, last, n_rows in blocks:
        if step is None:
            yield from plain(lo, first - 1)
        (blob,) = conn.execute(f"SELECT data FROM main.{BLOCKS} WHERE seq = ?",
                               (seq,)).fetchone()
        t = _read_block(conn, (seq, first, last, n_rows, blob), table, cols)
        if step is not None:
            t = t.filter(pc.equal(t.column("step"), step))
        yield {c: t.column(c) for c in cols}
        lo = last + 1
    if step is None or not blocks:  # a step held by a block has no plain rows
        yield from plain(lo, None)


def _array(v: Any, kind: str) -> np.ndarray:
    if hasattr(v, "to_numpy"):  # an Arrow column
        if kind == "REAL":
            return v.to_numpy(zero_copy_only=False).astype(np.float64)
        if kind == "INTEGER" and v.null_count == 0:
            return v.to_numpy(zero_copy_only=False).astype(np.int64)
        v = v.to_pylist()
    if kind == "REAL":
        return np.asarray(v, dtype=np.float64)
    if kind == "INTEGER" and None not in v:
        return np.asarray(v, dtype=np.int64)
    return _objects(v)


# ------------------------------------------------------------------------ reading
def has_block_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                        (BLOCKS,)).fetchone() is not None


def _block_index(conn: sqlite3.Connection, table: str, step: int | None = None
                 ) -> list[tuple[int, int, int, int]]:
    """``(seq, first_step, last_step, n_rows)`` of ``table``'s blocks in step order (only
    those holding ``step`` if given). A step is in one store, once: blocks whose steps
    overlap, or plain rows inside a block's steps (a block copied or rows added by hand),
    are a :class:`LedgerError` rather than rows given twice."""
    if not has_block_table(conn):
        return []
    bw, bargs = (("AND first_step <= ? AND last_step >= ?", (step, step))
                 if step is not None else ("", ()))
    blocks = conn.execute(f"SELECT seq, first_step, last_step, n_rows FROM main.{BLOCKS} "
                          f"WHERE tbl = ? {bw} ORDER BY first_step, seq",
                          (table, *bargs)).fetchall()
    prev = None
    for seq, first, last, _ in blocks:
        why = None
        if prev is not None and first <= prev[2]:
            why = f"its steps overlap block {prev[0]}'s ({prev[1]}..{prev[2]})"
        elif conn.execute(f"SELECT 1 FROM main.{table} WHERE step BETWEEN ? AND ? LIMIT 1",
                          (first, last)).fetchone():
            why = f"plain {table} rows hold some of its steps too"
        if why:
            raise LedgerError(
                f"{_ledger_name(conn)}: column block {seq} ({table}, steps {first}..{last}) "
                f"is corrupt or was changed ({why}); refusing to read it; the file is kept "
                "as is: restore the ledger from a copy or replay the run again")
        prev = (seq, first, last)
    return blocks


def _ledger_name(conn: sqlite3.Connection) -> str:
    return next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "?")


def bulk_columns(conn: sqlite3.Connection, table: str, cols: Sequence[str] | None = None,
                 step: int | None = None) -> dict[str, list[Any]]:
    """Columns ``cols`` (default: all) of bulk ``table`` over both stores, in step order
    (a step's rows are in one store, in the order written), as Python values; only step
    ``step`` if given."""
    cols = list(cols or BULK_TABLES[table]._fields)
    out: dict[str, list[Any]] = {c: [] for c in cols}
    for part in _parts(conn, table, cols, step, 100_000):
        for c, v in part.items():
            out[c].extend(v if isinstance(v, list) else v.to_pylist())
    return out


def bulk_rows(conn: sqlite3.Connection, table: str, cols: Sequence[str] | None = None,
              step: int | None = None) -> list[tuple[Any, ...]]:
    """:func:`bulk_columns` as row tuples."""
    c = bulk_columns(conn, table, cols, step)
    return list(zip(*c.values(), strict=True)) if c else []


def bulk_count(conn: sqlite3.Connection, table: str) -> int:
    n = conn.execute(f"SELECT COUNT(*) FROM main.{table}").fetchone()[0]
    if has_block_table(conn):
        n += conn.execute(f"SELECT COALESCE(SUM(n_rows), 0) FROM main.{BLOCKS} WHERE tbl = ?",
                          (table,)).fetchone()[0]
    return int(n)


def bulk_max_step(conn: sqlite3.Connection, table: str) -> int | None:
    a = conn.execute(f"SELECT MAX(step) FROM main.{table}").fetchone()[0]
    b = (conn.execute(f"SELECT MAX(last_step) FROM main.{BLOCKS} WHERE tbl = ?",
                      (table,)).fetchone()[0] if has_block_table(conn) else None)
    vals = [v for v in (a, b) if v is not None]
    return max(vals) if vals else None
