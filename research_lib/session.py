"""The paper-trading session: moved to :mod:`research_lib.paper` (spec, feeds, signals,
summary, session). This module keeps the old import path (the CLI is research_lib.cli)."""

from __future__ import annotations

from .paper.feeds import (  # noqa: F401 (the old import path)
    REPLAY_ONLY_SOURCES,
    ReplayFeed,
    StepBars,
    replay_end_note,
)
from .paper.live import LIVE_MAX_FAILED_POLLS, LiveFeed  # noqa: F401
from .paper.session import Session, run_session  # noqa: F401
from .paper.signals import (  # noqa: F401
    RouterModel,
    SignalModel,
    checked_prediction,
    force_model,
    make_model,
    signal_target,
)
from .paper.spec import (  # noqa: F401
    CRYPTO_CALENDAR,
    STEP_DELAY_ENV,
    SessionResult,
    SessionSpec,
    check_max_steps,
    interval_seconds,
    parse_duration,
)
from .telemetry import (
    get_logger,
)

log = get_logger("session")
