"""What every check is given: the project (home, config, models), the ready settings, the
symbols, and scratch folders; plus the helpers that run a paper session in scratch.

Everything a check writes goes under one temporary folder (``tempfile``) that the runner
removes at the end: a copy of the project's config (its kill file and run folder moved into
scratch), run folders, copies of models. A user's ``runs/``, config and models are only
read.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ..config import (
    DEFAULT_ASSETS,
    AssetsConfig,
    RiskLimits,
    SessionSettings,
    load_assets,
    load_risk,
    load_session,
)
from ..errors import ConfigError
from ..telemetry import LOGGER_NAME, JsonFormatter, get_run_id, set_run_id
from .settings import ReadySettings

CONFIG_FILES = ("risk.yaml", "session.yaml", "assets.yaml")


@dataclass
class Context:
    home: Path  # the project: config/ and models/
    settings: ReadySettings
    symbols: list[str]
    scratch_root: Path
    offline: bool = False
    _made: dict[str, int] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    # -- the project's config, read once per ready run ----------------------------
    @cached_property
    def assets(self) -> AssetsConfig:
        p = self.config_dir / "assets.yaml"
        return load_assets(p) if p.is_file() else DEFAULT_ASSETS

    @cached_property
    def session_settings(self) -> SessionSettings:
        p = self.config_dir / "session.yaml"
        return load_session(p) if p.is_file() else SessionSettings()

    @cached_property
    def limits(self) -> RiskLimits:
        p = self.config_dir / "risk.yaml"
        return load_risk(p) if p.is_file() else RiskLimits()

    @cached_property
    def sample_symbols(self) -> list[str]:
        """The configured symbols the shipped sample serves (scratch sessions replay these),
        one per underlying; when none is, SPY and BTC-USD."""
        from ..data.sources import SampleSource
        from ..risk import underlying_key

        src, out, seen = SampleSource(), [], set()
        for s in self.symbols:
            try:
                served, _ = src.resolve(s)
            except KeyError:
                continue
            key = underlying_key(s, served)
            if key not in seen:
                seen.add(key)
                out.append(s)
        return out or ["SPY", "BTC-USD"]

    # -- scratch ------------------------------------------------------------------
    def scratch(self, name: str) -> Path:
        """A new, empty folder under the run's temporary folder."""
        n = self._made.get(name, 0)
        self._made[name] = n + 1
        p = self.scratch_root / (name if n == 0 else f"{name}-{n}")
        p.mkdir(parents=True)
        return p

    def scratch_config(self, folder: Path, **session: Any) -> Path:
        """A copy of the project's risk/session/assets yaml in ``folder/config``, with
        ``session.kill_file`` and ``session.run_dir`` moved into ``folder`` (and any other
        ``session`` keys given): a scratch session never reads the user's kill file or
        writes the user's runs."""
        cfg = folder / "config"
        cfg.mkdir(parents=True, exist_ok=True)
        for name in CONFIG_FILES:
            src = self.config_dir / name
            if src.is_file():
                shutil.copyfile(src, cfg / name)
        data: dict[str, Any] = {}
        sess = cfg / "session.yaml"
        if sess.is_file():
            data = yaml.safe_load(sess.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config_dir / 'session.yaml'}: top level must be a mapping")
        section = dict(data.get("session") or {})
        section.update({"kill_file": str(folder / "kill.flag"), "run_dir": str(folder / "runs"),
                        **session})
        data["session"] = section
        sess.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return cfg


def session_window(symbols: list[str], bars: int) -> tuple[str, str]:
    """``(start, end)`` of a replay over about the last ``bars`` daily bars the sample holds
    for every symbol (ending at the earliest last date among them)."""
    import pandas as pd

    from ..data.sources import SampleSource, sample_meta

    src = SampleSource()
    end = min(pd.Timestamp(sample_meta()[src.resolve(s)[0]]["last"]) for s in symbols)
    start = end - pd.Timedelta(days=int(bars * 1.5) + 1)  # weekends for XNYS symbols
    return start.date().isoformat(), end.date().isoformat()


@contextlib.contextmanager
def run_id_kept() -> Iterator[None]:
    """A scratch session sets the process's run id (telemetry); the ready run keeps its own."""
    saved = get_run_id()
    try:
        yield
    finally:
        set_run_id(saved)


@contextlib.contextmanager
def captured_logs(level: int = logging.WARNING) -> Iterator[io.StringIO]:
    """The package's log records go, as the JSON lines every command writes, to a buffer
    instead of stderr while this is open (a check's scratch sessions do not talk over the
    report); the handlers, level and propagation are given back after."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(JsonFormatter())
    logger.handlers = [h]
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield buf
    finally:
        h.close()
        logger.handlers, _, logger.propagate = saved
        logger.setLevel(saved[1])


@contextlib.contextmanager
def env_set(**values: str) -> Iterator[None]:
    """Set environment variables for the duration (given back after, or removed)."""
    import os

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def scratch_session(ctx: Context, folder: Path, *, run_id: str, bars: int,
                    symbols: list[str] | None = None, model: str | None = None,
                    kill_switch: Any = None, log_file: bool = False,
                    max_steps: int | None = None) -> Any:
    """A replay of the shipped sample over about the last ``bars`` bars of ``symbols``
    (default: the configured ones the sample serves), with a copy of the project's config
    in ``folder``, its runs in ``folder/runs``; returns the
    :class:`~research_lib.paper.spec.SessionResult`."""
    from ..flags import KillSwitch
    from ..paper.session import run_session

    syms = symbols or ctx.sample_symbols
    cfg = folder / "config" if (folder / "config").is_dir() else ctx.scratch_config(folder)
    start, end = session_window(syms, bars)
    ks = kill_switch if kill_switch is not None else KillSwitch(folder / "kill.flag", env={})
    with run_id_kept():
        return run_session(symbols=syms, source="sample", interval="1d", start=start, end=end,
                           model=model,
                           run_dir=folder / "runs", config_dir=cfg, run_id=run_id,
                           kill_switch=ks, log_file=log_file, max_steps=max_steps)


def ledger_counts(ledger: Path) -> dict[str, Any]:
    """Orders by their events, and the denial reasons, from a finished run's ledger."""
    import sqlite3

    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        events = dict(con.execute("SELECT event, COUNT(*) FROM order_events GROUP BY event"))
        denials = [r[0] for r in con.execute(
            "SELECT reason FROM order_events WHERE event = 'OrderDenied' ORDER BY seq")]
        submitted = [r[0] for r in con.execute(
            "SELECT o.symbol FROM orders o JOIN order_events e ON e.client_order_id = "
            "o.client_order_id WHERE e.event = 'OrderSubmitted' ORDER BY e.seq")]
    finally:
        con.close()
    return {"submitted": events.get("OrderSubmitted", 0), "filled": events.get("OrderFilled", 0),
            "denied": events.get("OrderDenied", 0), "denials": denials,
            "submitted_symbols": submitted}
