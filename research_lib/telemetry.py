"""JSON-lines logging with a ``run_id`` on every record, plus latency histograms.

Set up once per process with :func:`configure`; commands and notebooks call the same
function. Every record is one JSON object per line with ``ts``, ``level``, ``logger``,
``run_id``, ``event`` and any structured fields passed through ``extra={"fields": {...}}``
or :func:`log_event`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# the run id of the code running now: a context variable, so runs in threads of one process
# (a sweep's workers) each log their own; the process default when none was set
_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("research_lib_run_id",
                                                                    default=None)
_DEFAULT_RUN_ID: list[str] = []
_HANDLER_TAG = "_research_lib_handler"
LOGGER_NAME = "research_lib"


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique run id: ``run-20260101T000000Z-1a2b3c4d``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}"


def get_run_id() -> str:
    rid = _RUN_ID.get()
    if rid is not None:
        return rid
    if not _DEFAULT_RUN_ID:
        _DEFAULT_RUN_ID.append(os.environ.get("RESEARCH_LIB_RUN_ID") or new_run_id())
    return _DEFAULT_RUN_ID[0]


def set_run_id(run_id: str) -> None:
    """The run id of what runs from here in this thread (and the contexts it starts)."""
    _RUN_ID.set(run_id)


class RunFilter(logging.Filter):
    """Passes only the records of one run: a session's ``events.jsonl`` handler, so that
    runs sharing a process (threads of a sweep worker) never write into each other's."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        rid = getattr(record, "run_id", None) or get_run_id()
        return not rid or rid == self.run_id  # a record of no run is shown, never hidden


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


_PLAIN = (str, int, bool, type(None))


def _jsonable_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``_jsonable(fields)`` for a flat dict of fields, with the common types (str, int,
    bool, None, float) decided by one type lookup each: the same result, a few times
    cheaper (a paper step logs one record per decision)."""
    out = {}
    for k, v in fields.items():
        t = type(v)
        if t in _PLAIN:
            out[str(k)] = v
        elif t is float:
            out[str(k)] = v if v - v == 0.0 else str(v)  # NaN and +-inf become strings
        else:
            out[str(k)] = _jsonable(v)
    return out


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=(",", ":"))


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
            payload.update(_jsonable_fields(fields))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(payload)


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


def _handlers(logger: logging.Logger, level: int) -> list[logging.Handler] | None:
    """The handlers a record at ``level`` from ``logger`` reaches (as ``Logger.callHandlers``
    walks them), or None when a logger on the way has filters (then only logging can say)."""
    out: list[logging.Handler] = []
    c: logging.Logger | None = logger
    while c is not None:
        if c.filters:
            return None
        out += [h for h in c.handlers if level >= h.level]
        c = c.parent if c.propagate else None
    if not out and logging.lastResort is not None and level >= logging.lastResort.level:
        out.append(logging.lastResort)
    return out


_QUOTE = json.encoder.encode_basestring_ascii  # how the encoder writes a str (ensure_ascii)
_HEAD = frozenset(("ts", "level", "logger", "run_id", "event"))
_KEYS: dict[tuple, tuple[str, ...]] = {}
_HEAD_TEXT: list[Any] = [None, ""]  # [(level, logger, run_id), its JSON after "ts"]


def _value_json(v: Any) -> str:
    """``v`` as :class:`JsonFormatter` writes a field value (after ``_jsonable``), with the
    common types (str, float, None, int) written directly."""
    t = type(v)
    if t is str:
        return _QUOTE(v)
    if t is float:
        return float.__repr__(v) if v - v == 0.0 else _QUOTE(str(v))
    if v is None:
        return "null"
    if t is int:
        return int.__repr__(v)
    return _ENCODER.encode(_jsonable(v))


def _key_prefixes(keys: tuple) -> tuple[str, ...]:
    """``,"key":`` for each of ``keys`` (str keys only), made once per key tuple."""
    out = _KEYS.get(keys)
    if out is None:
        out = _KEYS[keys] = tuple("," + _QUOTE(k) + ":" for k in keys)
    return out


def log_events(logger: logging.Logger, events: Iterable[tuple[str, dict[str, Any]]],
               level: int = logging.INFO) -> None:
    """Log many structured events at once: the same JSON records as :func:`log_event`,
    written in one go. For every :class:`JsonFormatter` stream handler (the run's
    events.jsonl, a JSON stderr) the records are formatted here and written with one
    write per handler; the records of one batch share their ``ts`` (the moment of the
    batch). Any other handler gets ordinary log records, one per event."""
    evs = list(events)
    _emit(logger, level, len(evs),
          lambda: [(e, tuple(f), tuple(f.values())) for e, f in evs],
          lambda: evs)


def log_rows(logger: logging.Logger, event: str, keys: Sequence[str],
             rows: Iterable[Sequence[Any]], level: int = logging.INFO) -> None:
    """:func:`log_events` for many records of one ``event`` whose fields are ``keys``,
    one tuple of values per record (no dict per record): a paper step's decisions."""
    keys, rows = tuple(keys), list(rows)
    _emit(logger, level, len(rows), lambda: [(event, keys, r) for r in rows],
          lambda: [(event, dict(zip(keys, r, strict=True))) for r in rows])


def _emit(logger: logging.Logger, level: int, n: int,
          as_rows: Callable[[], list[tuple[str, tuple, Sequence[Any]]]],
          as_dicts: Callable[[], list[tuple[str, dict[str, Any]]]]) -> None:
    if not n or not logger.isEnabledFor(level):
        return
    handlers = _handlers(logger, level)
    if handlers is None:  # filters decide per record: the ordinary path
        for event, fields in as_dicts():
            logger.log(level, event, extra={"fields": fields})
        return
    if not handlers:
        return
    rid = get_run_id()  # a handler kept for another run (RunFilter) gets nothing of this one
    handlers = [h for h in handlers if not rid or all(f.run_id == rid for f in h.filters
                                                      if isinstance(f, RunFilter))]
    fast = [h for h in handlers if type(h.formatter) is JsonFormatter
            and isinstance(h, logging.StreamHandler)
            and all(isinstance(f, RunFilter) for f in h.filters)
            and getattr(h, "stream", None) is not None]
    slow = [h for h in handlers if h not in fast]
    if fast:
        head = {"ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                "level": logging.getLevelName(level), "logger": logger.name,
                "run_id": get_run_id()}
        rest = (head["level"], head["logger"], head["run_id"])
        if _HEAD_TEXT[0] != rest:  # the part after "ts", made once per logger/level/run
            _HEAD_TEXT[:] = [rest, "".join(f",{_QUOTE(k)}:{_value_json(head[k])}"
                                           for k in ("level", "logger", "run_id"))
                             + ',"event":']
        prefix = '{"ts":' + _QUOTE(head["ts"]) + _HEAD_TEXT[1]
        lines = []
        quote, frepr, irepr = _QUOTE, float.__repr__, int.__repr__
        for event, keys, values in as_rows():
            if type(event) is str and all(type(k) is str and k not in _HEAD for k in keys):
                parts = [prefix, quote(event)]
                # _value_json inlined (this loop runs per field of every decision)
                for k, v in zip(_key_prefixes(keys), values, strict=True):
                    t = type(v)
                    if t is str:
                        parts.append(k + quote(v))
                    elif t is float:
                        parts.append(k + (frepr(v) if v - v == 0.0 else quote(str(v))))
                    elif v is None:
                        parts.append(k + "null")
                    elif t is int:
                        parts.append(k + irepr(v))
                    else:
                        parts.append(k + _ENCODER.encode(_jsonable(v)))
                parts.append("}\n")
                lines.append("".join(parts))
            else:  # a field named like a head key, or not a str: as JsonFormatter does it
                fields = _jsonable_fields(dict(zip(keys, values, strict=True)))
                lines.append(_ENCODER.encode({**head, "event": event, **fields}) + "\n")
        text = "".join(lines)
        for h in fast:
            h.acquire()
            try:
                h.stream.write(text)
                h.flush()
            except Exception:  # as logging does: report it, never raise into the caller
                h.handleError(logger.makeRecord(logger.name, level, "(batch)", 0,
                                                "log_events", (), None))
            finally:
                h.release()
    if slow:
        for event, fields in as_dicts():
            rec = logger.makeRecord(logger.name, level, "(batch)", 0, event, (), None,
                                    extra={"fields": fields})
            for h in slow:
                h.handle(rec)


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
