"""``paper --resume RUN`` continues exactly the run that was started, or refuses.

At the start of a run the ledger records its inputs (meta ``inputs``): every config value
(risk, session, signal, the whole assets file), the sha256 of each model file the run can
decide with, the source's labels and proxy notes, and the kill file's absolute path; the spec (symbols, source, window,
interval, mode, dry run, model) is meta ``spec``. Each committed step also records a
rolling sha256 over every bar consumed up to it (table ``bar_digests``); a config reload
that is applied records the new inputs from that step on (table ``config_history``).

A resume:

* refuses the options that would change the run (``--symbols``, ``--source`` as a
  string, ``--start``, ``--end``, ``--interval``, ``--mode``, ``--run-id``, ``--dry-run``,
  ``--model``): the run keeps what it recorded;
* loads and validates the config folder's files as at a start, and refuses when any value
  differs from what the run last applied (``key: recorded -> now``);
* refuses when a model file's sha256 changed;
* re-reads the history and refuses when a bar the run already consumed differs (naming
  the first step and its timestamp), or the data no longer reaches the last committed
  step;
* refuses a ledger written before these inputs were recorded (nothing to check against).

Every refusal is a :class:`~research_lib.errors.ConfigError` (``research-lib paper`` exits
2) that names each difference and how to start a new run; the ledger is left as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .ledger_columns import bulk_rows
from .model_intervals import compact_intervals
from .paper.rows import ConfigHistoryRow

if TYPE_CHECKING:
    from .ledger import StepRecord
    from .paper.account import SessionLike as Session
    from .paper.feeds import ReplayFeed

INPUTS_VERSION = 1

# SessionSpec field -> (CLI flag, meta "spec" key it would change)
RESUME_FIXED: tuple[tuple[str, str, str], ...] = (
    ("symbols", "--symbols", "symbols"),
    ("source", "--source", "source"),
    ("start", "--start", "start"),
    ("end", "--end", "end"),
    ("interval", "--interval", "interval"),
    ("mode", "--mode", "mode"),
    ("run_id", "--run-id", "run_id"),
    ("dry_run", "--dry-run", "dry_run"),
    ("model", "--model", "model"),
)


def _given(field: str, value: Any) -> bool:
    if field == "source":  # a Source object is passed again on resume (it cannot be stored)
        return isinstance(value, str)
    if field == "dry_run":
        return bool(value)
    return value is not None and value != () and value != []


def refuse_fixed_options(spec: Any, meta: Mapping[str, Any], run_id: str) -> None:
    """Options that cannot differ from the recorded run are not accepted with a resume."""
    run = dict(meta.get("spec") or {})
    run["symbols"] = ",".join(meta.get("symbols") or [])
    run["run_id"] = meta.get("run_id")
    bad = []
    for field, flag, key in RESUME_FIXED:
        value = getattr(spec, field, None)
        if field == "run_id" and value == meta.get("run_id"):
            continue  # naming the run it resumes changes nothing
        if _given(field, value):
            shown = ",".join(value) if field == "symbols" and not isinstance(value, str) else value
            given = flag if field == "dry_run" else f"{flag} {shown!r}"
            bad.append(f"{given} cannot be used with --resume: the run keeps its recorded "
                       f"{key.replace('_', ' ')} {run.get(key)!r}")
    if bad:
        raise ConfigError(
            f"--resume {run_id}: " + "; ".join(bad) + ". Drop these options to continue the "
            "run as it was started, or start a new run with them (research-lib paper "
            "--symbols ... with a new --run-id)")


# --------------------------------------------------------------------- inputs
def _plain(value: Any) -> Any:
    """JSON-normal form (tuples as lists, mappings as dicts with str keys)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def config_inputs(s: Session) -> dict[str, Any]:
    """Every value of the three config files, as the session applies them."""
    assets = _plain(s.assets)
    assets.pop("source_path", None)  # where, not what
    compact_intervals(assets)  # a config of daily models only reads as it always did
    return {"risk": _plain(s.limits), "session": _plain(s.settings.session),
            "signal": _plain(s.settings.signal), "gate": _plain(s.settings.gate),
            "assets": assets}


def model_digests(s: Session) -> dict[str, str | None] | None:
    """sha256 of each registry model file the run can decide with (a forced model: its
    file; the router: each class model of the run's symbols and the universal fallback).
    A rule baseline has none; a stand-in model (``SessionSpec.router``, tests) is not a
    file: ``None``, not compared; an ONNX file given to ``run_session`` (its
    ``file_digests``) is."""
    name = s.model_name
    if name and name.startswith("baseline:"):
        return {}
    if s.wiring.router is not None:  # a notebook's ONNX file names its own digest
        return getattr(s.wiring.router, "file_digests", None)
    from .config import models_dir
    from .models.registry import model_path

    a = s.model_assets
    names = {a.universal_model} | {a.asset_class(c).model for c in set(s.classes.values())}
    names.discard(None)  # none named for the run's interval: the universal model serves
    out: dict[str, str | None] = {}
    for n in sorted(names):
        try:
            out[n] = hashlib.sha256(model_path(a, n, models_dir()).read_bytes()).hexdigest()
        except Exception:  # missing or refused: the router says why; recorded as None
            out[n] = None
    return out


def kill_path(s: Session) -> str | None:
    """The kill file the session watches, as an absolute path: a relative ``kill_file``
    is taken from the project home (else the working directory), so a resume under
    another home (or, with none, from another folder) would watch another file."""
    from .flags import kill_file_path

    ks = s.wiring.kill_switch
    if ks is not None:
        f = getattr(ks, "kill_file", None)
        return os.path.abspath(f) if f else None
    return str(kill_file_path(s.settings.session.kill_file))


def run_inputs(s: Session) -> dict[str, Any]:
    """What meta ``inputs`` (and each ``config_history`` row) records."""
    return {"version": INPUTS_VERSION, "config": config_inputs(s), "models": model_digests(s),
            "labels": dict(s.labels), "proxies": dict(s.proxies), "kill_path": kill_path(s)}


def record_reload(s: Session, rec: StepRecord) -> None:
    """After a hot reload was applied in this step: the run's inputs from this step on."""
    if any(r[2] == "config" and r[4] == "RELOADED" for r in rec.rows.get("state_changes", ())):
        rec.add("config_history", ConfigHistoryRow(rec.step, json.dumps(run_inputs(s), sort_keys=True)))


# ----------------------------------------------------------------------- bars
def _digest(prev: bytes, ts: str, rows: Any, *ohlcv: Any) -> bytes:
    """sha256 over the previous digest and one step's bars: its timestamp, which symbols
    have a bar, and their open, high, low, close and volume."""
    h = hashlib.sha256(prev)
    h.update(ts.encode())
    h.update(np.asarray(rows, dtype=np.int64).tobytes())
    for a in ohlcv:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.digest()


def _feed_digest(prev: bytes, feed: ReplayFeed, t: int) -> bytes:
    """:func:`_digest` of clock step ``t`` of a replay feed: the same bytes as the
    ``StepBars`` of ``feed.bars_at(t)`` give (what the step code hashes)."""
    rows = np.flatnonzero(feed.has[t])
    return _digest(prev, feed.ts[t], rows, feed.O[t, rows], feed.H[t, rows], feed.L[t, rows],
                   feed.C[t, rows], feed.V[t, rows])


def _warmup_digest(feed: ReplayFeed) -> bytes:
    d = b""
    for t in range(min(feed.n_warmup, len(feed))):
        d = _feed_digest(d, feed, t)
    return d


def start_digest(s: Session) -> bytes:
    """The rolling bar digest before the session's first new step: a new replay folds its
    warm-up bars in; a resume continues from its last committed step's digest; live
    warm-up bars are not re-fed on resume, so a live run starts from nothing."""
    st = s.state
    if st is not None and st.last_step >= 0:
        row = s.ledger.conn.execute("SELECT digest FROM bar_digests WHERE step = ?",
                                    (st.last_step,)).fetchone()
        if row is not None:
            return bytes.fromhex(row[0])
    return _warmup_digest(s.feed) if s.mode == "replay" else b""


def step_digest(s: Session, step: int, bars: Any) -> list[tuple[int, str]]:
    """The ``bar_digests`` row of a step the step code runs on ``bars`` (before the gate)."""
    s._bars_seen = _digest(s._bars_seen, bars.ts, bars.rows, bars.open, bars.high, bars.low,
                           bars.close, bars.volume)
    return [(step, s._bars_seen.hex())]


def feed_digests(s: Session, t0: int, step: int, n: int) -> list[tuple[int, str]]:
    """``bar_digests`` rows of the quiet steps ``step ..`` (clock steps ``t0 ..``) of a
    fast replay: the values the step code would write."""
    out = []
    d = s._bars_seen
    feed = s.feed
    full = feed.has[t0:t0 + n].all(axis=1)
    if full.all():  # every symbol has a bar: the same bytes as _digest, in one update
        every = np.arange(feed.has.shape[1], dtype=np.int64).tobytes()
        ohlcv = np.ascontiguousarray(np.stack(
            [feed.O[t0:t0 + n], feed.H[t0:t0 + n], feed.L[t0:t0 + n], feed.C[t0:t0 + n],
             feed.V[t0:t0 + n]], axis=1), dtype=np.float64)
        sha = hashlib.sha256
        for i, ts in enumerate(feed.ts[t0:t0 + n]):
            d = sha(d + ts.encode() + every + ohlcv[i].tobytes()).digest()
            out.append((step + i, d.hex()))
    else:
        for i in range(n):
            d = _feed_digest(d, feed, t0 + i)
            out.append((step + i, d.hex()))
    s._bars_seen = d
    return out


def check_consumed_bars(s: Session) -> None:
    """A replay resume re-reads history: the bars of every committed step must be the
    ones the run consumed, or the resume is refused naming the first step that differs."""
    st = s.state
    if s.mode != "replay" or st is None or st.last_step < 0:
        return
    n = st.last_step + 1
    feed, w = s.feed, s.feed.n_warmup
    where = f"--resume {s.run_id}"
    stored = dict(s.ledger.conn.execute(
        "SELECT step, digest FROM bar_digests WHERE step < ?", (n,)).fetchall())
    fix = "restore the data the run was started with to continue it, or " + _new_run_hint(
        st.meta)
    d = _warmup_digest(feed)
    for k in range(n):
        if k not in stored:
            raise ConfigError(
                f"{where}: {s.ledger.path} has no bar fingerprint for committed step {k}; "
                "the bars it consumed cannot be checked; refusing to resume; "
                + _new_run_hint(st.meta))
        if w + k >= len(feed):
            raise ConfigError(
                f"{where}: the data now ends before committed step {k} (the run has "
                f"{n} committed steps, the source gives {max(len(feed) - w, 0)}); "
                "the bars the run consumed changed; refusing to resume; " + fix)
        d = _feed_digest(d, feed, w + k)
        if d.hex() != stored[k]:
            rec_ts = s.ledger.conn.execute("SELECT ts FROM steps WHERE step = ?",
                                           (k,)).fetchone()
            what = "or in the warm-up bars before it " if k == 0 else ""
            raise ConfigError(
                f"{where}: the bars differ from the ones the run consumed, first at step {k} "
                f"(recorded at {rec_ts[0] if rec_ts else '?'}, the data now has "
                f"{feed.ts[w + k]}) {what}{_suspects(s, k)}; refusing to resume a run on "
                "other prices; " + fix)


# ---------------------------------------------------------------------- check
def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def diff_inputs(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``key: recorded -> now`` for each value that differs (model checksums unless one
    side ran a stand-in model)."""
    keys = ["config", "labels", "proxies", "kill_path"]
    if recorded.get("models") is not None and now.get("models") is not None:
        keys.append("models")
    a = _flat({k: json.loads(json.dumps(recorded.get(k))) for k in keys})
    b = _flat({k: json.loads(json.dumps(now.get(k))) for k in keys})
    out = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            what = key.removeprefix("config.")
            if key.startswith("models."):
                what = f"model file {key.removeprefix('models.')} sha256"
            elif key == "kill_path":
                what = ("kill switch file (a relative session.kill_file is taken from the "
                        "project home, else the working directory)")
            out.append(f"{what}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return out


def _new_run_hint(meta: Mapping[str, Any]) -> str:
    return (f"start a new run instead (research-lib paper --symbols "
            f"{','.join(meta.get('symbols') or [])} ... with a new --run-id); the ledger is "
            "kept as is")


def check_resume(s: Session) -> None:
    """Refuse a resume whose config or models differ from what the run last applied (the
    bars: :func:`check_consumed_bars`, when the session runs)."""
    st = s.state
    assert st is not None
    meta = st.meta
    n = st.last_step + 1  # committed steps
    where = f"--resume {s.run_id}"
    recorded = meta.get("inputs")
    if not isinstance(recorded, dict) or recorded.get("version") != INPUTS_VERSION:
        raise ConfigError(
            f"{where}: {s.ledger.path} was written by an older research_lib that did not "
            "record the run's inputs (config values, model checksums, a fingerprint of the "
            "bars consumed), so a resume cannot check that it continues the same run; "
            "refusing to resume; " + _new_run_hint(meta))
    row = s.ledger.conn.execute(
        "SELECT inputs FROM config_history WHERE step < ? ORDER BY step DESC LIMIT 1",
        (n,)).fetchone()
    applied = json.loads(row[0]) if row else recorded
    diffs = diff_inputs(applied, run_inputs(s))
    if diffs:
        raise ConfigError(
            f"{where}: the inputs differ from the ones the run last applied "
            f"({'config reloaded at step ' + str(_last_reload(s, n)) if row else 'at its start'}):"
            f" {'; '.join(diffs)}. Restore the config folder {s.config_dir} (and models) to "
            f"the recorded values{_started_in(s, meta)} to continue the run, or "
            + _new_run_hint(meta))


def _started_in(s: Session, meta: Mapping[str, Any]) -> str:
    was = meta.get("config_dir")
    return (f" (the run was started with --config-dir {was})"
            if was and str(was) != str(s.config_dir) else "")


def _last_reload(s: Session, n: int) -> int:
    row = s.ledger.conn.execute("SELECT MAX(step) FROM config_history WHERE step < ?",
                                (n,)).fetchone()
    return int(row[0])


def _suspects(s: Session, k: int) -> str:
    """The symbols whose close at step ``k`` is not the mark the ledger recorded."""
    feed = s.feed
    t = feed.n_warmup + k
    marks = dict(bulk_rows(s.ledger.conn, "positions", ("symbol", "mark"), step=k))
    out = []
    for j, sym in enumerate(s.symbols):
        m = marks.get(sym)
        c = float(feed.C[t, j])
        if feed.has[t, j] and m is not None and np.isfinite(c) and c != m:
            out.append(f"{sym} close {c:g}, recorded mark {m:g}")
    return f"({'; '.join(out)})" if out else "(an open, high, low, volume or timestamp)"
