"""Choosing and opening a session's venue (called by :mod:`research_lib.paper.setup`).

The broker is ``--broker`` (``SessionSpec.broker``), else ``venue.broker`` in
``session.yaml``, else the internal paper broker; a resume keeps the one its ledger
recorded (meta ``venue``; none recorded: the internal paper broker) and refuses a
``--broker`` or a ``venue`` section that differs. A run on the internal paper broker
records nothing about venues, so its ledger is what it always was.

An external venue is opened before anything is written: keys from the environment, the
account read (blocked: refused), and for a new run the account must be flat with no open
order (a run owns the account whole: a position it did not make would be a reconciliation
difference at once); the run's initial cash is the venue's cash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError
from ..telemetry import get_logger, log_event
from .config import VenueConfig, load_venue
from .link import VenueLink

log = get_logger("venue")


def make_venue(cfg: VenueConfig, symbols: list[str], crypto: list[str]) -> Any:
    if cfg.broker == "alpaca":
        from .alpaca import AlpacaVenue

        return AlpacaVenue(cfg, symbols, crypto)
    raise ConfigError(f"venue.broker {cfg.broker!r} has no venue client")  # pragma: no cover


def _recorded_diffs(recorded: dict[str, Any], cfg: VenueConfig) -> list[str]:
    now = dataclasses.asdict(cfg)
    was = recorded.get("config") or {}
    return [f"venue.{k}: {was.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}"
            for k in sorted(set(was) | set(now)) if was.get(k, "<absent>") != now.get(k, "<absent>")]


def open_venue(s: Any) -> VenueLink | None:
    """The session's venue link, or ``None`` for the internal paper broker."""
    spec = s.spec
    path = s.config_dir / "session.yaml"
    cfg = load_venue(path)
    asked = getattr(spec, "broker", None)
    if s.state is not None:  # a resume: the broker the run recorded
        recorded = s.state.meta.get("venue")
        broker = recorded["broker"] if recorded else "paper"
        if asked is not None and asked != broker:
            raise ConfigError(f"--broker {asked} cannot be used with --resume {s.run_id}: the "
                              f"run keeps its recorded broker {broker!r}; drop --broker, or "
                              "start a new run")
        if broker == "paper":
            return None
        cfg = cfg.with_broker(broker)
        diffs = _recorded_diffs(recorded, cfg)
        if diffs:
            raise ConfigError(f"--resume {s.run_id}: the venue settings differ from the ones "
                              f"the run was started with: {'; '.join(diffs)}; restore "
                              f"{path} to continue the run, or start a new run")
    else:
        recorded = None
        cfg = cfg.with_broker(asked)
        if cfg.broker == "paper":
            return None
    if s.mode != "live":
        raise ConfigError(
            f"--broker {cfg.broker} sends orders to a venue, so it runs a live session only; "
            "a replay of history fills at the internal paper broker (drop --broker "
            f"{cfg.broker}, or run live: a live source without --start/--end)")
    crypto = [sym for sym, c in zip(s.symbols, s.crypto, strict=True) if c]
    venue = make_venue(cfg, list(s.symbols), crypto)
    snap = venue.snapshot()
    acct = snap.account
    if recorded is not None and recorded.get("account_id") != acct.account_id:
        raise ConfigError(
            f"--resume {s.run_id}: the keys open venue account {acct.account_id}, the run "
            f"trades account {recorded.get('account_id')}; export that account's keys")
    if acct.blocked:
        raise ConfigError(f"{cfg.broker}: the account refuses orders ({acct.blocked}); "
                          "check it at the venue")
    if recorded is None:
        held = {k: v for k, v in snap.positions.items() if abs(v) > cfg.qty_tolerance}
        if held or snap.open_orders:
            what = [f"positions {', '.join(f'{k} {v:g}' for k, v in sorted(held.items()))}"
                    if held else "",
                    f"open orders {', '.join(f'{o.symbol} {o.qty:g} ({o.client_order_id})' for o in snap.open_orders)}"
                    if snap.open_orders else ""]
            raise ConfigError(
                f"{cfg.broker}: the account already has {' and '.join(w for w in what if w)}, "
                "which a new run's ledger does not know; a run must own the venue account "
                "whole (anything else is a reconciliation difference at once): close them at "
                "the venue (or reset the paper account), or resume the run that made them")
    link = VenueLink(venue, cfg, s.run_id, path)
    link.last = snap
    link.meta = {"broker": cfg.broker, "url": venue.url, "account_id": acct.account_id,
                 "config": dataclasses.asdict(cfg)}
    log_event(log, "venue_opened", broker=cfg.broker, url=venue.url,
              account_id=acct.account_id, cash=acct.cash, equity=acct.equity,
              resume=recorded is not None)
    return link
