"""Runtime flags and the kill switch, read fresh every time they are asked.

* ``FLAG_ASSET_SPECIFIC_MODELS``: ``0`` (default) universal model for every symbol;
  ``1`` each symbol's class model (falling back to universal, saying why); ``shadow`` the
  universal model decides while the class model predicts beside it.
* ``FLAG_TRADING_HALTED=1`` and the ``kill.flag`` file: no order passes while either is set.
* SIGINT/SIGTERM: :class:`KillSwitch` records a graceful stop request.

Nothing is cached: flipping a flag takes effect at the next decision, with no restart.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigError

RoutingMode = Literal["0", "1", "shadow"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def asset_specific_mode(env: Mapping[str, str] | None = None) -> RoutingMode:
    """Read ``FLAG_ASSET_SPECIFIC_MODELS`` now. Unknown values are an error naming the fix."""
    raw = (env if env is not None else os.environ).get("FLAG_ASSET_SPECIFIC_MODELS", "0")
    v = raw.strip().lower()
    if v in _FALSE:
        return "0"
    if v in _TRUE:
        return "1"
    if v == "shadow":
        return "shadow"
    raise ConfigError(
        f"FLAG_ASSET_SPECIFIC_MODELS must be 0, 1 or shadow, got {raw!r}"
    )


def trading_halted_flag(env: Mapping[str, str] | None = None) -> bool:
    """``FLAG_TRADING_HALTED``: anything but an explicit off value counts as halted
    (fail closed: a typo halts rather than trades)."""
    raw = (env if env is not None else os.environ).get("FLAG_TRADING_HALTED", "0")
    return raw.strip().lower() not in _FALSE


@dataclass(frozen=True)
class HaltStatus:
    halted: bool
    reason: str | None  # "FLAG_TRADING_HALTED=1", "KILL_FILE: path", "SHUTDOWN_REQUESTED"


class KillSwitch:
    """Asked immediately before every order: ``ks.check()`` returns why trading must not
    happen now, or ``HaltStatus(False, None)``.

    ``install_signal_handlers()`` turns the first SIGINT/SIGTERM into a graceful stop
    request (the current step finishes and commits); a second one sets ``force`` so the
    loop ends right after the current transaction.
    """

    def __init__(self, kill_file: str | Path | None = "kill.flag",
                 env: Mapping[str, str] | None = None) -> None:
        self.kill_file = Path(kill_file) if kill_file else None
        self._env = env
        self.stop_requested = False
        self.force = False
        self.signals_received = 0
        self._previous: dict[int, object] = {}

    def check(self) -> HaltStatus:
        if trading_halted_flag(self._env):
            return HaltStatus(True, "FLAG_TRADING_HALTED=1")
        if self.kill_file is not None:
            try:
                present = self.kill_file.exists()
            except OSError as exc:  # e.g. its folder cannot be read: fail closed
                return HaltStatus(True, f"KILL_FILE: {self.kill_file} cannot be checked "
                                        f"({exc.strerror or exc}); halted until it can")
            if present:
                return HaltStatus(True, f"KILL_FILE: {self.kill_file}")
        return HaltStatus(False, None)

    # -- graceful shutdown --------------------------------------------------------
    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        self.signals_received += 1
        if self.stop_requested:
            self.force = True
        self.stop_requested = True

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self.request_stop)
            except ValueError:  # not the main thread (e.g. inside some notebook runners)
                pass

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
