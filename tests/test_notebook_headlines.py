"""The headline each notebook prints with its default parameters.

These were nbval golden outputs stored in the notebooks (cells marked
``# NBVAL_CHECK_OUTPUT``); notebooks are now committed without outputs
(tests/test_notebooks_paired.py), so the same library calls, with the same defaults, are
checked here. nbval still runs every notebook (``make test``) and fails on any error.
After a deliberate change to one of these figures, update it here.
"""

from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

import research_lib as rl

ROOT = Path(__file__).resolve().parents[1]


def _defaults(name: str) -> dict:
    """The notebook's parameters as written in its parameters cell."""
    import ast

    params = pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))
    return {k: ast.literal_eval(v["default"]) for k, v in params.items()}


def test_data_sanity_headline_when_defaults_then_counts_as_before():
    p = _defaults("data_sanity")
    rep = rl.data_sanity_report(p["symbols"], source=p["source"], start=p["start"],
                                end=p["end"])
    assert rep.counts_text() == ("symbols=4 errors=0 warnings=3 codes: MISSING_SESSION=2, "
                                 "PROXY_SERIES=2, STALE_BARS=1")


def test_paper_session_headline_when_defaults_then_summary_as_before(tmp_path):
    p = _defaults("paper_session")
    result = rl.paper_session(p["symbols"], source=p["source"], start=p["start"],
                              end=p["end"], flag=p["flag"], dry_run=p["dry_run"],
                              model=p["model"], run_dir=str(tmp_path), log_file=False)
    rep = rl.paper_session_report(result.ledger_path)
    assert rep.summary_text() == ("steps=502 orders=4 fills=4 round_trips=1 open_trips=2 "
                                  "risk_events=0 "
                                  "final_equity=102072.92 return=+2.07% max_drawdown=-4.05%")


def test_routing_check_headline_when_defaults_then_modes_table_as_before(monkeypatch):
    from research_lib.models import Router, plots
    from research_lib.models.router import symbols_or_default

    syms = symbols_or_default(_defaults("routing_check")["symbols"])
    table = plots.routing_modes(Router(), syms)
    assert list(table.columns) == ["0 (DISABLED)", "1 (ENABLED)", "shadow (SHADOW)"]
    want = {"BTC-USD": "crypto_v1", "ETH-USD": "crypto_v1", "GOOG": "equities_v1",
            "LTC-USD": "crypto_v1", "^GSPC": "equities_v1", "^IXIC": "equities_v1",
            "^VIX": "equities_v1", "BTCUSDT": "crypto_v1", "ETHUSDT": "crypto_v1",
            "LTCUSDT": "crypto_v1", "QQQ": "equities_v1", "SPY": "equities_v1",
            "SPY251219C00600000": "options_v1"}
    assert list(table.index) == list(want)
    assert set(table["0 (DISABLED)"]) == {"universal_v1"}
    assert table["1 (ENABLED)"].to_dict() == want
    assert table["shadow (SHADOW)"].to_dict() == {
        s: f"universal_v1 + shadow {m}" for s, m in want.items()}


def test_onnx_parity_headline_when_defaults_then_passes_with_identical_decisions():
    from research_lib.models.parity import parity_check
    from research_lib.models.train import project_path

    check = parity_check(project_path(_defaults("onnx_parity")["model"]))
    assert check.report.passed
    assert f"{check.report.share_identical_decisions:.2%}" == "100.00%"


def test_train_model_headline_when_defaults_then_classification_table_as_before(tmp_path):
    from research_lib.models import plots, train_model

    p = _defaults("train_model")
    res = train_model(p["asset_class"], p["symbols"], start=p["start"], end=p["end"],
                      out=tmp_path / "m.onnx", pipeline=p["pipeline"])
    table = plots.classification_table(res).round(3)
    assert table.to_dict() == {
        "model": {"accuracy (vs majority class)": 0.530, "log loss (vs base rate)": 0.694,
                  "AUC (vs coin flip)": 0.550},
        "baseline": {"accuracy (vs majority class)": 0.503, "log loss (vs base rate)": 0.697,
                     "AUC (vs coin flip)": 0.500}}


@pytest.mark.parametrize("name", ["data_sanity", "paper_session", "routing_check",
                                  "onnx_parity", "train_model"])
def test_headline_cell_when_read_then_the_call_checked_here_is_still_in_the_notebook(name):
    calls = {"data_sanity": "rep.counts_text()", "paper_session": "ts.summary_text()",
             "routing_check": "plots.routing_modes(router, syms)",
             "onnx_parity": "check.report.share_identical_decisions",
             "train_model": "plots.classification_table(res).round(3)"}
    text = (ROOT / "notebooks" / f"{name}.py").read_text()
    assert calls[name] in text
