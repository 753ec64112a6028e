"""Runtime flags and the kill switch, read fresh every time they are asked.

* ``FLAG_ASSET_SPECIFIC_MODELS``: ``0`` (default) universal model for every symbol;
  ``1`` each symbol's class model (falling back to universal, saying why); ``shadow`` the
  universal model decides while the class model predicts beside it.
* ``FLAG_TRADING_HALTED=1`` and the ``kill.flag`` file: no order passes and no open order
  fills while either is set. Anything at the kill path counts (a file, a folder, a fifo, a
  symlink, dangling or looping); a path that cannot be checked (an unsearchable folder, a
  file where a folder should be) counts as set too: the switch fails closed.
* SIGINT/SIGTERM: :class:`KillSwitch` records a graceful stop request.

Nothing is cached: flipping a flag takes effect at the next decision, with no restart.
"""

from __future__ import annotations

import os
import re
import signal
import stat
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


def routing_mode(value: object, where: str = "flag") -> RoutingMode:
    """A routing flag given in code (``run_session(flag=...)``): ``0``, ``1`` or
    ``"shadow"`` (``"0"``/``"1"`` too) as the router's mode; anything else, a bool
    included, is a :class:`ConfigError` naming ``where``, the value and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{where} must be 0, 1 or 'shadow', got {value!r} "
                          f"({type(value).__name__})")
    v = str(value).strip().lower()
    if v in ("0", "1", "shadow"):
        return v  # type: ignore[return-value]
    raise ConfigError(f"{where} must be 0, 1 or 'shadow', got {value!r}")


def trading_halted_value(env: Mapping[str, str] | None = None) -> str | None:
    """The raw ``FLAG_TRADING_HALTED`` value when it halts trading, else ``None``."""
    raw = (env if env is not None else os.environ).get("FLAG_TRADING_HALTED", "0")
    return None if raw.strip().lower() in _FALSE else raw


def _shown(raw: str) -> str:
    """``1`` -> ``1``; anything that is not a plain token is quoted (``' 1'``, ``'a b'``)."""
    return raw if re.fullmatch(r"[\w.+-]+", raw) else repr(raw)


def _kind(path: str, st: os.stat_result) -> str:
    """What is at the kill path: ``""`` for a regular file, else `` (folder)`` etc."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        try:
            os.stat(path)
        except FileNotFoundError:
            return f" (dangling symlink to {target!r})"
        except OSError as exc:  # ELOOP and friends
            return f" (symlink to {target!r} that cannot be followed: {exc.strerror})"
        return f" (symlink to {target!r})"
    if stat.S_ISDIR(mode):
        return " (folder)"
    if stat.S_ISFIFO(mode):
        return " (fifo)"
    if stat.S_ISSOCK(mode):
        return " (socket)"
    return " (special file)"


def check_kill_setting(kill_file: object, where: str = "session.kill_file") -> str:
    """The kill-file setting as a usable path string, or a :class:`ConfigError` naming the
    value and the fix (empty, blank, not a string, NUL byte)."""
    if not isinstance(kill_file, str | os.PathLike):
        raise ConfigError(f"{where} must be a path string, got {kill_file!r}; the kill switch "
                          "cannot be turned off (e.g. kill_file: kill.flag)")
    text = os.fspath(kill_file)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where} must name a file, got {text!r}; the kill switch cannot be "
                          "turned off (e.g. kill_file: kill.flag)")
    if "\x00" in text:
        raise ConfigError(f"{where} must not contain a NUL byte, got {text!r}")
    if "$" in text:  # never expanded: a literal folder named "$HOME" nobody would touch
        raise ConfigError(f"{where} {text!r} names an environment variable, which is not "
                          "expanded; write the path out (e.g. /srv/trading/kill.flag)")
    return text


def kill_file_path(kill_file: object, where: str = "session.kill_file") -> Path:
    """The absolute path a kill-file setting watches: ``~`` is the user's home folder (it
    was a literal folder named ``~`` that no one touched), a relative path is taken from
    the project home, or the working directory when there is none (the one rule:
    :func:`research_lib.project.resolve_path`)."""
    from .project import resolve_path

    return Path(os.path.abspath(resolve_path(check_kill_setting(kill_file, where))))


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
        # None (code only, e.g. tests) has no kill file; "" or a blank setting is an error.
        # Made absolute once: the reason names the very path that is checked.
        self.kill_file = None if kill_file is None else kill_file_path(kill_file)
        self._env = env
        self.stop_requested = False
        self.force = False
        self.signals_received = 0
        self._previous: dict[int, object] = {}

    def check(self) -> HaltStatus:
        raw = trading_halted_value(self._env)
        if raw is not None:
            return HaltStatus(True, f"FLAG_TRADING_HALTED={_shown(raw)}")
        if self.kill_file is not None:
            why = self._kill_file_reason()
            if why is not None:
                return HaltStatus(True, why)
        return HaltStatus(False, None)

    def _kill_file_reason(self) -> str | None:
        """Why the kill path halts trading: anything there (``os.lstat``: a dangling or
        looping symlink counts), or a path that cannot be checked (fail closed)."""
        path = os.fspath(self.kill_file)  # type: ignore[arg-type]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None  # nothing there (a missing folder too: `mkdir -p` and touch sets it)
        except OSError as exc:  # no search permission, a file as a parent folder, ...
            return f"KILL_FILE: {path} cannot be checked: {exc.strerror or exc}"
        return f"KILL_FILE: {path}{_kind(path, st)}"

    def ensure_usable(self) -> None:
        """At start: a :class:`ConfigError` when the kill path cannot be checked (a folder on
        the way is unsearchable, or is a file), so a session never starts with a switch that
        cannot be read or set."""
        if self.kill_file is None:
            return
        why = self._kill_file_reason()
        if why is not None and " cannot be checked: " in why:
            raise ConfigError(
                f"session.kill_file {os.fspath(self.kill_file)!r} is unusable: "
                f"{why.split(' cannot be checked: ', 1)[1]}; make its folder searchable by "
                "this user or set session.kill_file to a path in such a folder")

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
