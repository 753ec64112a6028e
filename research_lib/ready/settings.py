"""``config/ready.yaml``: what the readiness gate checks against (validated when loaded).

A missing file is the defaults below; a present one is read with ``yaml.safe_load`` and
every key is checked: an unknown key, a wrong type or a value out of range is a
:class:`~research_lib.errors.ConfigError` naming the file, the key, the value and what is
allowed (``config/ready.yaml: ready.e2d_p99_budget_ms must be in (0, 60000], got -1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import build_section, config_dir, load_yaml, parse_symbols
from ..errors import ConfigError

DEFAULT_SYMBOLS = ("SPY", "QQQ", "BTC-USD", "ETH-USD")


def _range(lo: float, hi: float) -> Any:
    def check(v: float) -> str | None:
        return None if lo < v <= hi else f"must be in ({lo:g}, {hi:g}]"

    return check


def _duration(v: str) -> str | None:
    import pandas as pd

    try:
        td = pd.Timedelta(v)
    except (ValueError, TypeError, OverflowError):
        return "must be a duration such as 5D, 36h or 90min"
    return None if td > pd.Timedelta(0) else "must be a positive duration such as 5D"


def _ticker(v: str) -> str | None:
    return None if v.strip() and v == v.strip() else "must be a ticker such as SPY"


def _venue(v: str) -> str | None:
    from ..venues.config import BROKERS

    venues = [b for b in BROKERS if b != "paper"]
    return None if v in ("", *venues) else (
        f"must be empty (paper only) or a venue research_lib has an adapter for: "
        f"{', '.join(venues)}")


def _f(default: Any, check: Any = None) -> Any:
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class ReadySettings:
    """The ``ready`` section of ``config/ready.yaml``."""

    # the symbols the data, feature, router and session claims use (--symbols overrides)
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    # a replay step's end-to-decision latency, 99th percentile, at most this (ms)
    e2d_p99_budget_ms: float = _f(150.0, _range(0.0, 60_000.0))
    # a cached series is fresh when its last bar is at most this old
    cache_max_age: str = _f("5D", _duration)
    # the symbol the live-source probe asks for, and how long it waits for an answer (s)
    live_probe_symbol: str = _f("SPY", _ticker)
    live_timeout_s: float = _f(10.0, _range(0.0, 120.0))
    # a venue to reconcile with ("": the one session.yaml's venue.broker names, if any;
    # its settings are always session.yaml's venue section)
    live_venue: str = _f("", _venue)


def parse_ready(data: Mapping[str, Any], source: str = "ready.yaml") -> ReadySettings:
    unknown = sorted(set(data) - {"ready"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: ready")
    section = data.get("ready") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: ready must be a mapping of settings, got "
                          f"{type(section).__name__}")
    section = dict(section)
    raw_symbols = section.pop("symbols", None)
    try:
        settings = build_section(ReadySettings, section, "ready")
        if raw_symbols is not None:
            if not isinstance(raw_symbols, list | str):
                raise ConfigError(f"ready.symbols must be a list of tickers, got {raw_symbols!r}")
            try:
                symbols = parse_symbols(raw_symbols)
            except ConfigError as exc:
                raise ConfigError(f"ready.{exc}") from None
            settings = ReadySettings(**{**settings.__dict__, "symbols": tuple(symbols)})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return settings


def load_ready(path: str | Path | None = None) -> ReadySettings:
    """``config/ready.yaml`` of the project (or ``path``); the defaults when it is absent."""
    p = Path(path) if path is not None else config_dir() / "ready.yaml"
    if path is None and not p.exists():
        return ReadySettings()
    return parse_ready(load_yaml(p), source=str(p))
