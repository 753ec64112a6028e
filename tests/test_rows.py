"""The ledger's tables come from one typed definition each (research_lib.paper.rows)."""

from __future__ import annotations

import sqlite3

from research_lib import ledger
from research_lib.paper.rows import DECISION, POSITION, RESUME_TABLES_ROWS, TABLES, DecisionRow


def test_schema_columns_are_the_row_fields_in_order():
    c = sqlite3.connect(":memory:")
    c.executescript(ledger._DDL)
    for table, row in {**TABLES, **RESUME_TABLES_ROWS}.items():
        cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
        assert [x for x in cols if x != "seq"] == list(row._fields), table
        assert ledger.COLUMNS.get(table, ledger.RESUME_TABLES.get(table)) == row._fields


def test_index_rows_name_the_positions_of_a_plain_tuple():
    d = tuple(f"v{i}" for i in range(len(DecisionRow._fields)))
    assert d[DECISION.verdict] == DecisionRow(*d).verdict
    assert POSITION.step == 0 and POSITION.fees == 8
