"""``research-lib parity MODEL.onnx``: rebuild the scikit-learn pipeline from the model card
(retraining from the recorded data; a pickle is never stored or loaded) and compare it with
the ONNX file on rows the fit never saw."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..telemetry import get_logger, log_event
from . import card as cards
from . import train
from .onnx import OnnxModel, ParityCheck, ParityReport, compare_detail

log = get_logger("models.onnx")  # the logger its events have always carried


def parity_check(model_path: str | Path, *, card_path: str | Path | None = None) -> ParityCheck:
    """Rebuild the pipeline from the card beside ``model_path`` (retraining on the recorded
    data) and compare it with the ONNX file on held-out rows."""
    from ..project import resolve_path

    path = resolve_path(model_path)
    card = cards.read_card(card_path or cards.card_path_for(path))
    if card.get("origin", {}).get("kind") == "legacy_pickle":
        raise ModelError(
            f"{path} was converted from a pickle; parity cannot rebuild its pipeline without "
            "loading the pickle again. Its parity at conversion is in the card; re-run "
            "`research-lib convert-legacy PATH.pkl --out ... --trust` to check again"
        )
    model = OnnxModel(path)
    rebuilt = train.rebuild(card)
    X, rows_from = train.heldout_rows(rebuilt)
    check = compare_detail(
        rebuilt.pipeline,
        model,
        X,
        threshold=rebuilt.spec.settings.evaluation.threshold,
        rows_from=rows_from,
    )
    matches = card.get("sha256") == model.sha256
    report = ParityReport(**{**check.report.to_dict(), "card_sha256_matches": matches})
    log_event(log, "parity", **report.to_dict())
    return ParityCheck(report, check.p_sklearn, check.p_onnx)


def parity(model_path: str | Path, *, card_path: str | Path | None = None) -> ParityReport:
    """``research-lib parity MODEL.onnx``: passes iff max |diff| <= 1e-5 and decisions agree
    100% on rows the fit never saw."""
    return parity_check(model_path, card_path=card_path).report
