"""The venue claim: an external venue's account reconciles with the ledger of the project's
latest run on it (when a venue is configured).

**Which venue** (one rule): ``ready.live_venue`` in ``config/ready.yaml`` when it is set,
else ``venue.broker`` of the project's ``config/session.yaml`` when that is not ``paper``;
neither: SKIP (paper only). Its settings (URL, timeouts, retries, tolerances) are always
``session.yaml``'s ``venue`` section, the ones a session trades with; the keys come from the
environment like a session's (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``) and are never in
a verdict.

**What it does**: opens the venue, takes one snapshot, and finds the latest run (meta
``created_at``) under the project's run folder (``session.run_dir`` by the one path rule)
whose ledger meta ``venue`` names this broker and URL; its ledger is only read (a copy in
scratch is opened, so not even SQLite's ``-shm`` file appears in the run folder). The ledger's
view (cash and positions folded from the fills, the open orders) is rebuilt by
:func:`research_lib.ledger_read.ledger_view` and reconciled by
:func:`research_lib.venues.link.reconcile_broker`, the same in-flight rule a session uses at
its start. No run on the venue yet: the account must be flat with no open order (what a new
run requires). A venue that cannot be reached, or refuses the keys, is a FAIL: a configured
venue that does not answer is not ready.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, LedgerError, VenueError
from .context import Context
from .verdict import Verdict, failed, passed, skipped


def _configured(ctx: Context) -> tuple[Any, str] | None:
    """The venue's settings and where its name came from, or ``None`` (paper only)."""
    from ..venues.config import VenueConfig, load_venue

    path = ctx.config_dir / "session.yaml"
    cfg = load_venue(path) if path.is_file() else VenueConfig()
    if ctx.settings.live_venue:
        return cfg.with_broker(ctx.settings.live_venue), "config/ready.yaml ready.live_venue"
    if cfg.broker != "paper":
        return cfg, "config/session.yaml venue.broker"
    return None


def _meta(ledger: Path) -> dict[str, Any]:
    """A ledger's meta, read without writing beside it: ``immutable`` keeps SQLite from
    making ``-wal``/``-shm`` files in a user's run folder (meta is written whole when the
    ledger is created, before it is linked into place)."""
    con = sqlite3.connect(f"{ledger.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
    finally:
        con.close()


def _venue_runs(root: Path, broker: str, url: str) -> tuple[list[tuple[str, Path, dict]],
                                                               list[str]]:
    """The runs under ``root`` whose ledger meta ``venue`` is ``broker`` at ``url``
    (``(created_at, ledger, meta)``, oldest first), and the ledgers that could not be read."""
    from ..runs import ledgers

    found, unreadable = [], []
    for p in ledgers(root):
        try:
            meta = _meta(p)
        except (LedgerError, sqlite3.Error, ValueError) as exc:
            unreadable.append(f"{p.parent.name}: {str(exc)[:200]}")
            continue
        v = meta.get("venue") or {}
        if v.get("broker") == broker and str(v.get("url", "")).rstrip("/") == url:
            found.append((str(meta.get("created_at") or ""), p, meta))
    found.sort(key=lambda r: (r[0], str(r[1])))
    return found, unreadable


def _copy_run(ledger: Path, folder: Path) -> Path:
    """The ledger, its write-ahead log and its halt marker copied into scratch (a reader's
    ``-shm`` would otherwise be made in the user's run folder)."""
    from ..run_files import halt_marker_path

    out = folder / ledger.name
    for src, dst in ((ledger, out), (ledger.with_name(ledger.name + "-wal"),
                                     out.with_name(out.name + "-wal")),
                     (halt_marker_path(ledger), halt_marker_path(out))):
        if src.is_file():
            shutil.copyfile(src, dst)
    return out


def _scrub(value: Any) -> Any:
    """Never a key in a verdict, whatever an error message carried."""
    from ..venues.config import KEY_ENV, SECRET_ENV

    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        for name in (KEY_ENV, SECRET_ENV):
            key = (os.environ.get(name) or "").strip()
            if len(key) >= 4:
                value = value.replace(key, "***")
    return value


def _g(x: float) -> str:
    return f"{x:.10g}"


def venue_reconciles(ctx: Context) -> Verdict:
    try:
        chosen = _configured(ctx)
    except ConfigError as exc:
        return failed(f"the venue settings cannot be read: {exc}")
    if chosen is None:
        return skipped("no venue configured (config/ready.yaml ready.live_venue is empty and "
                       "config/session.yaml venue.broker is paper): this install trades at "
                       "the internal paper broker, nothing to reconcile", live_venue=None)
    cfg, why = chosen
    try:
        out = _reconcile(ctx, cfg, why)
    except ConfigError as exc:  # session.yaml's session section
        out = failed(f"the project's config cannot be read: {exc}")
    return replace(out, detail=_scrub(out.detail), evidence=_scrub(out.evidence))


def _reconcile(ctx: Context, cfg: Any, why: str) -> Verdict:
    from ..ledger_read import ledger_view
    from ..runs import runs_root
    from ..venues.reconcile import DIFFERENCE
    from ..venues.setup import make_venue

    name = cfg.broker
    evidence: dict[str, Any] = {"venue": name, "configured_by": why}
    try:
        probe = make_venue(cfg, [], [])  # no request yet: the URL the venue is reached at
    except (ConfigError, VenueError) as exc:
        return failed(f"the {name} venue cannot be opened: {exc}", **evidence)
    evidence["url"] = probe.url
    root = runs_root(ctx.session_settings.session.run_dir)
    runs, unreadable = _venue_runs(root, name, probe.url)
    evidence.update(runs_folder=str(root), runs_on_venue=len(runs))
    if unreadable:
        evidence["unreadable_runs"] = unreadable
    latest = runs[-1] if runs else None
    try:
        if latest is None:
            snap = probe.snapshot()
            return _flat(cfg, name, probe.url, root, snap, evidence)
        _, path, meta = latest
        run_id = str(meta.get("run_id") or path.parent.name)
        evidence.update(run_id=run_id, ledger=str(path))
        try:
            st, broker = ledger_view(_copy_run(path, ctx.scratch("venue-ledger")))
        except LedgerError as exc:
            return failed(f"run {run_id}, the latest on {name}, cannot be read: {exc}",
                          **evidence)
        symbols = list(meta.get("symbols") or [])
        venue = make_venue(cfg, symbols, list(meta.get("crypto_symbols") or []))
        from ..venues.link import reconcile_broker, undecided_ids

        extra = undecided_ids(run_id, st.last_step + 1, symbols)
        snap, _flight, found = reconcile_broker(venue, cfg, broker, extra)
    except (ConfigError, VenueError) as exc:
        return failed(f"the {name} venue at {probe.url} did not answer: {exc}", **evidence)
    acct = snap.account
    recorded = (meta.get("venue") or {}).get("account_id")
    evidence.update(account_id=acct.account_id, account_status=acct.status)
    if recorded != acct.account_id:
        return failed(f"the keys open {name} account {acct.account_id}, but run {run_id} (the "
                      f"latest on {probe.url}) trades account {recorded}: export that "
                      "account's keys, or start a new run on this account", **evidence)
    ledger_pos = dict(broker.book.held())
    evidence.update(
        positions={s: {"ledger": ledger_pos.get(s, 0.0), "venue": snap.positions.get(s, 0.0)}
                   for s in sorted(set(ledger_pos) | set(snap.positions))},
        open_orders={"ledger": sorted(broker.open_orders),
                     "venue": sorted(o.client_order_id for o in snap.open_orders)},
        cash={"ledger": broker.cash, "venue": acct.cash}, last_step=st.last_step,
        qty_tolerance=cfg.qty_tolerance, cash_tolerance=cfg.cash_tolerance,
        explained=[f.reason for f in found if f.verdict != DIFFERENCE],
        differences=[f.reason for f in found if f.verdict == DIFFERENCE])
    diffs = evidence["differences"]
    if diffs:
        return failed(f"{len(diffs)} difference{'s' if len(diffs) > 1 else ''} between {name} "
                      f"account {acct.account_id} and the ledger of run {run_id}: "
                      f"{'; '.join(diffs)}", **evidence)
    if acct.blocked:
        return failed(f"{name} account {acct.account_id} reconciles with run {run_id} but "
                      f"refuses orders ({acct.blocked}); check it at the venue", **evidence)
    n_exp = len(evidence["explained"])
    return passed(
        f"{name} account {acct.account_id} agrees with the ledger of run {run_id} (step "
        f"{st.last_step}): {len(evidence['positions'])} positions, "
        f"{len(snap.open_orders)} open orders at the venue and {len(broker.open_orders)} in "
        f"the ledger, cash {acct.cash:.2f} vs {broker.cash:.2f}"
        + (f"; {n_exp} explained by in-flight fills: {'; '.join(evidence['explained'])}"
           if n_exp else ""), **evidence)


def _flat(cfg: Any, name: str, url: str, root: Path, snap: Any,
          evidence: dict[str, Any]) -> Verdict:
    """No run on the venue yet: the account must be what a new run requires."""
    acct = snap.account
    held = {k: v for k, v in sorted(snap.positions.items()) if abs(v) > cfg.qty_tolerance}
    evidence.update(account_id=acct.account_id, account_status=acct.status, cash=acct.cash,
                    positions=held,
                    open_orders=[{"client_order_id": o.client_order_id, "symbol": o.symbol,
                                  "qty": o.qty, "filled_qty": o.filled_qty, "status": o.status}
                                 for o in snap.open_orders])
    what = []
    if held:
        what.append("positions " + ", ".join(f"{k} {_g(v)}" for k, v in held.items()))
    if snap.open_orders:
        what.append("open orders " + ", ".join(
            f"{o.symbol} {_g(o.qty - o.filled_qty)} ({o.client_order_id}, {o.status})"
            for o in snap.open_orders))
    if what:
        return failed(f"no run under {root} has traded {name} at {url} yet, and account "
                      f"{acct.account_id} already has {' and '.join(what)}: a new run needs the "
                      "account flat with no open order; close them at the venue (or reset the "
                      "paper account), or keep the run that made them in the run folder",
                      **evidence)
    if acct.blocked:
        return failed(f"{name} account {acct.account_id} refuses orders ({acct.blocked}); "
                      "check it at the venue", **evidence)
    return passed(f"no run under {root} has traded {name} at {url} yet; account "
                  f"{acct.account_id} is flat with no open order (what a new run requires), "
                  f"cash {acct.cash:.2f}", **evidence)
