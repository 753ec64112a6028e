"""Clear a latched drawdown HALT of a recorded run, after a person reviewed it.

``research-lib reset-halt RUN`` calls :func:`reset_halt`: the transition is the risk
engine's (:meth:`~research_lib.risk.RiskEngine.reset_halt`: ACTIVE again, the peak reset to
the run's last equity), recorded in the run's ledger as one ``state_changes`` row; a halt
marker left by a failed step goes too. The next ``paper --resume RUN`` starts ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import load_session
from .errors import ConfigError
from .ledger import Ledger
from .project import resolve_path
from .risk import RiskEngine, TradingState
from .run_files import resolve_ledger
from .telemetry import get_logger, log_event

log = get_logger("session")


@dataclass(frozen=True)
class HaltReset:
    """What :func:`reset_halt` did: ``reset`` is False when the run was not HALTED (then
    nothing was written and ``state`` is the state it is in)."""

    run_id: str | None
    reset: bool
    state: str
    reason: str
    equity: float | None = None


def runs_folder(run_dir: str | Path | None = None) -> Path:
    """``run_dir``, else ``session.run_dir`` from the config (``runs`` when the config cannot
    be read); a relative folder is taken from the project home (the one rule:
    :func:`research_lib.project.resolve_path`)."""
    if run_dir is None:
        try:
            run_dir = load_session().session.run_dir
        except ConfigError:
            run_dir = "runs"
    return resolve_path(run_dir)


def reset_halt(run: str | Path, reason: str = "manual reset",
               run_dir: str | Path | None = None) -> HaltReset:
    """Clear the HALT of ``run`` (a run id under ``run_dir``, a run folder or a ledger)."""
    path = resolve_ledger(run, runs_folder(run_dir))
    with Ledger.open(path) as led:
        st = led.load_state()
        run_id = st.meta.get("run_id")
        if st.state is not TradingState.HALTED:
            return HaltReset(run_id, False, st.state.value, reason)
        equity = st.equity if st.equity is not None else float(st.meta["initial_cash"])
        engine = RiskEngine(state=st.state, peak=st.peak)
        change = engine.reset_halt(equity, f"{reason}; peak reset to equity={equity:.2f}")
        led.append_state_change(change.scope, change.from_state, change.to_state,
                                change.reason, equity, engine.peak)
        led.clear_halt_marker()
    log_event(log, "halt_reset", run=str(run), reason=reason, equity=equity)
    return HaltReset(run_id, True, engine.state.value, reason, equity)
