"""A sweep's points: a grid (cartesian product) or a list of override dicts, each point
checked and split into what :func:`research_lib.paper.session.run_session` takes.

A point is a flat mapping of dotted keys: ``risk.<limit>`` goes to ``risk={...}``,
``signal.<key>`` and ``session.<key>`` to ``settings={...}`` (both validated as the config
files are, :mod:`research_lib.config_overrides`); plain keys ``model``, ``flag``,
``symbols``, ``start``, ``end`` and ``fast`` replace the sweep's own for that point. Every
point is checked before anything runs: a bad key or value is an error naming it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from ..config import parse_symbols
from ..config_overrides import check_risk_overrides, check_settings_overrides
from ..errors import ConfigError

PLAIN_KEYS = ("model", "flag", "symbols", "start", "end", "fast")
SECTIONS = ("risk", "signal", "session")
# owned by the sweep: each point's run folder is OUT/runs, its source the sweep's
REFUSED = {"session.run_dir": "each point's run folder is OUT/runs (choose --out)",
           "session.source": "the data source is the sweep's (pass --source / source=)"}


def _scalar(text: str, key: str) -> Any:
    """``"0.1"`` -> 0.1, ``"true"`` -> True, ``"baseline:sma_cross"`` stays text (YAML's
    plain scalars, read with ``safe_load``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict | list) or value is None:
        raise ConfigError(f"--grid {key}: value {text!r} is not a single number, word or "
                          "flag; give comma-separated scalars such as 0.05,0.1")
    return value


def parse_grid_args(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["risk.max_position_pct=0.1,0.15", ...]`` (the CLI's ``--grid``) as
    ``{"risk.max_position_pct": [0.1, 0.15], ...}``, in the order given."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = str(item).partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid {item!r} must be KEY=V1,V2,... such as "
                              "risk.max_position_pct=0.1,0.15")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; put all its values in one "
                              f"--grid {key}=V1,V2")
        if key == "symbols":  # a list per point: separate the lists with ';'
            grid[key] = [v.strip() for v in values.split(";") if v.strip()]
        else:
            grid[key] = [_scalar(v.strip(), key) for v in values.split(",") if v.strip()]
    return grid


def expand(grid: Mapping[str, Iterable[Any]] | None = None,
           points: Sequence[Mapping[str, Any]] | None = None,
           check: Callable[[Mapping[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """The points of a sweep: the cartesian product of ``grid`` (the first key varies
    slowest), or ``points`` as given; exactly one of the two. ``check(point)`` (default
    :func:`split_point`, a replay's keys) raises on a bad point."""
    if (grid is None) == (points is None):
        raise ConfigError("sweep needs exactly one of grid={KEY: [V1, V2]} or "
                          "points=[{KEY: V}, ...]")
    if grid is not None:
        if not isinstance(grid, Mapping) or not grid:
            raise ConfigError(f"grid= must be a non-empty mapping KEY -> list of values, "
                              f"got {grid!r}")
        keys = list(grid)
        values = []
        for k in keys:
            v = grid[k]
            vals = [v] if isinstance(v, str) or not isinstance(v, Iterable) else list(v)
            if not vals:
                raise ConfigError(f"grid[{k!r}] has no values; give at least one")
            values.append(vals)
        out = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    else:
        if isinstance(points, Mapping | str) or not isinstance(points, Sequence) or not points:
            raise ConfigError(f"points= must be a non-empty list of override dicts, got "
                              f"{points!r}")
        out = []
        for i, p in enumerate(points):
            if not isinstance(p, Mapping):
                raise ConfigError(f"points[{i}] must be a dict of overrides, got {p!r}")
            out.append(dict(p))
    for p in out:
        (check or split_point)(p)  # every point checked before anything runs
    return out


def split_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """One point as ``run_session`` keywords: ``risk=``, ``settings=`` and the plain keys;
    a :class:`ConfigError` naming the key otherwise."""
    risk: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    plain: dict[str, Any] = {}
    for key, value in point.items():
        if not isinstance(key, str):
            raise ConfigError(f"sweep key {key!r} must be a string such as "
                              "'risk.max_position_pct'")
        if key in REFUSED:
            raise ConfigError(f"sweep key {key} cannot vary: {REFUSED[key]}")
        section, dot, name = key.partition(".")
        if not dot:
            if key not in PLAIN_KEYS:
                raise ConfigError(f"sweep key {key!r} is unknown; use risk.<limit>, "
                                  f"signal.<key>, session.<key> or one of "
                                  f"{', '.join(PLAIN_KEYS)}")
            if key == "fast" and not isinstance(value, bool):
                raise ConfigError(f"sweep key fast: value {value!r} must be true or false "
                                  "(the fast replay or the step-by-step one)")
            plain[key] = parse_symbols(value) if key == "symbols" else value
            continue
        if section not in SECTIONS or not name:
            raise ConfigError(f"sweep key {key!r} is unknown; its section must be one of "
                              f"{', '.join(SECTIONS)} (e.g. signal.target_weight)")
        if section == "risk":
            risk[name] = value
        else:
            settings.setdefault(section, {})[name] = value
    out = dict(plain)
    if risk:
        out["risk"] = check_risk_overrides(risk)
    if settings:
        out["settings"] = check_settings_overrides(settings)
    return out


def point_label(point: Mapping[str, Any]) -> str:
    """A stable text of a point (JSON, keys in order): what identifies it in the table."""
    return json.dumps({k: point[k] for k in point}, default=str)
