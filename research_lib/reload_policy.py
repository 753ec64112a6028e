"""What a running session accepts from a hot reload (``ConfigWatcher(check=...)``).

* ``risk.yaml``: a reload may only **tighten** the limits. A limit that would loosen
  (a larger position, gross, daily-loss or drawdown limit, a wider price band, a smaller
  cash buffer, shorting allowed) refuses the whole file, naming the key, the running value
  and the new one: restart the session to loosen.
* ``session.yaml``: the keys in :data:`RESTART_ONLY` and the whole ``gate`` section are
  read once at start (the kill file, the run folder, the cash, the data source, the bar
  gate's thresholds...); a reload that changes one is refused, never recorded as
  applied: restart the session to change it.

A refused reload keeps the previous config; the session records it as ``REJECTED``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

RESTART_ONLY = frozenset({"initial_cash", "interval", "source", "run_dir", "warmup_bars",
                          "seed", "kill_file", "replay_years"})

# risk key -> +1 when a larger value is looser, -1 when a smaller value is looser
LOOSER_WHEN = {
    "max_position_pct": +1,
    "max_gross_leverage": +1,
    "daily_loss_stop_pct": +1,
    "max_drawdown_pct": +1,
    "price_band_pct": +1,
    "cash_buffer_pct": -1,
    "allow_short": +1,  # False -> True allows shorting
}


def risk_reload_problem(old: Any, new: Any) -> str | None:
    """Why ``new`` risk limits may not replace the running ``old`` ones, or ``None``."""
    bad = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        direction = LOOSER_WHEN.get(f.name)
        if direction is None:  # a key added to RiskLimits must say which way is looser
            if a != b:
                bad.append(f"risk.{f.name}: {a!r} -> {b!r} (no rule for this key)")
            continue
        if (b > a) if direction > 0 else (b < a):
            bad.append(f"risk.{f.name}: {a!r} -> {b!r}")
    if not bad:
        return None
    return (f"loosens {'a limit' if len(bad) == 1 else 'limits'} ({'; '.join(bad)}); a running "
            "session only tightens its limits: restart the session to loosen")


def session_reload_problem(old: Any, new: Any) -> str | None:
    """Why the ``new`` session settings may not replace the running ones, or ``None``."""
    bad = [f"session.{k}: {getattr(old.session, k)!r} -> {getattr(new.session, k)!r}"
           for k in sorted(RESTART_ONLY)
           if getattr(old.session, k) != getattr(new.session, k)]
    # the bar gate's thresholds: a resume re-runs the history through the gate of the start
    bad += [f"gate.{f.name}: {getattr(old.gate, f.name)!r} -> {getattr(new.gate, f.name)!r}"
            for f in dataclasses.fields(old.gate)
            if getattr(old.gate, f.name) != getattr(new.gate, f.name)]
    if not bad:
        return None
    return (f"changes {'a key' if len(bad) == 1 else 'keys'} read only at start "
            f"({'; '.join(bad)}); restart the session to apply "
            f"{'it' if len(bad) == 1 else 'them'}")


def assets_reload_problem(old: Any, new: Any, symbols: Any) -> str | None:
    """Why the ``new`` assets config may not replace the running one for a session trading
    ``symbols``: a symbol's asset class or calendar is fixed at start (lot sizes, the bar
    gate's jump threshold and the ledger's meta use them), so changing one needs a restart.
    Models and patterns that move no traded symbol reload freely."""
    bad = []
    for s in symbols:
        try:
            before = (old.classify(s), old.calendar_for(s))
            after = (new.classify(s), new.calendar_for(s))
        except Exception as exc:  # a traded symbol the new file cannot classify
            bad.append(f"{s}: {exc}")
            continue
        if before != after:
            bad.append(f"{s}: class {before[0]!r} ({before[1]}) -> {after[0]!r} ({after[1]})")
    if not bad:
        return None
    return (f"moves traded symbols to another asset class or calendar ({'; '.join(bad)}); "
            "a symbol's class is fixed at start: restart the session to apply it")
