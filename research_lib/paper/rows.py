"""One typed definition per ledger table: its columns, in order, and their SQL.

Each table is a :class:`typing.NamedTuple` (a row *is* a tuple, so the ledger writes it as
it is) with an ``SQL`` attribute: the table's body in ``CREATE TABLE`` (types, keys; a
``seq`` column the database numbers comes first where a table has one). The ledger builds
its schema and its INSERTs from :data:`TABLES` (:mod:`research_lib.ledger`), the reader
names the columns of :func:`research_lib.ledger_read.read_run` from it, and the session builds
its rows with these names. To add a column: add the field and its SQL here, in one class.

For the rows a replay writes many of (positions, decisions, equity over a block of steps)
:func:`block` builds plain tuples from *named columns* (``block(EquityRow, step=steps,
cash=Same(cash), ...)``: every field named once, checked against the definition), and
:func:`position_rows` is the one layout of a position row, for one step or a block.
Readers index plain tuples through :data:`DECISION` / :data:`POSITION`, rows of column
*indices* (``d[DECISION.verdict]``): named, and no object per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from ..broker import PositionBook


class StepRow(NamedTuple):
    step: int
    ts: str
    n_bars: int
    wall_ts: str | None
    e2d_ms: float | None
    SQL = """step INTEGER PRIMARY KEY, ts TEXT NOT NULL, n_bars INTEGER NOT NULL,
    wall_ts TEXT, e2d_ms REAL"""


class OrderRow(NamedTuple):
    client_order_id: str
    step: int
    ts: str
    symbol: str
    asset_class: str | None
    side: str
    qty: float
    decision_price: float | None
    kind: str
    dry_run: int
    SQL = """client_order_id TEXT PRIMARY KEY, step INTEGER NOT NULL, ts TEXT NOT NULL,
    symbol TEXT NOT NULL, asset_class TEXT, side TEXT NOT NULL, qty REAL NOT NULL,
    decision_price REAL, kind TEXT NOT NULL, dry_run INTEGER NOT NULL"""


class OrderEventRow(NamedTuple):
    step: int
    ts: str
    client_order_id: str
    event: str
    reason: str | None
    SQL = """seq INTEGER PRIMARY KEY, step INTEGER NOT NULL, ts TEXT NOT NULL,
    client_order_id TEXT NOT NULL, event TEXT NOT NULL, reason TEXT"""


class FillRow(NamedTuple):
    client_order_id: str
    step: int
    ts: str
    symbol: str
    qty: float
    price: float
    base_price: float
    commission: float
    cash_delta: float
    SQL = """client_order_id TEXT PRIMARY KEY, step INTEGER NOT NULL, ts TEXT NOT NULL,
    symbol TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, base_price REAL NOT NULL,
    commission REAL NOT NULL, cash_delta REAL NOT NULL"""


class EquityRow(NamedTuple):
    step: int
    ts: str
    cash: float
    equity: float
    gross: float
    net: float
    peak: float
    day_start_equity: float | None
    drawdown: float
    day: str
    state: str
    SQL = """step INTEGER PRIMARY KEY, ts TEXT NOT NULL, cash REAL NOT NULL, equity REAL NOT NULL,
    gross REAL NOT NULL, net REAL NOT NULL, peak REAL NOT NULL, day_start_equity REAL,
    drawdown REAL NOT NULL, day TEXT NOT NULL, state TEXT NOT NULL"""


class PositionRow(NamedTuple):
    step: int
    symbol: str
    qty: float
    avg_price: float | None
    mark: float | None
    value: float | None
    realized: float | None
    unrealized: float | None
    fees: float | None
    SQL = """step INTEGER NOT NULL, symbol TEXT NOT NULL, qty REAL NOT NULL, avg_price REAL,
    mark REAL, value REAL, realized REAL, unrealized REAL, fees REAL,
    PRIMARY KEY (step, symbol)"""


class DecisionRow(NamedTuple):
    step: int
    ts: str
    symbol: str
    asset_class: str | None
    model: str | None
    probability: float | None
    shadow_model: str | None
    shadow_probability: float | None
    fallback_reason: str | None
    target: float | None
    verdict: str
    reason: str | None
    client_order_id: str | None
    qty: float | None
    latency_ms: float | None
    SQL = """step INTEGER NOT NULL, ts TEXT NOT NULL, symbol TEXT NOT NULL, asset_class TEXT,
    model TEXT, probability REAL, shadow_model TEXT, shadow_probability REAL,
    fallback_reason TEXT, target REAL, verdict TEXT NOT NULL, reason TEXT,
    client_order_id TEXT, qty REAL, latency_ms REAL, PRIMARY KEY (step, symbol)"""


class RiskEventRow(NamedTuple):
    step: int | None
    ts: str | None
    symbol: str | None
    kind: str
    code: str
    reason: str
    client_order_id: str | None
    SQL = """seq INTEGER PRIMARY KEY, step INTEGER, ts TEXT, symbol TEXT, kind TEXT NOT NULL,
    code TEXT NOT NULL, reason TEXT NOT NULL, client_order_id TEXT"""


class StateChangeRow(NamedTuple):
    step: int | None
    ts: str | None
    scope: str
    from_state: str
    to_state: str
    reason: str
    equity: float | None
    peak: float | None
    day: str | None
    wall_ts: str | None
    SQL = """seq INTEGER PRIMARY KEY, step INTEGER, ts TEXT, scope TEXT NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL,
    equity REAL, peak REAL, day TEXT, wall_ts TEXT"""


# resume checks (research_lib.resume): written in the step's transaction, not in the
# deterministic dump (they fingerprint inputs, not what the run did)
class BarDigestRow(NamedTuple):
    step: int
    digest: str
    SQL = "step INTEGER PRIMARY KEY, digest TEXT NOT NULL"


class ConfigHistoryRow(NamedTuple):
    step: int
    inputs: str
    SQL = "step INTEGER PRIMARY KEY, inputs TEXT NOT NULL"


# an external venue (research_lib.venues): what the venue reported of our orders, with its
# ids, and each reconciliation of the venue's account with the ledger that did not simply
# agree. A run on the internal paper broker writes none (and its dump leaves them out).
class VenueEventRow(NamedTuple):
    step: int | None
    ts: str | None
    client_order_id: str | None
    venue_order_id: str | None
    event: str  # SUBMITTED ADOPTED REJECTED PARTIALLY_FILLED FILLED CANCELED EXPIRED ...
    status: str | None  # the venue's order status
    symbol: str | None
    qty: float | None
    filled_qty: float | None
    filled_avg_price: float | None
    reason: str | None
    SQL = """seq INTEGER PRIMARY KEY, step INTEGER, ts TEXT, client_order_id TEXT,
    venue_order_id TEXT, event TEXT NOT NULL, status TEXT, symbol TEXT, qty REAL,
    filled_qty REAL, filled_avg_price REAL, reason TEXT"""


class ReconciliationRow(NamedTuple):
    step: int | None  # None: before the first step (a new run's start)
    ts: str | None
    kind: str  # position | open_order | cash | account
    symbol: str | None
    client_order_id: str | None
    ledger: float | None
    venue: float | None
    in_flight: float | None
    verdict: str  # EXPLAINED (by an in-flight order) | DIFFERENCE (latches HALTED)
    reason: str
    SQL = """seq INTEGER PRIMARY KEY, step INTEGER, ts TEXT, kind TEXT NOT NULL, symbol TEXT,
    client_order_id TEXT, ledger REAL, venue REAL, in_flight REAL, verdict TEXT NOT NULL,
    reason TEXT NOT NULL"""


VENUE_TABLES_ROWS: dict[str, type[Any]] = {"venue_events": VenueEventRow,
                                           "reconciliations": ReconciliationRow}


class ColumnBlockRow(NamedTuple):
    """Rows of a bulk table (decisions, positions) over a batch of steps, as one Parquet
    blob: how a replay stores them (:mod:`research_lib.ledger_columns`)."""

    tbl: str
    first_step: int
    last_step: int
    n_rows: int
    data: bytes
    SQL = """seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL, n_rows INTEGER NOT NULL, data BLOB NOT NULL"""


STORE_TABLES_ROWS: dict[str, type[Any]] = {"column_blocks": ColumnBlockRow}


# table -> row type, in the schema's order (what the run did)
TABLES: dict[str, type[Any]] = {
    "steps": StepRow,
    "orders": OrderRow,
    "order_events": OrderEventRow,
    "fills": FillRow,
    "equity": EquityRow,
    "positions": PositionRow,
    "decisions": DecisionRow,
    "risk_events": RiskEventRow,
    "state_changes": StateChangeRow,
}
RESUME_TABLES_ROWS: dict[str, type[Any]] = {"bar_digests": BarDigestRow,
                                            "config_history": ConfigHistoryRow}

# rows of column indices: ``row[DECISION.verdict]`` on a plain tuple in DecisionRow order
DECISION = DecisionRow(*range(len(DecisionRow._fields)))
POSITION = PositionRow(*range(len(PositionRow._fields)))
EQUITY = EquityRow(*range(len(EquityRow._fields)))


def columns(row: type[Any]) -> tuple[str, ...]:
    return tuple(row._fields)


def create_table(name: str, row: type[Any]) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {row.SQL});"


class Same(NamedTuple):
    """A column of :func:`block` whose every row holds ``value``."""

    value: Any


def block(row: type[Any], **cols: Any) -> list[tuple[Any, ...]]:
    """Rows of table ``row`` from named columns: each a sequence with one value per row, or
    :class:`Same`. Every field of ``row`` is named exactly once (a missing or unknown name
    is a TypeError), and the rows come out in the table's column order."""
    fields = row._fields
    if set(cols) != set(fields):
        missing = [f for f in fields if f not in cols]
        unknown = sorted(set(cols) - set(fields))
        raise TypeError(f"{row.__name__}: columns missing {missing}, unknown {unknown}")
    n = next((len(v) for v in cols.values() if not isinstance(v, Same)), 0)
    seqs = [repeat(v.value, n) if isinstance(v, Same) else v
            for v in (cols[f] for f in fields)]
    return list(zip(*seqs, strict=False)) if n else []


def position_columns(steps: Sequence[int], symbols: Sequence[str], book: PositionBook,
                     marks: np.ndarray) -> dict[str, Any]:
    """:class:`PositionRow` columns for ``steps`` (step, then symbol order), each symbol
    valued at ``marks[k, j]`` (``symbols[j]`` at ``steps[k]``); a mark that is not finite is
    shown as NaN (stored NULL), a symbol never traded is all zeros. The fast replay stores
    these columns as they are; :func:`position_rows` is the same rows as tuples (the step
    loop's): one layout, from this one function."""
    n_sym = len(symbols)
    q, avg, real, fees = (np.zeros(n_sym) for _ in range(4))
    for j, sym in enumerate(symbols):
        i = book.index.get(sym)
        if i is not None:
            q[j], avg[j] = float(book.qty[i]), float(book.avg_price[i])
            real[j], fees[j] = float(book.realized[i]), float(book.fees[i])
    m = np.asarray(marks, dtype=np.float64).reshape(len(steps), n_sym)
    held = q != 0
    with np.errstate(invalid="ignore"):
        value = np.where(held, q * m, 0.0)
        unr = np.where(held, q * (m - avg), 0.0)
    e = len(steps)
    return {"step": np.repeat(np.asarray(steps, dtype=np.int64), n_sym),
            "symbol": np.tile(np.asarray(symbols, dtype=object), e),
            "qty": np.tile(q, e), "avg_price": np.tile(avg, e),
            "mark": np.where(np.isfinite(m), m, np.nan).ravel(), "value": value.ravel(),
            "realized": np.tile(real, e), "unrealized": unr.ravel(), "fees": np.tile(fees, e)}


def position_rows(steps: Sequence[int], symbols: Sequence[str], book: PositionBook,
                  marks: np.ndarray) -> list[tuple[Any, ...]]:
    """:func:`position_columns` as :class:`PositionRow` tuples (a NaN mark as None)."""
    c = position_columns(steps, symbols, book, marks)
    mark = [None if math.isnan(x) else x for x in c["mark"].tolist()]
    cols = [c[f].tolist() if f != "mark" else mark for f in PositionRow._fields]
    return list(zip(*cols, strict=True))
