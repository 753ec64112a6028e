"""Batched JSON logging (log_events, log_rows) writes exactly the records log_event writes."""

from __future__ import annotations

import io
import json
import logging
from enum import StrEnum

import numpy as np
import pytest

from research_lib.telemetry import configure, get_logger, log_event, log_events, log_rows


class Side(StrEnum):
    BUY = "BUY"


VALUES = [
    0, -3, 2**70, 0.1, -0.0, 1e300, 5e-324, float("nan"), float("inf"), -float("inf"),
    np.float64(0.25), np.float64("nan"), np.float32(0.5), np.int64(7), True, False, None,
    "", "plain", 'quote " and \\ backslash', "tab\tnewline\n", "é ü 日本 \u2028", Side.BUY,
    {"client_order_id": "run-1-SPY", "qty": 5.0}, {"nested": {"x": [1, 2.5, None]}, 3: "int key"},
    [1, "a", None], (2, 3.5), object,
]


def _records(emit) -> list[dict]:
    buf = io.StringIO()
    configure(level="INFO", stream=buf, run_id="run-batch")
    emit(get_logger("unit.batch"))
    out = [json.loads(x) for x in buf.getvalue().splitlines()]
    for r in out:
        r.pop("ts")
    return out


def _raw(emit) -> list[str]:
    buf = io.StringIO()
    configure(level="INFO", stream=buf, run_id="run-batch")
    emit(get_logger("unit.batch"))
    return [x.split(",", 1)[1] for x in buf.getvalue().splitlines()]  # without the ts


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_log_events_when_any_field_value_then_same_line_as_log_event(value):
    fields = {"step": 3, "value": value, "after": "x"}
    one = _raw(lambda log: log_event(log, "decision", **fields))
    many = _raw(lambda log: log_events(log, [("decision", fields)]))
    assert many == one


def test_log_rows_when_many_records_then_same_lines_in_order():
    keys = ("step", "symbol", "probability", "order", "latency_ms")
    rows = [(k, f"S{k}", v, None if k % 2 else {"client_order_id": f"c{k}", "qty": k * 1.5},
             0.001 * k) for k, v in enumerate(VALUES)]
    one = _raw(lambda log: [log_event(log, "decision", **dict(zip(keys, r, strict=True)))
                            for r in rows])
    many = _raw(lambda log: log_rows(log, "decision", keys, rows))
    assert many == one and len(many) == len(rows)


def test_log_events_when_a_field_is_named_like_a_head_key_then_same_as_log_event():
    fields = {"level": "mine", "event": "other", "ts": 1}
    assert _records(lambda log: log_events(log, [("e", fields)])) == \
        _records(lambda log: log.info("e", extra={"fields": fields}))


def test_log_events_when_level_disabled_then_nothing_written():
    buf = io.StringIO()
    configure(level="WARNING", stream=buf, run_id="run-batch")
    log_rows(get_logger("unit.batch"), "decision", ("a",), [(1,), (2,)])
    assert buf.getvalue() == ""


def test_log_events_when_handler_is_not_json_then_ordinary_records_reach_it(caplog):
    configure(level="INFO", stream=io.StringIO(), run_id="run-batch")
    logging.getLogger("research_lib").addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="research_lib"):
            log_rows(get_logger("unit.batch"), "decision", ("symbol",), [("SPY",), ("QQQ",)])
    finally:
        logging.getLogger("research_lib").removeHandler(caplog.handler)
    got = [(r.getMessage(), r.fields) for r in caplog.records if r.name == "research_lib.unit.batch"]
    assert got == [("decision", {"symbol": "SPY"}), ("decision", {"symbol": "QQQ"})]
