"""The readiness checklist: the shipped ``research_lib/checklists/paper_ready.yaml`` with a
project's ``config/checklists/*.yaml`` merged on top, validated when loaded.

Each claim is a :class:`Claim` (name, statement, required, check id, params). A project file
has the shipped file's shape; its entries are merged by name in file-name order: a known
name changes only the keys it gives (``params`` key by key), a new name adds a claim. Every
problem (an unknown key, an unknown check id, a parameter the check does not take, a
non-boolean ``required``) is a :class:`~research_lib.errors.ConfigError` naming the file,
the claim and the fix.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..config import config_dir, load_yaml
from ..errors import ConfigError
from ..paths import safe_id

SHIPPED = "checklists/paper_ready.yaml"

# check id -> "module:function"; each function takes (ctx, **params) and returns a Verdict
CHECKS: dict[str, str] = {
    "data.sample_loads": "research_lib.ready.checks_data:sample_loads",
    "data.cache_fresh": "research_lib.ready.checks_data:cache_fresh",
    "data.live_source": "research_lib.ready.checks_data:live_source",
    "data.sanity": "research_lib.ready.checks_data:sanity",
    "features.batch_equals_incremental":
        "research_lib.ready.checks_features:batch_equals_incremental",
    "features.causal": "research_lib.ready.checks_features:causal",
    "models.pins": "research_lib.ready.checks_models:pins",
    "models.parity": "research_lib.ready.checks_models:parity_now",
    "models.out_of_sample": "research_lib.ready.checks_models:out_of_sample",
    "router.flag_0": "research_lib.ready.checks_router:flag_0",
    "router.flag_1": "research_lib.ready.checks_router:flag_1",
    "router.fallback": "research_lib.ready.checks_router:fallback",
    "risk.limits": "research_lib.ready.checks_risk:limits",
    "kill.env_flag": "research_lib.ready.checks_kill:env_flag",
    "kill.kill_file": "research_lib.ready.checks_kill:kill_file",
    "crash.kill_resume": "research_lib.ready.checks_crash:kill_resume",
    "logs.json_run_id": "research_lib.ready.checks_runtime:logs_json",
    "latency.e2d_p99": "research_lib.ready.checks_runtime:e2d_p99",
    "runtime.headless": "research_lib.ready.checks_runtime:headless",
    "venue.reconciles": "research_lib.ready.checks_venue:venue_reconciles",
}

_ENTRY_KEYS = {"name", "statement", "required", "check", "params"}
_TOP_KEYS = {"version", "claims"}


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    required: bool
    check: str
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the file(s) that defined it

    def function(self) -> Callable[..., Any]:
        return check_function(self.check)


def check_function(check_id: str) -> Callable[..., Any]:
    mod, _, fn = CHECKS[check_id].partition(":")
    return getattr(importlib.import_module(mod), fn)


def _read(text: str, source: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc}); only plain YAML is accepted") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping with `claims:`, got "
                          f"{type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed: claims, version")
    if data.get("version", 1) != 1:
        raise ConfigError(f"{source}: version must be 1, got {data.get('version')!r}")
    claims = data.get("claims") or []
    if not isinstance(claims, list):
        raise ConfigError(f"{source}: claims must be a list of mappings (- name: ...)")
    for i, entry in enumerate(claims):
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: claims[{i}] must be a mapping with name, statement, "
                              "required, check, params")
        bad = sorted(set(entry) - _ENTRY_KEYS)
        if bad:
            raise ConfigError(f"{source}: claims[{i}] has unknown key {bad[0]!r}; allowed: "
                              f"{', '.join(sorted(_ENTRY_KEYS))}")
        safe_id(entry.get("name"), f"{source}: claims[{i}].name")
    return claims


def _merge(claims: dict[str, dict[str, Any]], entries: list[dict[str, Any]], source: str) -> None:
    seen: set[str] = set()
    for entry in entries:
        name = entry["name"]
        if name in seen:
            raise ConfigError(f"{source}: claim {name!r} is listed twice; list it once")
        seen.add(name)
        if name in claims:
            old = claims[name]
            params = entry.get("params")
            if params is not None and not isinstance(params, dict):
                raise ConfigError(f"{source}: claim {name}: params must be a mapping, got "
                                  f"{params!r}")
            merged = {**old, **{k: v for k, v in entry.items() if k != "params"}}
            merged["params"] = {**(old.get("params") or {}), **(params or {})}
            merged["source"] = f"{old['source']} + {source}"
            claims[name] = merged
        else:
            claims[name] = {**entry, "source": source}


def _build(raw: dict[str, Any]) -> Claim:
    name, where = raw["name"], f"{raw['source']}: claim {raw['name']}"
    statement = raw.get("statement")
    if not isinstance(statement, str) or not statement.strip():
        raise ConfigError(f"{where}: statement must say the claim in words, got {statement!r}")
    required = raw.get("required")
    if not isinstance(required, bool):
        raise ConfigError(f"{where}: required must be true or false, got {required!r}")
    check = raw.get("check")
    if check not in CHECKS:
        raise ConfigError(f"{where}: check {check!r} is not known; known: "
                          f"{', '.join(sorted(CHECKS))}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a mapping, got {params!r}")
    sig = inspect.signature(check_function(check))
    allowed = [p for p in sig.parameters if p != "ctx"]
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise ConfigError(f"{where}: check {check} takes no parameter {bad[0]!r}; it takes: "
                          f"{', '.join(allowed) or 'none'}")
    return Claim(name, statement.strip(), required, check, dict(params), raw["source"])


def shipped_text() -> str:
    return resources.files("research_lib").joinpath(SHIPPED).read_text(encoding="utf-8")


def project_files(folder: Path | None = None) -> list[Path]:
    """``config/checklists/*.yaml`` (and ``*.yml``) of the project, in file-name order."""
    base = folder if folder is not None else config_dir() / "checklists"
    if not base.is_dir():
        return []
    return sorted([*base.glob("*.yaml"), *base.glob("*.yml")], key=lambda p: p.name)


def load_checklist(extra: list[Path] | None = None) -> list[Claim]:
    """The shipped claims, then each project file merged on top (``extra``: the files to
    merge instead of the project's ``config/checklists/*.yaml``)."""
    claims: dict[str, dict[str, Any]] = {}
    _merge(claims, _read(shipped_text(), f"research_lib/{SHIPPED}"), f"research_lib/{SHIPPED}")
    for path in project_files() if extra is None else extra:
        load_yaml(path)  # a fifo, a device, non-UTF-8: refused with the file named
        _merge(claims, _read(path.read_text(encoding="utf-8"), str(path)), str(path))
    return [_build(raw) for raw in claims.values()]
