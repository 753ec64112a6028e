"""The durable record of a paper run: one SQLite file (WAL) per run, one transaction per step.

``<run_dir>/<run_id>/ledger.sqlite`` holds:

==================  ===================================================================
``meta``            run id, symbols, labels (proxy notes), asset classes, spec, config
``steps``           one row per committed step (bar clock ``ts``; wall clock apart)
``orders``          every order decided, denied ones included (the intent, immutable)
``order_events``    OrderSubmitted / OrderDenied / OrderRejected / OrderFilled /
                    OrderCancelled (a kill switch stopped an open order), in order
``fills``           one row per filled order; ``client_order_id`` is the primary key, so
                    an order can never fill twice
``equity``          per step: cash, equity, gross, net, peak, drawdown, trading state
``positions``       per step snapshot of each symbol (the truth is ``fills``)
``decisions``       per step and symbol: class, model, probability, target, verdict
``risk_events``     denials, rejections, clips and limit breaches with coded reasons
``state_changes``   account and per-symbol transitions (REDUCING, HALTED, resets), config
                    reloads
``bar_digests``     per step: a rolling sha256 over every bar consumed up to it (a resume
                    re-feeding history checks the bars are the same; research_lib.resume)
``config_history``  per config reload applied: the run's inputs from that step on
``column_blocks``   a replay's decisions and positions, as Parquet blobs per batch
                    (:mod:`research_lib.ledger_columns`; readers merge both stores)
==================  ===================================================================

Everything but the wall-clock columns and the run id is a deterministic function of
inputs, seed and config; :func:`~research_lib.ledger_read.deterministic_dump` returns
exactly that part, so two runs can be compared byte for byte.

:meth:`Ledger.open` refuses a ledger it cannot trust (not SQLite, truncated, failed
``quick_check``, missing tables, cash or positions that do not match the fills) with a
:class:`~research_lib.errors.LedgerError` naming the file and the reason; the file is
never changed or deleted. :func:`~research_lib.ledger_read.read_run` gives notebooks the
tables as DataFrames; the run's paths, lock and halt marker are in
:mod:`research_lib.run_files`.

A step that cannot be committed (a full disk, a read-only file) is rolled back and the
account is latched HALTED by :meth:`Ledger.latch_halt`: a ``state_changes`` row when the
ledger still takes one, else an empty marker file ``ledger.sqlite.halted`` (it needs no
data block, so a full disk usually takes it), holding the reason when there is room; the
next writer moves it into the ledger; only ``research-lib reset-halt`` clears it.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .broker import Fill, Order, Position
from .errors import LedgerBusyError, LedgerError
from .ledger_columns import _INSERT_BLOCK, BLOCKS, ColumnBlock, bulk_rows
from .paper.rows import (
    RESUME_TABLES_ROWS,
    STORE_TABLES_ROWS,
    TABLES,
    VENUE_TABLES_ROWS,
    RiskEventRow,
    StateChangeRow,
    StepRow,
    columns,
    create_table,
)
from .risk import TradingState
from .run_files import (
    LEDGER_WRITE_FAILED,
    RunLock,
    fsync_dir,
    halt_marker_path,
    read_halt_marker,
)
from .telemetry import get_logger, log_event

log = get_logger("ledger")

SCHEMA_VERSION = "1"
_SQLITE_MAGIC = b"SQLite format 3\x00"

# table -> columns, in insert order: from the one typed definition per table
# (research_lib.paper.rows; the primary keys and types are there too)
COLUMNS: dict[str, tuple[str, ...]] = {t: columns(r) for t, r in TABLES.items()}


_DDL = "\n".join([
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    *(create_table(t, r) for t, r in {**TABLES, **RESUME_TABLES_ROWS, **VENUE_TABLES_ROWS,
                                        **STORE_TABLES_ROWS}.items()),
])

# resume checks (research_lib.resume), written in the step's transaction; not in the
# deterministic dump (they fingerprint inputs, not what the run did)
RESUME_TABLES: dict[str, tuple[str, ...]] = {t: columns(r) for t, r in RESUME_TABLES_ROWS.items()}
# an external venue's reports and reconciliations (research_lib.venues); a run on the
# internal paper broker writes none, and the deterministic dump leaves them out when empty
VENUE_TABLES: dict[str, tuple[str, ...]] = {t: columns(r) for t, r in VENUE_TABLES_ROWS.items()}
_INSERT = {t: f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
           for t, cols in {**COLUMNS, **RESUME_TABLES, **VENUE_TABLES}.items()}
_ORDER_COLS = ", ".join(COLUMNS["orders"])


BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock on the ledger


def _write_error(path: Path, what: str, exc: sqlite3.Error, after: str) -> LedgerError:
    """The error for a write that failed with ``exc``: :class:`LedgerBusyError` when another
    process held the database lock (SQLITE_BUSY / "database is locked"), else LedgerError."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code in (5, 6) or "database is locked" in str(exc) or "database table is locked" in str(exc):
        return LedgerBusyError(
            f"{path}: another process holds run {path.parent.name}'s ledger locked ({exc}; "
            f"waited {BUSY_TIMEOUT_MS / 1000:g} s), so {what} was not written{after}. A second "
            "writer means another session or tool is working on this run: this session "
            "refuses to continue (the account is NOT halted). Find and stop it (e.g. `fuser "
            f"{path}`; a sqlite3 shell or notebook with an open transaction), then "
            f"`research-lib paper --resume {path.parent.name}`")
    return LedgerError(f"{path}: {what} could not be written ({exc}){after}")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class StepRecord:
    """Everything one step writes, committed in one transaction (rows per table, in
    :data:`COLUMNS` order)."""

    step: int
    ts: str
    n_bars: int
    e2d_ms: float | None = None
    wall_ts: str | None = None
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    # what the step logs once committed (the session's JSON records); not written here
    log: Any = field(default=None, repr=False, compare=False)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(table, []).append(row)


def step_rows(rec: StepRecord) -> dict[str, list[tuple[Any, ...]]]:
    """One step's rows per table, its ``steps`` row first (what :meth:`Ledger.commit_rows`
    takes)."""
    return {"steps": [StepRow(rec.step, rec.ts, rec.n_bars, rec.wall_ts or now_iso(), rec.e2d_ms)],
            **{t: r for t, r in rec.rows.items() if t != "steps"}}


@dataclass
class LedgerState:
    """What a session needs to continue a run, rebuilt from the ledger."""

    meta: dict[str, Any]
    last_step: int
    last_ts: str | None
    fills: list[Fill]
    open_orders: list[Order]
    known_ids: set[str]
    cash: float | None
    equity: float | None
    state: TradingState
    peak: float
    day_start_equity: float
    day: str | None
    halted_symbols: dict[str, str]
    positions: dict[str, float]
    halt_reason: str | None = None  # why the account is HALTED, when it is

    def positions_from_fills(self) -> dict[str, Position]:
        out: dict[str, Position] = {}
        for f in self.fills:
            out[f.symbol] = out.get(f.symbol, Position(f.symbol)).apply(f)
        return out


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger ({exc}); refusing to trade") from exc
    if head != _SQLITE_MAGIC:
        what = "empty" if not head else "not an SQLite database (truncated or overwritten?)"
        raise LedgerError(
            f"{path}: ledger is {what}; refusing to trade. The file is kept as is for "
            "inspection; move it away to start a new run, or restore it from a backup."
        )


class Ledger:
    """One run's SQLite ledger. Create with :meth:`create`, reopen with :meth:`open`.
    A writer holds the run's :class:`RunLock` until :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection,
                 lock: RunLock | None = None) -> None:
        self.path = path
        self.conn = conn
        self.lock = lock

    # -- lifecycle -------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, readonly: bool, synchronous: str) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"{path}: could not switch the ledger to WAL (got {mode})")
            conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
        return conn

    @classmethod
    def create(cls, path: str | Path, meta: Mapping[str, Any],
               synchronous: str = "NORMAL") -> Ledger:
        """A new ledger at ``path``; refuses to touch an existing file."""
        p = Path(path)
        if p.exists():
            raise LedgerError(
                f"{p}: a ledger already exists for this run; resume it with --resume "
                f"{p.parent.name}, or choose another run id"
            )
        try:
            lock = RunLock(p).acquire()
        except OSError as exc:
            raise LedgerError(f"{p}: cannot create the run folder ({exc})") from exc
        # built whole under a private name, then linked into place: a kill at any moment
        # leaves either no ledger or one with its schema and meta, never a half-made file
        # (a resume of which could only fail with "no such table")
        tmp = p.with_name(f".{p.name}.creating")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            for leftover in (tmp, *(tmp.with_name(tmp.name + x) for x in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)  # a kill during an earlier create (we hold the lock)
            conn = cls._connect(tmp, readonly=False, synchronous=synchronous)
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _DDL.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            rows = {"schema_version": SCHEMA_VERSION, "created_at": now_iso(), **meta}
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v, sort_keys=True)) for k, v in rows.items()])
            conn.execute("COMMIT")
            conn.close()  # the last connection: the WAL is checkpointed into the file
            os.link(tmp, p)  # never replaces a ledger another creator linked first
            tmp.unlink()
            fsync_dir(p.parent)
            conn = cls._connect(p, readonly=False, synchronous=synchronous)
        except FileExistsError:
            lock.release()
            raise LedgerError(f"{p}: a ledger already exists for this run; resume it with "
                              f"--resume {p.parent.name}, or choose another run id") from None
        except sqlite3.Error as exc:
            lock.release()
            raise LedgerError(f"{p}: cannot create the ledger ({exc})") from exc
        except OSError as exc:
            lock.release()
            raise LedgerError(f"{p}: cannot create the run folder ({exc})") from exc
        return cls(p, conn, lock)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False,
             synchronous: str = "NORMAL") -> Ledger:
        """Reopen and verify a ledger; :class:`LedgerError` says which file and why."""
        p = Path(path)
        if not p.is_file():
            raise LedgerError(f"{p}: no ledger here; check the run id and --run-dir")
        _check_header(p)
        try:
            lock = None if readonly else RunLock(p).acquire()
        except OSError as exc:
            raise LedgerError(
                f"{p}: cannot lock the run for writing ({exc}); is the run folder read-only "
                "or the disk full? Refusing to trade; the ledger is kept as is"
            ) from exc
        try:
            conn = cls._connect(p, readonly=readonly, synchronous=synchronous)
            check = conn.execute("PRAGMA quick_check").fetchall()
            if [r[0] for r in check] != ["ok"]:
                raise LedgerError(
                    f"{p}: ledger failed SQLite quick_check ({'; '.join(str(r[0]) for r in check[:3])}); "
                    "refusing to trade; the file is kept as is"
                )
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            missing = sorted((set(COLUMNS) | {"meta"}) - tables)
            if missing:
                raise LedgerError(f"{p}: ledger lacks tables {missing}; refusing to trade; "
                                  "the file is kept as is")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or json.loads(row[0]) != SCHEMA_VERSION:
                raise LedgerError(
                    f"{p}: ledger schema version {row[0] if row else None} is not "
                    f"{SCHEMA_VERSION!r}; refusing to trade"
                )
        except sqlite3.DatabaseError as exc:
            if lock is not None:
                lock.release()
            raise LedgerError(
                f"{p}: ledger is unreadable ({exc}); refusing to trade. The file is kept as "
                "is for inspection."
            ) from exc
        except LedgerError:
            if lock is not None:
                lock.release()
            raise
        led = cls(p, conn, lock)
        if not readonly:
            try:  # a ledger made before the replay's column store gets its table
                conn.execute(create_table(BLOCKS, STORE_TABLES_ROWS[BLOCKS]))
                led._absorb_halt_marker()
            except (LedgerError, sqlite3.Error) as exc:
                led.close()
                if isinstance(exc, LedgerError):
                    raise
                raise _write_error(p, "the column_blocks table", exc, "") from exc
        return led

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:  # pragma: no cover
            pass
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------
    def commit_step(self, rec: StepRecord, pause: float = 0.0) -> bool:
        """Write one step atomically. Returns ``False`` (and writes nothing) if this step was
        already committed; raises :class:`LedgerError` after rolling back on any failure
        (a full disk, a read-only folder, a duplicate fill), leaving the previous step.
        ``pause`` (fault-injection drills only) sleeps inside the transaction, after the
        rows are written and before ``COMMIT``, so a kill can land there."""
        return self.commit_rows(step_rows(rec), pause)

    def commit_rows(self, rows: Mapping[str, list[tuple[Any, ...]]], pause: float = 0.0) -> bool:
        """Write the rows of one or more steps (``rows["steps"]`` one per step, every table
        in step order; :func:`step_rows` gives one step's) in one transaction: ``False``
        (and nothing written) if one of the steps was already committed;
        :class:`LedgerError` after rolling back on any other failure."""
        c = self.conn
        steps = rows.get("steps") or []
        span = (f"step {steps[0][0]}" if len(steps) == 1 else
                f"steps {steps[0][0]}..{steps[-1][0]}" if steps else "no step")
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(_INSERT["steps"], steps)
            except sqlite3.IntegrityError:
                c.execute("ROLLBACK")
                log_event(log, "step_already_committed", level=30, steps=span,
                          ledger=str(self.path))
                return False
            for table, tr in rows.items():
                if isinstance(tr, ColumnBlock):  # a replay's bulk rows, one Parquet blob
                    c.execute(_INSERT_BLOCK, tr.row())
                elif table != "steps" and tr:
                    c.executemany(_INSERT[table], tr)
            if pause > 0:
                time.sleep(pause)
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = _write_error(self.path, span, exc, "; it was rolled back and the ledger "
                               "still holds the steps before it")
            if not isinstance(err, LedgerBusyError):  # the message other tests rely on
                err = LedgerError(
                    f"{self.path}: {span} could not be committed ({exc}); it was rolled back "
                    "and the ledger still holds the steps before it")
            raise err from exc
        return True

    def append_risk_event(self, kind: str, code: str, reason: str) -> None:
        """A risk event outside any step (e.g. a live feed that failed), after the last step."""
        last = self.conn.execute("SELECT step, ts FROM steps ORDER BY step DESC LIMIT 1").fetchone()
        step, ts = last if last else (None, None)
        self._append_row("risk_events", RiskEventRow(step, ts, None, kind, code, reason, None),
                         f"the {code} event")

    def _append_row(self, table: str, row: tuple[Any, ...], what: str) -> None:
        """One row outside any step, in its own transaction (rolled back on failure: the
        error from :func:`_write_error` says what could not be recorded)."""
        self.append_rows({table: [row]}, what)

    def append_rows(self, rows: Mapping[str, list[tuple[Any, ...]]], what: str) -> None:
        """Rows outside any step (a venue reconciliation before the first step), in one
        transaction: all of them or, rolled back, none."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for table, tr in rows.items():
                if tr:
                    self.conn.executemany(_INSERT[table], tr)
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise _write_error(self.path, what, exc, "") from exc

    def append_state_change(self, scope: str, from_state: str, to_state: str, reason: str,
                            equity: float | None, peak: float | None) -> None:
        """A transition made outside the loop (reset-halt), after the last step."""
        last = self.conn.execute(
            "SELECT step, ts, day FROM equity ORDER BY step DESC LIMIT 1").fetchone()
        step, ts, day = last if last else (None, None, None)
        row = StateChangeRow(step, ts, scope, from_state, to_state, reason, equity, peak, day,
                             now_iso())
        self._append_row("state_changes", row, f"the {from_state} -> {to_state} change")

    def latch_halt(self, reason: str, equity: float | None) -> str:
        """After a step failed to commit: record the account HALTED where it still can be.

        Returns where: ``"ledger"`` (a ``state_changes`` row), the marker's path, or ``""``
        when neither could be written (the disk is full and the folder takes no new file);
        then the next session fails at its first commit the same way and trades nothing."""
        try:
            row = self.conn.execute(
                "SELECT state FROM equity ORDER BY step DESC LIMIT 1").fetchone()
            from_state = row[0] if row else TradingState.ACTIVE.value
        except sqlite3.Error:
            from_state = "UNKNOWN"
        try:
            self.append_state_change("account", from_state, TradingState.HALTED.value, reason,
                                     equity, None)
            return "ledger"
        except (LedgerError, sqlite3.Error):
            pass
        marker = halt_marker_path(self.path)
        try:
            marker.touch()  # an empty file: no data block needed
        except OSError as exc:
            log_event(log, "halt_not_recorded", level=50, ledger=str(self.path),
                      reason=reason, error=str(exc))
            return ""
        try:
            marker.write_text(json.dumps({"reason": reason, "from_state": from_state,
                                          "equity": equity, "at": now_iso()}))
        except OSError:
            pass  # the empty marker still halts; the reason is in the log
        return str(marker)

    def _absorb_halt_marker(self) -> None:
        """A marker left by a failed step becomes a ``state_changes`` row, then goes."""
        marker = halt_marker_path(self.path)
        if not marker.exists():
            return
        reason, from_state, equity = read_halt_marker(marker)
        try:
            self.append_state_change("account", from_state, TradingState.HALTED.value, reason,
                                     equity, None)
        except LedgerError as exc:
            raise LedgerError(
                f"{self.path}: the run halted on a failed write ({marker}) and the halt cannot "
                f"be recorded now either ({exc}); refusing to trade until the ledger is writable"
            ) from exc
        try:
            marker.unlink()
        except OSError:
            pass  # still halted either way; reset-halt removes it

    def clear_halt_marker(self) -> None:
        """For reset-halt: the marker must go, or the account stays HALTED."""
        marker = halt_marker_path(self.path)
        try:
            marker.unlink(missing_ok=True)
        except OSError as exc:
            raise LedgerError(f"{marker}: cannot remove the halt marker ({exc}); the account "
                              "stays HALTED") from exc

    # -- reading ---------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def fills(self) -> list[Fill]:
        rows = self.conn.execute(
            f"SELECT {', '.join(COLUMNS['fills'])} FROM fills ORDER BY step, rowid")
        return [Fill(*r) for r in rows]

    def orders(self) -> list[Order]:
        rows = self.conn.execute(
            "SELECT client_order_id, step, ts, symbol, qty, decision_price, kind, asset_class "
            "FROM orders ORDER BY step, rowid")
        crypto = set(self.meta().get("crypto_symbols", []))
        return [Order(cid, step, ts, sym, qty, dp, kind, ac, sym in crypto)
                for cid, step, ts, sym, qty, dp, kind, ac in rows]

    def load_state(self) -> LedgerState:
        """Rebuild the account from the ledger and check it against the last snapshot."""
        try:
            return self._load_state()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: ledger is unreadable ({exc}); refusing to trade; "
                              "the file is kept as is") from exc

    def _load_state(self) -> LedgerState:
        c = self.conn
        meta = self.meta()
        last = c.execute("SELECT step, ts FROM steps ORDER BY step DESC LIMIT 1").fetchone()
        last_step, last_ts = (last[0], last[1]) if last else (-1, None)
        fills = self.fills()
        filled = {f.client_order_id for f in fills}
        terminal = {r[0] for r in c.execute(
            "SELECT client_order_id FROM order_events WHERE event IN "
            "('OrderFilled', 'OrderRejected', 'OrderDenied', 'OrderCancelled')")}
        orders = self.orders()
        dry = {r[0] for r in c.execute("SELECT client_order_id FROM orders WHERE dry_run=1")}
        open_orders = [o for o in orders if o.client_order_id not in filled | terminal | dry]
        known = {o.client_order_id for o in orders}
        eq = c.execute("SELECT cash, equity, peak, day_start_equity, day, state FROM equity "
                       "ORDER BY step DESC LIMIT 1").fetchone()
        initial = float(meta.get("initial_cash", float("nan")))
        if eq:
            cash, equity, peak, day_start, day, state = eq
        else:
            cash, equity, peak, day_start, day, state = (None, None, initial, initial, None,
                                                         TradingState.ACTIVE.value)
        # account transitions after the last step (reset-halt) override the snapshot
        # (reset-halt writes them with the last step's number; the loop never writes one)
        after = c.execute(
            "SELECT to_state, peak, reason FROM state_changes WHERE scope='account' AND "
            f"(reason LIKE 'RESET_HALT%' OR reason LIKE '{LEDGER_WRITE_FAILED}%' "
            "OR reason LIKE 'RECONCILIATION_DIFFERENCE%') "
            "AND step IS ? ORDER BY seq",
            (last_step if last else None,)).fetchall()
        halt_reason = None
        for to_state, pk, why in after:
            state = to_state
            halt_reason = why if to_state == TradingState.HALTED.value else None
            if pk is not None:
                peak = pk
        marker = halt_marker_path(self.path)
        if marker.exists():  # a failed step the ledger itself could not record
            state = TradingState.HALTED.value
            halt_reason = read_halt_marker(marker)[0]
        if state == TradingState.HALTED.value and halt_reason is None:
            row = c.execute("SELECT reason FROM state_changes WHERE scope='account' AND "
                            "to_state='HALTED' ORDER BY seq DESC LIMIT 1").fetchone()
            halt_reason = row[0] if row else None
        halted: dict[str, str] = {}
        for scope, to_state, reason in c.execute(
                "SELECT scope, to_state, reason FROM state_changes WHERE scope NOT IN "
                "('account', 'config', 'kill_switch') ORDER BY seq"):
            if to_state == TradingState.HALTED.value:
                halted[scope] = reason
            else:
                halted.pop(scope, None)
        snap = dict(bulk_rows(c, "positions", ("symbol", "qty"), step=last_step))
        st = LedgerState(
            meta=meta, last_step=last_step, last_ts=last_ts, fills=fills,
            open_orders=open_orders, known_ids=known, cash=cash, equity=equity,
            state=TradingState(state), peak=float(peak),
            day_start_equity=float(day_start) if day_start is not None else float("nan"),
            day=day, halted_symbols=halted, positions=snap, halt_reason=halt_reason,
        )
        self._verify(st, initial)
        return st

    def _verify(self, st: LedgerState, initial: float) -> None:
        """Cash and positions folded from fills must equal the last committed snapshot."""
        if st.cash is None:
            if st.fills:
                raise LedgerError(f"{self.path}: fills without an equity row; refusing to trade")
            return
        cash = initial
        for f in st.fills:
            cash += f.cash_delta
        if not math.isclose(cash, st.cash, rel_tol=1e-12, abs_tol=1e-6):
            raise LedgerError(
                f"{self.path}: cash rebuilt from fills ({cash:.6f}) does not match the last "
                f"equity row ({st.cash:.6f}); refusing to trade; the file is kept as is"
            )
        pos = st.positions_from_fills()
        for sym in set(pos) | set(st.positions):
            a = pos[sym].qty if sym in pos else 0.0
            b = st.positions.get(sym, 0.0)
            if not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9):
                raise LedgerError(
                    f"{self.path}: position {sym} rebuilt from fills ({a}) does not match the "
                    f"last snapshot ({b}); refusing to trade; the file is kept as is"
                )


