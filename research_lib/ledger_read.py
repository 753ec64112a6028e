"""Reading a run's ledger back: the deterministic dump two runs are compared by, a broker
replayed from the fills, and the tables as DataFrames for notebooks and reports
(:func:`read_run`). The writer is :mod:`research_lib.ledger`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .broker import PaperBroker
from .ledger import COLUMNS, VENUE_TABLES, Ledger, LedgerState
from .ledger_columns import BULK_TABLES, bulk_columns, bulk_rows
from .paper.rows import create_table
from .run_files import LEDGER_NAME

if TYPE_CHECKING:  # pandas only for readers, never on the trading path
    import pandas as pd

# Columns that hold wall-clock times or measured latencies: everything else is deterministic.
WALL_CLOCK_COLUMNS: dict[str, tuple[str, ...]] = {
    "steps": ("wall_ts", "e2d_ms"),
    "decisions": ("latency_ms",),
    "state_changes": ("wall_ts",),
}
WALL_CLOCK_META = ("created_at", "run_id", "ledger_path", "config_dir", "engine")  # when, who, where, how
RESUME_META = ("inputs",)  # what a resume checks (research_lib.resume): not in the dump


# ---------------------------------------------------------------------- replay
def replay(path: str | Path) -> PaperBroker:
    """A broker rebuilt from the ledger's fills and open orders alone (no snapshots)."""
    return ledger_view(path)[1]


def ledger_view(path: str | Path) -> tuple[LedgerState, PaperBroker]:
    """The run's state (read-only: its meta, last step, fills, open orders) and a broker
    rebuilt from its fills and open orders alone: the positions folded from the fills, the
    cash, the open orders, every client order id decided."""
    with Ledger.open(path, readonly=True) as led:
        st = led.load_state()
    broker = PaperBroker(initial_cash=float(st.meta["initial_cash"]))
    return st, broker.restore(st.fills, st.open_orders, st.known_ids)


def deterministic_dump(path: str | Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table without wall-clock columns, with the run id replaced by ``<RUN>``:
    two runs of the same inputs, seed and config give equal dumps."""
    with Ledger.open(path, readonly=True) as led:
        meta = led.meta()
        run_id = str(meta.get("run_id", ""))
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, cols in COLUMNS.items():
            keep = [c for c in cols if c not in WALL_CLOCK_COLUMNS.get(table, ())]
            rows = (bulk_rows(led.conn, table, keep) if table in BULK_TABLES else
                    led.conn.execute(f"SELECT {', '.join(keep)} FROM {table} ORDER BY rowid"))
            out[table] = [tuple(v.replace(run_id, "<RUN>") if isinstance(v, str) and run_id
                                else v for v in r) for r in rows]
        for table, cols in VENUE_TABLES.items():  # an external venue's: only when written
            if _has_rows(led, table):
                rows = led.conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid")
                out[table] = [tuple(v.replace(run_id, "<RUN>") if isinstance(v, str) and run_id
                                    else v for v in r) for r in rows]
        out["meta"] = sorted((k, json.dumps(v, sort_keys=True)) for k, v in meta.items()
                             if k not in WALL_CLOCK_META and k not in RESUME_META)
    return out


def _has_rows(led: Ledger, table: str) -> bool:
    """``table`` exists (a ledger written before it was added has none) and holds a row."""
    exists = led.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                              (table,)).fetchone()
    return bool(exists) and led.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None


# ----------------------------------------------------------------------- pandas
def read_run(path: str | Path) -> dict[str, Any]:
    """The run's tables as DataFrames for reports, plus ``meta`` (a dict).

    Keys: ``orders`` (one row per order with its final ``status``, fill price, commission
    and denial/rejection reason), ``fills``, ``equity`` (per step: ts, cash, equity, gross,
    net, drawdown, state, and ``pos_<SYMBOL>`` market values), ``positions`` (long),
    ``risk_events``, ``decisions``, ``state_changes``, ``steps`` and ``meta`` (run_id,
    symbols, labels with proxy notes, asset classes, spec, config snapshot).
    ``path`` may be the ledger file or its run folder.
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        p = p / LEDGER_NAME
    with Ledger.open(p, readonly=True) as led:
        meta = led.meta()
        meta["ledger_path"] = str(p)

        def q(sql: str) -> pd.DataFrame:
            cur = led.conn.execute(sql)
            cols = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

        frames = {t: pd.DataFrame(bulk_columns(led.conn, t)) if t in BULK_TABLES
                  else q(f"SELECT * FROM {t} ORDER BY rowid") for t in COLUMNS}
        venue = {t: q(f"SELECT * FROM {t} ORDER BY rowid") for t in VENUE_TABLES
                 if _has_rows(led, t)}
    for name, df in frames.items():
        if "ts" in df.columns:
            df["ts"] = pd.to_datetime(df["ts"], utc=True)
        if "wall_ts" in df.columns:
            df["wall_ts"] = pd.to_datetime(df["wall_ts"], utc=True, format="ISO8601")
        frames[name] = df

    ev = frames["order_events"]
    orders = frames["orders"].copy()
    status_map = {"OrderSubmitted": "open", "OrderFilled": "filled",
                  "OrderPartiallyFilled": "open",
                  "OrderDenied": "denied", "OrderRejected": "rejected",
                  "OrderCancelled": "cancelled"}
    last = ev.drop_duplicates("client_order_id", keep="last")
    reasons = ev[ev["event"].isin(["OrderDenied", "OrderRejected", "OrderCancelled"])]
    fills = frames["fills"][["client_order_id", "price", "ts", "commission"]].rename(
        columns={"price": "fill_price", "ts": "fill_ts"})
    orders = orders.merge(last[["client_order_id", "event"]], on="client_order_id", how="left")
    orders = orders.merge(reasons[["client_order_id", "reason"]], on="client_order_id",
                          how="left")
    orders = orders.merge(fills, on="client_order_id", how="left")
    orders["status"] = orders.pop("event").map(status_map)
    orders.loc[orders["dry_run"] == 1, "status"] = "dry_run"
    orders["fill_price"] = orders["fill_price"].astype("float64")
    orders["commission"] = orders["commission"].astype("float64")
    orders["fill_ts"] = pd.to_datetime(orders["fill_ts"], utc=True)
    orders["dry_run"] = orders["dry_run"].astype(bool)

    equity = frames["equity"].copy()
    pos = frames["positions"]
    if len(pos) and len(equity):
        wide = pos.pivot(index="step", columns="symbol", values="value")
        wide.columns = [f"pos_{c}" for c in wide.columns]
        equity = equity.join(wide, on="step")
    equity = equity.set_index("ts", drop=False).rename_axis("timestamp")
    return {
        "orders": orders,
        "fills": frames["fills"],
        "equity": equity,
        "positions": pos,
        "risk_events": frames["risk_events"],
        "decisions": frames["decisions"],
        "state_changes": frames["state_changes"],
        "steps": frames["steps"],
        "order_events": ev,
        "meta": meta,
        **venue,  # venue_events, reconciliations: a run at an external venue only
    }


def rows_equal(a: Iterable[tuple[Any, ...]], b: Iterable[tuple[Any, ...]]) -> bool:
    return list(a) == list(b)


def bulk_connection(ledger: str | Path) -> sqlite3.Connection:
    """A read-only view of a ledger for ad-hoc SQL: an in-memory database in which
    ``decisions`` and ``positions`` hold every row of both stores (in ``rowid`` order =
    step order), with the ledger attached behind them for every other table. Costs
    memory in the bulk tables' size; readers in the package use :func:`bulk_columns`."""
    with Ledger.open(ledger, readonly=True) as led:
        data = {t: bulk_rows(led.conn, t) for t in BULK_TABLES}
    return _attached(ledger, data)


def _attached(ledger: str | Path, data: Mapping[str, Iterable[tuple[Any, ...]]]
              ) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", uri=True)
    conn.execute("ATTACH DATABASE ? AS ledger",
                 (f"{Path(ledger).resolve().as_uri()}?mode=ro",))
    for t, row in BULK_TABLES.items():
        conn.execute(create_table(f"main.{t}", row))
        conn.executemany(f"INSERT INTO main.{t} VALUES ({', '.join('?' * len(row._fields))})",
                         data[t])
    conn.commit()
    return conn
