"""Training windows: what span each model was fitted on, and whether a session replays it.

A model card names its training window (``training_window``: the first and last bar its
final fit saw) and the out-of-sample window after it (``out_of_sample_window``). A session
whose deciding model was trained on bars the session replays is **in sample**: its
decisions there are the model's homework, not evidence. So:

* :func:`default_start` moves a replay's default window (no ``--start``) to begin after the
  deciding models' training ends, when the data reaches past it;
* :func:`sample_section` stamps every session summary ``IN-SAMPLE`` or ``OUT-OF-SAMPLE``
  with the number of decisions taken by a model on a bar inside its own training window
  (the summary key ``sample``; ``paper --json`` prints it, the text summary and the report
  header show it).

A decision counts when a model gave it a probability (warm-up rows, refused bars and
trims without a signal are not the model's decisions); the model that decided is the one
the ledger records for that decision, so a flag flipped mid-run is counted right. Rule
baselines (``baseline:...``) fit nothing and have no window. A model whose window is not
known (a stand-in object that declares none, a card from ``convert-legacy``) is listed
under ``unknown_window`` and counts for neither side.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError

IN_SAMPLE = "IN-SAMPLE"
OUT_OF_SAMPLE = "OUT-OF-SAMPLE"
BASELINE_PREFIX = "baseline:"


def _day(value: Any, field: str) -> str | None:
    """``value`` as ``YYYY-MM-DD`` (None stays None); anything else is a ConfigError."""
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{field} {value!r} is not a date ({exc}); use YYYY-MM-DD") from None
    if pd.isna(t):
        raise ConfigError(f"{field} {value!r} is not a date; use YYYY-MM-DD")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class TrainWindow:
    """The first and last day (UTC, inclusive) of the bars a model's final fit saw;
    ``None`` when not known."""

    start: str | None = None
    end: str | None = None

    @classmethod
    def of(cls, start: Any, end: Any, what: str = "train_window") -> TrainWindow:
        """A window from two dates; refuses an end before the start."""
        s, e = _day(start, f"{what} start"), _day(end, f"{what} end")
        if (s is None) != (e is None):
            raise ConfigError(f"{what} needs both a start and an end, got ({start!r}, {end!r})")
        if s is not None and e is not None and e < s:
            raise ConfigError(f"{what} ends ({e}) before it starts ({s}); pass (start, end)")
        return cls(s, e)

    @property
    def known(self) -> bool:
        return self.start is not None and self.end is not None

    def bounds(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """[first bar's day 00:00 UTC, the day after the last 00:00 UTC)."""
        return (pd.Timestamp(self.start, tz="UTC"),
                pd.Timestamp(self.end, tz="UTC") + pd.Timedelta(days=1))

    def after(self) -> pd.Timestamp:
        """The first moment after the window (the day after its last bar, 00:00 UTC)."""
        return self.bounds()[1]

    def to_dict(self) -> dict[str, str | None]:
        return {"train_start": self.start, "train_end": self.end}


UNKNOWN = TrainWindow()


def window_from_card(card: Mapping[str, Any]) -> TrainWindow:
    """A card's ``training_window`` (or, for cards written before it, ``data.span``: the
    final fit used every labelled row of the span); unknown for a card that has neither
    (``convert-legacy``)."""
    tw = card.get("training_window")
    if isinstance(tw, Mapping) and tw.get("start") and tw.get("end"):
        return TrainWindow.of(tw["start"], tw["end"], f"card {card.get('name')} training_window")
    span = (card.get("data") or {}).get("span") if isinstance(card.get("data"), Mapping) else None
    if isinstance(span, Mapping) and span.get("first") and span.get("last"):
        return TrainWindow.of(span["first"], span["last"], f"card {card.get('name')} data.span")
    return UNKNOWN


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def registry_windows(assets: Any, folder: str | Path) -> dict[str, TrainWindow]:
    """The training window of every model in ``assets`` (``config/assets.yaml``), read from
    the card beside its file. A card whose sha256 is not the pinned one describes another
    file: that model's window is unknown (as is one without a card, or refused)."""
    from .registry import model_path

    out: dict[str, TrainWindow] = {}
    for name, entry in assets.models.items():
        try:
            path = model_path(assets, name, folder)
        except Exception:  # refused: the router says why; no window to report
            out[name] = UNKNOWN
            continue
        card = _read_json(path.with_suffix(".json"))
        if card is None or not entry.sha256 or card.get("sha256") != entry.sha256:
            out[name] = UNKNOWN
            continue
        try:
            out[name] = window_from_card(card)
        except ConfigError:
            out[name] = UNKNOWN
    return out


def deciding_models(assets: Any, classes: Mapping[str, str], model: str | None,
                    mode: str) -> list[str]:
    """The registry models that decide for a session at its start: a forced ``--model``;
    the router's universal model (flag ``0`` or ``shadow``: the shadow model only
    predicts beside it) or each symbol's class model (flag ``1``). A rule baseline: none."""
    if model is not None and model.startswith(BASELINE_PREFIX):
        return []
    if model is not None:
        return [model]
    if mode != "1":
        return [n for n in (assets.universal_model,) if n]
    names = []
    for cls in classes.values():
        try:  # none named for the session's interval: the universal model serves
            names.append(assets.asset_class(cls).model or assets.universal_model)
        except ConfigError:  # unclassified: the router falls back to universal
            names.append(assets.universal_model)
    return sorted(n for n in set(names) if n)


@dataclass(frozen=True)
class SessionWindows:
    """What a session knows of its models' training windows: ``named`` (registry models
    by name), ``default`` (the window of a model object the session was given, for every
    model name its predictions carry) and ``deciding`` (the models deciding at start)."""

    named: Mapping[str, TrainWindow]
    default: TrainWindow
    deciding: tuple[str, ...]

    def get(self, name: str) -> TrainWindow:
        return self.named.get(name, self.default)

    def deciding_windows(self) -> dict[str, TrainWindow]:
        return {n: self.get(n) for n in self.deciding}

    def to_meta(self) -> dict[str, Any]:
        """What the ledger's meta records (``sample_windows``), so that a reader of the run
        (a report on an existing run) stamps it as the session did."""
        return {"models": {n: w.to_dict() for n, w in sorted(self.named.items())},
                "default": self.default.to_dict(), "deciding": list(self.deciding)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SessionWindows:
        def tw(d: Mapping[str, Any]) -> TrainWindow:
            return TrainWindow(d.get("train_start"), d.get("train_end"))

        return cls({n: tw(d) for n, d in (meta.get("models") or {}).items()},
                   tw(meta.get("default") or {}), tuple(meta.get("deciding") or ()))


def declared_window(model: Any) -> TrainWindow:
    """The training window a model object declares (``train_window``: a
    :class:`TrainWindow` or a ``(start, end)`` pair), else unknown."""
    tw = getattr(model, "train_window", None)
    if tw is None:
        return UNKNOWN
    if isinstance(tw, TrainWindow):
        return tw
    try:
        start, end = tw
    except (TypeError, ValueError):
        raise ConfigError(f"{type(model).__name__}.train_window must be (start, end), "
                          f"got {tw!r}") from None
    return TrainWindow.of(start, end, f"{type(model).__name__}.train_window")


def session_windows(assets: Any, classes: Mapping[str, str], model: str | None,
                    flag: str | None, wiring_model: Any, folder: str | Path) -> SessionWindows:
    """The windows a session stamps with. A model object passed in (``Wiring.router``: a
    notebook's model, a test's stand-in) declares its own window or has none; the
    registry's windows are read from the cards in ``folder``. ``flag`` is the run's routing
    flag (None: ``FLAG_ASSET_SPECIFIC_MODELS`` now)."""
    if model is not None and model.startswith(BASELINE_PREFIX):
        return SessionWindows({}, UNKNOWN, ())
    if wiring_model is not None:
        label = getattr(wiring_model, "session_label", None)
        return SessionWindows({}, declared_window(wiring_model), (label,) if label else ())
    if model is None:
        from ..flags import asset_specific_mode

        mode = flag if flag is not None else asset_specific_mode()
    else:
        mode = "0"
    return SessionWindows(registry_windows(assets, folder), UNKNOWN,
                          tuple(deciding_models(assets, classes, model, mode)))


def default_start(end: pd.Timestamp, years_start: pd.Timestamp,
                  windows: Mapping[str, TrainWindow]) -> tuple[pd.Timestamp, str | None]:
    """The start of a replay's default window (no ``--start``): the last ``replay_years``
    (``years_start``), moved to begin after the deciding models' training ends. When the
    data ends before that, the window stays and is said to be in sample. Returns the start
    and a note for the summary (None when nothing was moved)."""
    known = {n: w for n, w in windows.items() if w.known}
    if not known:
        return years_start, None
    last = max(known, key=lambda n: (known[n].end, n))
    after = known[last].after()
    trained = ", ".join(f"{n} to {w.end}" for n, w in sorted(known.items()))
    if years_start >= after:
        return years_start, None
    if after <= end:
        return after, (f"the default window starts on {after.date()}, after the deciding "
                       f"models' training ({trained}); pass --start to replay earlier bars "
                       "(stamped IN-SAMPLE)")
    return years_start, (f"IN-SAMPLE: the data ends on {end.date()}, before the deciding "
                         f"models' training ends ({trained}); no out-of-sample bar to replay")


def _decided(conn: sqlite3.Connection) -> tuple[int, dict[str, dict[str, int]]]:
    """Decisions a model gave a probability: their number, and per model the count per bar
    timestamp; streamed over the ledger part by part (either store), one part in memory."""
    from ..ledger_columns import iter_bulk

    total = 0
    per: dict[str, dict[str, int]] = {}
    for part in iter_bulk(conn, "decisions", ("ts", "model", "probability")):
        keep = ~np.isnan(part["probability"])
        total += int(keep.sum())
        model, ts = part["model"][keep], part["ts"][keep]
        for name in set(model.tolist()):
            if name is None:
                continue
            uniq, cnt = np.unique(ts[model == name].astype(str), return_counts=True)
            counts = per.setdefault(name, {})
            for u, c in zip(uniq.tolist(), cnt.tolist(), strict=True):
                counts[u] = counts.get(u, 0) + c
    return total, per


def sample_section(conn: sqlite3.Connection, windows: Mapping[str, TrainWindow],
                   deciding: Iterable[str] = (), default: TrainWindow = UNKNOWN) -> dict[str, Any]:
    """The summary's ``sample`` key, from the ledger's decisions (``conn``) and the models'
    windows (``default``: for a name not in ``windows``): ``stamp`` (``IN-SAMPLE`` when the session's steps overlap a deciding model's
    training window or any decision fell inside it), ``in_sample_decisions``,
    ``decisions`` (all decisions a model gave a probability), ``models`` (each deciding
    model's ``train_start``/``train_end``) and ``unknown_window`` (models whose window is
    not known)."""
    total, per_model = _decided(conn)
    names = sorted({*deciding, *per_model})
    names = [n for n in names if not n.startswith(BASELINE_PREFIX)]
    first, last = conn.execute("SELECT MIN(ts), MAX(ts) FROM steps").fetchone()
    span = None
    if first is not None:
        span = (pd.Timestamp(first).tz_convert("UTC") if pd.Timestamp(first).tzinfo
                else pd.Timestamp(first, tz="UTC"),
                pd.Timestamp(last).tz_convert("UTC") if pd.Timestamp(last).tzinfo
                else pd.Timestamp(last, tz="UTC"))
    in_sample = 0
    overlap = False
    models: dict[str, dict[str, str | None]] = {}
    unknown: list[str] = []
    for n in names:
        w = windows.get(n, default)
        models[n] = w.to_dict()
        if not w.known:
            unknown.append(n)
            continue
        lo, hi = w.bounds()
        if span is not None and span[0] < hi and span[1] >= lo:
            overlap = True
        mine = per_model.get(n)
        if mine:
            ts = pd.to_datetime(list(mine), utc=True, format="ISO8601")
            counts = pd.Series(list(mine.values()), index=ts)
            in_sample += int(counts[(counts.index >= lo) & (counts.index < hi)].sum())
    return {
        "stamp": IN_SAMPLE if overlap or in_sample else OUT_OF_SAMPLE,
        "in_sample_decisions": in_sample,
        "decisions": int(total),
        "models": models,
        "unknown_window": unknown,
    }


def sample_of_run(path: str | Path) -> dict[str, Any]:
    """The ``sample`` section of a run read back from its ledger (file or run folder): the
    windows the session recorded at its start (meta ``sample_windows``), the decisions it
    committed. A run written before windows were recorded is stamped with the registry's
    cards as they are now (its ``models`` say which)."""
    from ..config import load_assets, models_dir
    from ..ledger import Ledger
    from ..run_files import LEDGER_NAME

    p = Path(path)
    if p.is_dir():
        p = p / LEDGER_NAME
    with Ledger.open(p, readonly=True) as led:
        meta = led.meta()
        recorded = meta.get("sample_windows")
        if isinstance(recorded, Mapping):
            w = SessionWindows.from_meta(recorded)
        else:
            w = SessionWindows(registry_windows(load_assets(), models_dir()), UNKNOWN, ())
        return sample_section(led.conn, w.named, w.deciding, w.default)


def sample_text(sample: Mapping[str, Any] | None) -> str | None:
    """One line for the text summary: ``OUT-OF-SAMPLE: ...`` or ``IN-SAMPLE: 412 of 1004
    decisions ...``; None without a ``sample`` section."""
    if not sample:
        return None
    trained = ", ".join(f"{n} trained {m['train_start']}..{m['train_end']}"
                        for n, m in sample.get("models", {}).items()
                        if m.get("train_start")) or "no trained model decided"
    unknown = sample.get("unknown_window") or []
    tail = (f"; training window unknown for {', '.join(unknown)} (not counted)"
            if unknown else "")
    if sample["stamp"] == IN_SAMPLE:
        return (f"IN-SAMPLE: {sample['in_sample_decisions']} of {sample.get('decisions', '?')} "
                f"decisions on bars the deciding model was trained on ({trained}){tail}")
    return f"OUT-OF-SAMPLE ({trained}){tail}"
