"""JSON-lines logging: every record is JSON with the run_id; latency percentiles."""

from __future__ import annotations

import io
import json

from research_lib.telemetry import (
    LatencyRecorder,
    configure,
    get_logger,
    log_event,
    new_run_id,
)


def test_log_records_when_emitted_then_json_lines_with_run_id():
    buf = io.StringIO()
    configure(level="INFO", stream=buf, run_id="run-test-1")
    log = get_logger("unit")
    log_event(log, "order_denied", symbol="SPY", reason="MAX_POSITION_EXCEEDED", after=0.17)
    log.warning("plain message")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 2
    assert all(rec["run_id"] == "run-test-1" for rec in lines)
    assert lines[0]["event"] == "order_denied" and lines[0]["after"] == 0.17
    assert lines[1]["level"] == "WARNING"


def test_log_event_when_nan_or_numpy_then_still_valid_json():
    import numpy as np

    buf = io.StringIO()
    configure(level="INFO", stream=buf, run_id="run-test-2")
    log_event(get_logger("unit"), "x", p=float("nan"), q=np.float32(0.5), r=np.int64(3))
    rec = json.loads(buf.getvalue())
    assert rec["p"] == "nan" and rec["q"] == 0.5 and rec["r"] == 3


def test_run_ids_when_generated_then_unique_and_sortable():
    a, b = new_run_id(), new_run_id()
    assert a != b and a.startswith("run-")


def test_latency_recorder_when_samples_then_nearest_rank_percentiles():
    rec = LatencyRecorder()
    rec.extend([i / 1000 for i in range(1, 101)])  # 1..100 ms
    s = rec.summary_ms()
    assert round(s["p50_ms"], 6) == 50.0 and round(s["p99_ms"], 6) == 99.0
