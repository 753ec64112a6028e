"""Where orders go: the ``venue`` section of ``config/session.yaml`` (fixed for a run).

.. code-block:: yaml

    venue:
      broker: paper          # paper (the internal paper broker, default) | alpaca
      alpaca_url: https://paper-api.alpaca.markets
      timeout_seconds: 10    # one HTTP request
      max_attempts: 5        # per venue call: 429, 5xx, timeouts and dropped connections
      backoff_seconds: 0.5   # first wait, doubled each retry (a Retry-After header counts)
      max_backoff_seconds: 8 # no single wait longer than this
      cash_tolerance: 1.0    # reconciliation: |venue cash - ledger cash| above this differs
      qty_tolerance: 1.0e-6  # reconciliation: |venue qty - ledger qty| above this differs
      crypto_fee_bps: 25     # Alpaca's crypto fee for your volume tier (market orders are
                             # taker: 25 at tier 1): Alpaca takes it from what a crypto fill
                             # credits (a buy's coins, a sell's dollars), never in the order

``research-lib paper --broker alpaca`` overrides ``broker`` for a new run; a resume keeps
the broker its ledger recorded. The Alpaca keys are never in a file: they come from the
environment (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``). Only Alpaca's paper endpoint or
a loopback address (a local fake venue, tests) is accepted as ``alpaca_url``: this package
never sends an order to a live-money endpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import build_section, config_dir, load_yaml
from ..errors import ConfigError

BROKERS = ("paper", "alpaca")
ALPACA_PAPER_URL = "https://paper-api.alpaca.markets"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"


def _one_of(choices: tuple[str, ...]):
    def check(v: str) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"
    return check


def _between(lo: float, hi: float, lo_open: bool = False):
    def check(v: float) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    return check


def _paper_url(v: str) -> str | None:
    """Alpaca's paper endpoint, or http(s) on a loopback address (a local fake venue)."""
    parts = urlsplit(v)
    if v.rstrip("/") == ALPACA_PAPER_URL:
        return None
    if parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS:
        return None
    return (f"must be Alpaca's paper endpoint {ALPACA_PAPER_URL} (or a loopback address for a "
            "local fake venue); this package never trades a live-money account")


def _f(default: Any, check: Any = None, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class VenueConfig:
    """``session.yaml`` section ``venue`` (read once at start)."""

    broker: str = _f("paper", _one_of(BROKERS), "where orders go")
    alpaca_url: str = _f(ALPACA_PAPER_URL, _paper_url, "Alpaca's paper trading API")
    timeout_seconds: float = _f(10.0, _between(0, 120, lo_open=True), "one request")
    max_attempts: int = _f(5, _between(1, 20), "tries per venue call before failing closed")
    backoff_seconds: float = _f(0.5, _between(0, 60), "first wait between tries")
    max_backoff_seconds: float = _f(8.0, _between(0, 300), "longest wait between tries")
    cash_tolerance: float = _f(1.0, _between(0, 1e6), "cash difference still in agreement")
    qty_tolerance: float = _f(1e-6, _between(0, 1), "quantity difference still in agreement")
    crypto_fee_bps: float = _f(25.0, _between(0, 1000),
                               "Alpaca's crypto fee, taken from what a fill credits")

    def with_broker(self, broker: str | None) -> VenueConfig:
        if broker is None:
            return self
        problem = _one_of(BROKERS)(broker)
        if problem:
            raise ConfigError(f"--broker {broker!r} {problem}")
        return dataclasses.replace(self, broker=broker)


def load_venue(path: str | Path | None = None, data: Any = None) -> VenueConfig:
    """The ``venue`` section of ``session.yaml`` (absent: the internal paper broker)."""
    p = Path(path) if path else config_dir() / "session.yaml"
    data = load_yaml(p) if data is None else data
    try:
        return build_section(VenueConfig, (data or {}).get("venue"), "venue")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def venue_reload_problem(old: VenueConfig, new: VenueConfig) -> str | None:
    """Every ``venue`` key is read once at start: a reload that changes one is refused."""
    bad = [f"venue.{f.name}: {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
           for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]
    if not bad:
        return None
    return (f"changes {'a key' if len(bad) == 1 else 'keys'} read only at start "
            f"({'; '.join(bad)}); restart the session to apply {'it' if len(bad) == 1 else 'them'}")
