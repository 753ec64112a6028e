"""The bar interval a model was trained on, from its card (``models/NAME.json``,
``data.interval``), against the interval a session runs: a model of 1d bars never decides
on 1m bars (its features, label horizon and thresholds mean something else there)."""

from __future__ import annotations

import json
from pathlib import Path

from ..data.sanity import interval_length


def card_interval(model_file: Path) -> str | None:
    """``data.interval`` of the card beside ``model_file``; None when there is no card or
    it does not say."""
    card = Path(model_file).with_suffix(".json")
    try:
        doc = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    value = data.get("interval") if isinstance(data, dict) else None
    return str(value) if value else None


def interval_problem(model: str, model_file: Path, shown: str, session_interval: str
                     ) -> str | None:
    """Why ``model`` may not decide a session of ``session_interval`` bars, or None."""
    trained = card_interval(model_file)
    card = Path(shown).with_suffix(".json")
    if trained is None:
        return (f"INTERVAL_UNKNOWN: the card {card} of model {model} does not record the bar "
                f"interval it was trained on; this session runs {session_interval} bars; "
                f"retrain it with `research-lib train --interval {session_interval} ...`")
    want, have = interval_length(session_interval), interval_length(trained)
    if want is None or have is None or want != have:
        return (f"INTERVAL_MISMATCH: model {model} was trained on {trained} bars (card "
                f"{card}); this session runs {session_interval} bars; train one with "
                f"`research-lib train --interval {session_interval} ...` or run the session "
                f"with --interval {trained}")
    return None
