"""The hot-reload step: config files re-read at the start of each step.

Each of risk.yaml, session.yaml and assets.yaml that changed and passes its reload policy
(:mod:`research_lib.reload_policy`: restart-only keys are refused there) applies from this
step on, with a ``config`` state row (RELOADED, and what changed); a file that fails to load
or is refused keeps the previous values, with one REJECTED row per new error. What a resume
checks of the reloaded inputs is recorded by :func:`research_lib.resume.record_reload`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..risk import StateChange
from .signals import model_assets_for
from .stages import state_row

if TYPE_CHECKING:
    from ..ledger import StepRecord
    from .account import SessionLike as Session


def reload_step(s: Session, rec: StepRecord) -> None:
    """Apply the config files that changed since the last step to the session ``s``,
    recording each change (or refusal) in ``rec``."""
    for name, w in (("risk.yaml", s.w_risk), ("session.yaml", s.w_session),
                    ("assets.yaml", s.w_assets)):
        old = w.value
        new = w.current()
        if w.last_error != s._reload_errors.get(name):
            s._reload_errors[name] = w.last_error
            if w.last_error:
                state_row(s.desk, s.acct, rec, StateChange("config", "LOADED", "REJECTED",
                                              f"{name}: {w.last_error}; kept previous"))
        if new is old or new == old:
            continue
        diff = (["assets changed"] if name == "assets.yaml"
                else _diff(old, new, "risk" if name == "risk.yaml" else ""))
        if name == "risk.yaml":
            s.limits = new
            s.engine.limits = new
            s.broker.price_band_pct = new.price_band_pct
        elif name == "session.yaml":  # restart-only keys never get here (reload_policy)
            s.settings = new
            s.broker.costs = new.session
        else:
            s.assets = new.for_interval(s.interval)  # the models for the run's interval
            s._classify()
            # the models it decides with from now on (recorded for a resume)
            s.model_assets = model_assets_for(s.assets, s.model_name)
            s.model.set_assets(s.model_assets, s.classes)
        state_row(s.desk, s.acct, rec, StateChange("config", "LOADED", "RELOADED",
                                      f"{name}: {'; '.join(diff)}"))


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new):
        out = []
        for f in dataclasses.fields(old):
            out += _diff(getattr(old, f.name), getattr(new, f.name),
                         f"{prefix}.{f.name}" if prefix else f.name)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]
