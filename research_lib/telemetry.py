"""JSON-lines logging with a ``run_id`` on every record, plus latency histograms.

Set up once per process with :func:`configure`; commands and notebooks call the same
function. Every record is one JSON object per line with ``ts``, ``level``, ``logger``,
``run_id``, ``event`` and any structured fields passed through ``extra={"fields": {...}}``
or :func:`log_event`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_RUN_ID: str | None = None
_HANDLER_TAG = "_research_lib_handler"
LOGGER_NAME = "research_lib"


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique run id: ``run-20260101T000000Z-1a2b3c4d``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}"


def get_run_id() -> str:
    global _RUN_ID
    if _RUN_ID is None:
        _RUN_ID = os.environ.get("RESEARCH_LIB_RUN_ID") or new_run_id()
    return _RUN_ID


def set_run_id(run_id: str) -> None:
    global _RUN_ID
    _RUN_ID = run_id


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; ``run_id`` is always present."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": getattr(record, "run_id", None) or get_run_id(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            payload.update(_jsonable(fields))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, sort_keys=False, separators=(",", ":"))


def configure(
    level: str | int = "INFO",
    stream: Any = None,
    log_file: str | Path | None = None,
    run_id: str | None = None,
) -> logging.Logger:
    """Install the JSON handler(s) on the package logger, once; calling again replaces them."""
    if run_id is not None:
        set_run_id(run_id)
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        if getattr(h, _HANDLER_TAG, False):
            logger.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(JsonFormatter())
        setattr(h, _HANDLER_TAG, True)
        logger.addHandler(h)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    logger.propagate = False
    return logger


def get_logger(name: str) -> logging.Logger:
    if not name.startswith(LOGGER_NAME):
        name = f"{LOGGER_NAME}.{name}"
    return logging.getLogger(name)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log a structured event: ``log_event(log, "order_denied", symbol="SPY", reason=...)``."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


class LatencyRecorder:
    """Collects latencies (seconds) and reports percentiles in microseconds/milliseconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def extend(self, values: Iterable[float]) -> None:
        self.samples.extend(values)

    def percentile(self, q: float) -> float:
        """The q-th percentile in seconds (nearest-rank); NaN when empty."""
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return ordered[rank - 1]

    def summary_ms(self) -> dict[str, float]:
        return {
            "count": len(self.samples),
            "p50_ms": self.percentile(50) * 1e3,
            "p99_ms": self.percentile(99) * 1e3,
            "max_ms": (max(self.samples) * 1e3) if self.samples else float("nan"),
        }


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.elapsed`` using ``perf_counter``."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._t0
