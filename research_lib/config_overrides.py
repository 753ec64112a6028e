"""Risk limits given in code over ``config/risk.yaml``'s: ``run_session(risk={...})``.

The overrides are validated key by key by the very checks the file goes through
(:func:`research_lib.config.build_section`: unknown keys, types, ranges), so an error names
``risk.<key>``, the value and what is allowed. They apply on top of the file at the start
and at every hot reload of it: the file's other keys still reload (and a reload still only
tightens), the overridden ones keep the argument's value. The run's ledger records the
limits it applied, so a resume without the same overrides is refused, naming each value.
Nothing in the process or on disk changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import RiskLimits, build_section, load_risk, load_yaml
from .errors import ConfigError

WHERE = "run_session(risk=...)"


def check_risk_overrides(overrides: Any) -> dict[str, Any]:
    """The overrides as a plain dict, each key and value checked as ``risk.yaml`` is; a
    :class:`ConfigError` naming the key (``risk.max_position_pct must be in (0, 1], got
    1.5``) otherwise."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{WHERE} must be a mapping such as {{'max_position_pct': 0.1}}, "
                          f"got {overrides!r}")
    return _checked_section(overrides, RiskLimits, "risk", WHERE, "risk limit")


def _checked_section(values: Mapping[Any, Any], cls: type, section: str, where: str,
                     what: str = "key") -> dict[str, Any]:
    """One section's overrides as a plain dict, keys and values checked by the section's
    dataclass as its YAML file is (:func:`research_lib.config.build_section`)."""
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} must be a string naming a {what} of "
                              f"{section}")
    plain = dict(values)
    try:
        build_section(cls, plain, section)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return plain


def risk_loader(overrides: Mapping[str, Any] | None) -> Callable[..., RiskLimits]:
    """A loader for ``risk.yaml`` (:class:`research_lib.config.ConfigWatcher`) that puts
    ``overrides`` over the file's ``risk`` section; ``load_risk`` itself without them."""
    if not overrides:
        return load_risk
    extra = check_risk_overrides(overrides)

    def load(path: str | Path | None = None,
             data: Mapping[str, Any] | None = None) -> RiskLimits:
        raw = dict(load_yaml(path) if data is None else data) if path or data else {}
        section = raw.get("risk")
        if section is not None and not isinstance(section, Mapping):
            return load_risk(path, data=raw)  # the file's own error, as without overrides
        return load_risk(path, data={**raw, "risk": {**(section or {}), **extra}})

    return load


# ----------------------------------------------------- signal.* and session.* (issue 15)
SETTINGS_WHERE = "run_session(settings=...)"
# the sections of session.yaml a run may override in code, and their dataclasses
_SETTINGS_SECTIONS = ("signal", "session")


def check_settings_overrides(overrides: Any) -> dict[str, dict[str, Any]]:
    """``{"signal": {...}, "session": {...}}`` as plain dicts, each key and value checked as
    ``session.yaml``'s are; a :class:`ConfigError` naming ``signal.<key>`` (or
    ``session.<key>``), the value and what is allowed otherwise. The cross-check of the two
    thresholds runs when the overrides meet the file (:func:`settings_loader`)."""
    from .config import SessionConfig, SignalConfig

    classes = {"signal": SignalConfig, "session": SessionConfig}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{SETTINGS_WHERE} must be a mapping such as "
                          f"{{'signal': {{'target_weight': 0.05}}}}, got {overrides!r}")
    out: dict[str, dict[str, Any]] = {}
    for section, values in overrides.items():
        if section not in classes:
            raise ConfigError(f"{SETTINGS_WHERE}: section {section!r} cannot be overridden; "
                              f"allowed: {', '.join(_SETTINGS_SECTIONS)} (risk limits go "
                              "through risk=...)")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{SETTINGS_WHERE}: {section} must be a mapping such as "
                              f"{{'{section}': {{KEY: VALUE}}}}, got {values!r}")
        plain = _checked_section(values, classes[section], section, SETTINGS_WHERE)
        if plain:
            out[section] = plain
    return out


def settings_loader(overrides: Mapping[str, Any] | None) -> Callable[..., Any]:
    """A loader for ``session.yaml`` that puts ``overrides`` (``{"signal": {...},
    "session": {...}}``) over the file's sections, at the start and at every hot reload;
    ``load_session`` itself without them. Nothing on disk or in the process changes."""
    from .config import load_session

    extra = check_settings_overrides(overrides) if overrides else {}
    if not extra:
        return load_session

    def load(path: str | Path | None = None, data: Mapping[str, Any] | None = None) -> Any:
        raw = dict(load_yaml(path) if data is None else data) if path or data else {}
        merged = dict(raw)
        for section, values in extra.items():
            have = raw.get(section)
            if have is not None and not isinstance(have, Mapping):
                return load_session(path, data=raw)  # the file's own error, as without
            merged[section] = {**(have or {}), **values}
        try:
            return load_session(path, data=merged)
        except ConfigError as exc:  # e.g. short_threshold above long_threshold
            raise ConfigError(f"{exc} (with {SETTINGS_WHERE} {extra})") from None

    return load
