"""Exception hierarchy: one root, each subclass says when it is raised.

Messages say what, where and how to fix it, e.g.
``risk.max_position_pct must be in (0, 1], got 1.5``.
"""

from __future__ import annotations


class ResearchLibError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(ResearchLibError, ValueError):
    """Raised when a config file or value is invalid (names the key, the value and the fix)."""


class DataError(ResearchLibError):
    """Raised when market data cannot be loaded or is unusable."""


class EmptyDataError(DataError):
    """Raised when a source returns no rows for a symbol (never a silent empty frame)."""

    def __init__(self, symbol: str, source: str, detail: str = "") -> None:
        self.symbol = symbol
        self.source = source
        msg = f"{source}: no data for symbol {symbol!r}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class UnknownSymbolError(DataError, KeyError):
    """Raised when a source does not have a symbol; the message lists what it has."""

    def __init__(self, symbol: str, source: str, available: list[str]) -> None:
        self.symbol = symbol
        self.source = source
        self.available = list(available)
        super().__init__(
            f"{source}: unknown symbol {symbol!r}; available: {', '.join(self.available)}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class RateLimitError(DataError):
    """Raised when the remote data provider keeps rate-limiting after all retries."""


class ModelError(ResearchLibError):
    """Raised when a model file, card or input fails its checks."""


class RegistryError(ConfigError):
    """Raised when config/assets.yaml or the model registry is invalid."""


class LedgerError(ResearchLibError):
    """Raised when the ledger is corrupt, unreadable or cannot be written."""


class TradingHaltedError(ResearchLibError):
    """Raised when an operation needs an active account but trading is halted."""


class NotebookError(ResearchLibError):
    """Raised when a report notebook is unknown or fails to execute."""


class LedgerBusyError(LedgerError):
    """Raised when another process holds a write lock on a run's ledger: another session
    (or a tool) writes this run, so this one refuses; the account is not latched HALTED."""


class FeedError(DataError):
    """Raised when a live feed brings no data at all for too long (no network, a dead
    source): the session stops with the reason instead of polling on silently."""


class VenueError(ResearchLibError):
    """Raised when an external venue (a broker's paper trading API) cannot be used: no keys,
    a refused account, or requests that still fail after bounded retries. Nothing of the
    step in progress is recorded (it is re-decided, with the same client order ids, by a
    resume, which reconciles with the venue first)."""
