"""A model per bar interval in ``config/assets.yaml``.

``universal_model`` and each class's ``model`` name either one model (a string: the model
for daily bars, ``1d``, as it always meant) or one model per interval::

    universal_model: {1d: universal_v1, 1m: universal_1m_v1}
    classes:
      equities:
        model: {1d: equities_v1, 1m: equities_1m_v1}

A session decides with the models named for its ``--interval`` (``60m`` finds ``1h``);
a class with none for it falls back to the universal model's, and a session whose
universal slot has none for it does not start (the router says which interval is missing
and how to train and name one). Each named model's card must record that interval (the
router's card check, :mod:`research_lib.models.card_interval`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

# the intervals a model may be named for (the package's bar intervals), in seconds
MODEL_INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
PLAIN = "1d"  # what the plain string form means
TRAINABLE = ("universal", "equities", "crypto", "options")  # train --asset-class
_RE = re.compile(r"^(\d*)(m|min|h|d)$")
_UNIT = {"m": 60, "min": 60, "h": 3600, "d": 86400}

IntervalMap = tuple[tuple[str, str], ...]  # ((interval, model name), ...) shortest first


def interval_key(interval: str | None) -> str | None:
    """The key of :data:`MODEL_INTERVALS` as long as ``interval`` (``60m`` -> ``1h``,
    ``1min`` -> ``1m``), or None when no model interval is that long."""
    m = _RE.match(str(interval or "").strip().lower())
    if not m:
        return None
    n = int(m.group(1) or 1)
    secs = n * _UNIT[m.group(2)]
    for key, s in MODEL_INTERVALS.items():
        if s == secs:
            return key
    return None


def parse_model_map(value: Any, field: str, models: Mapping[str, Any], source: str,
                    ) -> IntervalMap:
    """``value`` (a model name, or a mapping interval -> model name) as an interval map;
    every error names ``field``, the value and the fix."""
    known = sorted(models)
    example = f"{field}: {{1d: NAME, 1m: NAME_1m}}"
    if isinstance(value, str):
        if value not in models and field == "universal_model":  # its wording since 1d only
            raise ConfigError(f"{source}: universal_model must name an entry under models, "
                              f"got {value!r}; models: {known}")
        if value not in models:
            raise ConfigError(f"{source}: {field} {value!r} is not under models; known: {known}")
        return ((PLAIN, value),)
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"{source}: {field} must name a model under models, or map bar intervals to "
            f"models ({example}); got {value!r}")
    seen: dict[str, str] = {}
    for raw_key, name in value.items():
        key = interval_key(raw_key) if isinstance(raw_key, str) else None
        if key is None:
            raise ConfigError(
                f"{source}: {field} key {raw_key!r} is not a bar interval; use one of "
                f"{', '.join(MODEL_INTERVALS)} ({example})")
        if key in seen:
            raise ConfigError(
                f"{source}: {field} names interval {key} twice ({seen[key]!r} and "
                f"{raw_key!r}); keep one")
        seen[key] = str(raw_key)
        if not isinstance(name, str) or name not in models:
            raise ConfigError(
                f"{source}: {field}.{raw_key} {name!r} is not under models; known: {known}")
    return tuple(sorted(((interval_key(k), n) for k, n in value.items()),  # type: ignore[misc]
                        key=lambda kv: MODEL_INTERVALS[kv[0]]))


def model_for(intervals: IntervalMap, interval: str | None) -> str | None:
    """The model ``intervals`` names for ``interval`` (None: none named for it)."""
    key = interval_key(interval)
    for k, name in intervals:
        if k == key:
            return name
    return None


def shown(intervals: IntervalMap) -> str:
    """``{1d: universal_v1, 1m: universal_1m_v1}`` as the config spells it."""
    return "{" + ", ".join(f"{k}: {n}" for k, n in intervals) + "}"


def missing_model(interval: str, slot: str, intervals: IntervalMap) -> str:
    """Why no model serves ``slot`` (``universal_model`` or ``classes.NAME.model``) on
    ``interval`` bars, and the fix."""
    key = interval_key(interval) or interval
    cls = slot.split(".")[1] if slot.startswith("classes.") else "universal"
    cls = cls if cls in TRAINABLE else "universal"  # `train` knows these classes
    return (f"NO_MODEL_FOR_INTERVAL: config/assets.yaml {slot} names no model for {key} "
            f"bars (it names {shown(intervals) if intervals else 'none'}); train one with "
            f"`research-lib train --asset-class {cls} --interval {key} --symbols ... "
            f"--out models/NAME.onnx`, pin it under models and name it in {slot} "
            f"({key}: NAME), or run the session with --interval "
            f"{' / '.join(k for k, _ in intervals) or '1d'}")


def compact_intervals(assets: dict[str, Any]) -> dict[str, Any]:
    """A plain (JSON) assets config as a run records it, in place: the view's interval is
    the run's own (recorded apart), and an interval map that names only a 1d model is left
    out (the plain string form, as configs written before interval maps read)."""
    assets.pop("interval", None)
    uni = assets.get("universal_intervals")
    if uni is not None and _trivial(uni, assets.get("universal_model")):
        assets.pop("universal_intervals")
    for c in (assets.get("classes") or []):
        if isinstance(c, dict) and _trivial(c.get("intervals"), c.get("model")):
            c.pop("intervals", None)
    return assets


def _trivial(intervals: Any, model: Any) -> bool:
    return not intervals or (len(intervals) == 1 and list(intervals[0]) == [PLAIN, model])
