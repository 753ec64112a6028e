"""Model notebooks: library calls only, and HTML reports with figures that never touch models/."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import nbformat
import pytest

from research_lib.notebooks import run_report

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
MODELS = ROOT / "models"

NAMES = ("train_model", "onnx_parity", "routing_check")
# parameters and their defaults are pinned in one place: tests/test_notebooks.py


def images(html: Path) -> int:
    return len(re.findall(r"data:image/png;base64,", html.read_text()))


def digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(MODELS.iterdir())}


@pytest.mark.parametrize("name", NAMES)
def test_model_notebook_when_read_then_no_function_or_class_definitions(name):
    nb = nbformat.read(str(NB / f"{name}.ipynb"), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(def|class|for|while|if) ", code, re.M)
    assert "import research_lib" in code or "from research_lib" in code


def test_train_model_report_when_run_then_figures_and_card_and_committed_models_untouched(tmp_path):
    before = digests()
    out = tmp_path / "nb_crypto.onnx"
    html = run_report(
        "train_model",
        {"symbols": "ETH-USD,LTC-USD", "out": str(out)},
        out=tmp_path / "train.html",
        progress=False,
    )
    text = html.read_text()
    assert images(html) >= 3  # equity vs baselines, calibration, importance
    assert "buy_and_hold" in text and "sma_crossover" in text and "verdict" in text
    assert "parity PASSED" in text
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert digests() == before


def test_parity_and_routing_reports_when_run_then_html_has_figure_and_headline(tmp_path):
    parity_html = run_report(
        "onnx_parity",
        {"model": "models/equities_v1.onnx"},
        out=tmp_path / "parity.html",
        progress=False,
    )
    assert images(parity_html) >= 1
    assert "passed: True; identical decisions: 100.00%" in parity_html.read_text()
    routing_html = run_report(
        "routing_check",
        {"symbols": "BTC-USD,SPY,SPY251219C00600000"},
        out=tmp_path / "routing.html",
        progress=False,
    )
    text = routing_html.read_text()
    assert images(routing_html) >= 1
    assert "Asset-specific model routing DISABLED" in text
    assert "universal_v1 + shadow options_v1" in text  # the every-mode table
