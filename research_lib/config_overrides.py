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
    for key in overrides:
        if not isinstance(key, str):
            raise ConfigError(f"{WHERE}: key {key!r} must be a string naming a risk limit")
    plain = dict(overrides)
    try:
        build_section(RiskLimits, plain, "risk")
    except ConfigError as exc:
        raise ConfigError(f"{WHERE}: {exc}") from None
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
