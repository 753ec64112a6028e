"""``research-lib convert-legacy PATH.pkl --out models/NAME.onnx --trust``: turn a
scikit-learn pickle into ONNX, once.

The only place in research_lib that loads a pickle, and only with ``trust=True`` (a pickle
runs its author's code when loaded); ``tests/test_security.py`` scans the source for it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from .. import features
from ..errors import ModelError
from ..telemetry import get_logger, log_event
from . import card as cards
from .onnx import OnnxModel, compare, export, sha256_bytes, sha256_file
from .train import sample_feature_rows

log = get_logger("models.onnx")  # the logger its events have always carried

PICKLE_WARNING = (
    "a pickle runs arbitrary code when it is loaded (pickle.load can execute any Python "
    "the file's author chose), so research_lib never loads one on its own"
)


def convert_legacy(pickle_path: str | Path, out: str | Path, *, trust: bool) -> dict[str, Any]:
    """Load a scikit-learn pickle (only with ``trust=True``), export it to ONNX at ``out``,
    check parity on the shipped sample's feature rows, and write a card beside it."""
    from ..project import resolve_path

    src = resolve_path(pickle_path)
    if not trust:
        raise ModelError(
            f"refusing to load {src}: {PICKLE_WARNING}. If you made this file or trust its "
            "author, run again with --trust"
        )
    if not src.is_file():
        raise ModelError(f"{src}: no such file")
    raw = src.read_bytes()
    try:
        if src.suffix == ".joblib":
            import joblib

            est = joblib.load(src)  # trusted by the user's explicit --trust
        else:
            est = pickle.loads(raw)  # noqa: S301 - trusted by the user's explicit --trust
    except Exception as exc:
        raise ModelError(f"{src}: cannot unpickle: {exc}") from exc
    if not hasattr(est, "predict_proba"):
        raise ModelError(f"{src}: {type(est).__name__} has no predict_proba; need a classifier")
    out = resolve_path(out)
    data = export(est, features.N_FEATURES, name=out.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    model = OnnxModel(out, data=data)
    X, rows_from = sample_feature_rows()
    report = compare(est, model, X, threshold=0.5, rows_from=rows_from)
    card = cards.legacy_card(
        name=out.stem,
        onnx_bytes=data,
        pickle_path=src,
        pickle_sha256=sha256_bytes(raw),
        estimator=est,
        parity=report,
    )
    cards.write_card(card, cards.card_path_for(out))
    log_event(log, "legacy_converted", pickle=str(src), out=str(out), parity=report.passed)
    return {"out": str(out), "card": str(cards.card_path_for(out)), "parity": report,
            "sha256": sha256_file(out)}
