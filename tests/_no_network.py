"""pytest plugin: no test reaches the network.

Loaded from ``tests/conftest.py`` (``pytest_plugins``). For the whole session it refuses

* ``socket.socket.connect`` / ``connect_ex`` to anything but loopback or a unix socket
  (Jupyter kernels in the notebook tests talk over 127.0.0.1),
* ``socket.getaddrinfo`` for any host name but localhost / this machine (no DNS leaks),
* ``curl_cffi``'s ``Curl.perform`` (yfinance's HTTP client, which opens its sockets in C
  and so bypasses the ``socket`` module).

Libraries often swallow exceptions (``yf.download`` catches every per-ticker error), so a
refusal is also recorded, and the test that caused it fails afterwards even if the
exception never reached it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to reach a non-loopback address."""


VIOLATIONS: list[str] = []
_saved: list[tuple[Any, str, Any]] = []


def _deny(what: str) -> None:
    VIOLATIONS.append(what)
    raise NetworkBlockedError(f"network access is blocked in tests: {what}")


def _local_host(host: Any) -> bool:
    if host is None or host in ("", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).split("%", 1)[0]  # drop an IPv6 scope id
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in (socket.gethostname(), "localhost.localdomain")


def _local_address(sock: socket.socket, address: Any) -> bool:
    if getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX:
        return True
    if isinstance(address, (str, bytes)):
        return True
    return _local_host(address[0])


def _patch(owner: Any, name: str, new: Any) -> None:
    _saved.append((owner, name, getattr(owner, name)))
    setattr(owner, name, new)


def install() -> None:
    if _saved:
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if not _local_address(self, address):
            _deny(f"socket connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _local_address(self, address):
            _deny(f"socket connect_ex to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _local_host(host):
            _deny(f"DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    _patch(socket.socket, "connect", connect)
    _patch(socket.socket, "connect_ex", connect_ex)
    _patch(socket, "getaddrinfo", getaddrinfo)
    try:
        from curl_cffi.curl import Curl
    except ImportError:  # yfinance falls back to requests, which the socket guard covers
        return

    def perform(self: Any, *args: Any, **kwargs: Any) -> Any:
        _deny("curl_cffi request (yfinance's HTTP client)")

    _patch(Curl, "perform", perform)


def uninstall() -> None:
    while _saved:
        owner, name, old = _saved.pop()
        setattr(owner, name, old)


def pytest_configure(config: pytest.Config) -> None:
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


def _check(phase: str, item: pytest.Item) -> None:
    if VIOLATIONS:
        found = list(VIOLATIONS)
        VIOLATIONS.clear()
        pytest.fail(f"{item.nodeid} tried to reach the network during {phase}: {found}",
                    pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    VIOLATIONS.clear()
    result = yield
    _check("setup", item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    _check("the test", item)
    return result
