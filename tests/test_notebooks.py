"""Notebooks: declared parameters (names and defaults) and HTML reports with figures."""

from __future__ import annotations

import re
from pathlib import Path

import papermill as pm
import pytest

from research_lib.errors import NotebookError
from research_lib.notebooks import run_report

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"

# The one place where notebook parameters are pinned (name -> default as written).
EXPECTED_PARAMETERS = {
    "data_sanity": {"symbols": '"SPY,QQQ,BTC-USD,ETH-USD"', "source": '"sample"',
                    "start": "None", "end": "None"},
    "paper_session": {"symbols": '"SPY,QQQ"', "source": '"sample"', "start": "None",
                      "end": "None", "flag": '"0"', "dry_run": "False", "model": "None",
                      "run": "None"},
    "train_model": {"asset_class": '"crypto"', "symbols": '"BTC-USD,ETH-USD,LTC-USD"',
                    "start": "None", "end": "None", "out": '"reports/models/notebook_model.onnx"',
                    "pipeline": "None"},
    "onnx_parity": {"model": '"models/crypto_v1.onnx"'},
    "routing_check": {"symbols": "None"},
}


def test_expected_parameters_when_compared_then_cover_every_notebook():
    assert sorted(EXPECTED_PARAMETERS) == sorted(p.stem for p in NB.glob("*.ipynb"))


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_notebook_parameters_when_inspected_then_names_and_defaults_pinned(name):
    params = pm.inspect_notebook(str(NB / f"{name}.ipynb"))
    assert {k: v["default"] for k, v in params.items()} == EXPECTED_PARAMETERS[name]


def test_every_notebook_when_listed_then_has_a_parameters_cell_and_no_path_hacks():
    import nbformat

    for path in sorted(NB.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one 'parameters' cell"
        src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for bad in ("sys.path.insert", "pip install", "filterwarnings", "MPLBACKEND", "pickle"):
            assert bad not in src, f"{path.name} contains {bad!r}"
        for c in nb.cells:
            # outputs are stripped (tests/test_notebooks_paired.py); a marked cell would
            # make nbval compare against nothing
            assert "NBVAL_CHECK_OUTPUT" not in c.source, f"{path.name}: no nbval markers"


def test_data_sanity_report_when_run_then_html_has_figures_and_no_code(tmp_path):
    html = run_report("data_sanity", {"symbols": "SPY,QQQ"}, out=tmp_path / "ds.html",
                      progress=False)
    text = html.read_text()
    assert len(re.findall(r"data:image/png;base64,", text)) >= 3
    assert "rl.data_sanity_report" not in text  # input cells excluded
    assert "proxy" in text and "^GSPC" in text


def test_paper_session_report_when_run_with_flag_then_html_has_figures_routing_and_metrics(
        tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(ROOT))
    html = run_report("paper_session", {"symbols": "BTC-USD,ETH-USD", "flag": "1"},
                      out=tmp_path / "ps.html", progress=False)
    text = html.read_text()
    assert len(re.findall(r"data:image/png;base64,", text)) >= 4
    for needle in ("Annual return (compounded)", "Sharpe ratio", "Sortino ratio", "Calmar ratio",
                   "Profit factor of round trips", "Mean gross exposure", "Time in market",
                   "crypto_v1"):
        assert needle in text, needle
    assert "import research_lib" not in text


def test_report_when_unknown_parameter_then_error_lists_parameters(tmp_path):
    with pytest.raises(NotebookError, match="no parameter 'symbol'.*symbols"):
        run_report("data_sanity", {"symbol": "SPY"}, out=tmp_path / "x.html", progress=False)


def test_report_when_unknown_notebook_then_error_lists_available(tmp_path):
    with pytest.raises(NotebookError, match="available"):
        run_report("nope", {}, out=tmp_path / "x.html", progress=False)
