"""Intraday training and the model's bar interval: ``train --interval 1m`` on the shipped
intraday sample records 1m on its card; a session on another interval refuses that model
with the reason, and the shipped daily models are refused on 1m bars."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from research_lib.cli import main
from research_lib.ledger_read import read_run
from research_lib.models.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A project folder (config/, models/) with a 1m equities model trained on the sample."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "config", home / "config")
    shutil.copytree(ROOT / "models", home / "models")
    res = train("equities", ["SPY"], source="sample", interval="1m",
                out=home / "models" / "spy_1m.onnx")
    assets = yaml.safe_load((home / "config" / "assets.yaml").read_text())
    assets["models"]["spy_1m"] = {"path": "spy_1m.onnx", "sha256": res.sha256}
    (home / "config" / "assets.yaml").write_text(yaml.safe_dump(assets, sort_keys=False))
    session = yaml.safe_load((home / "config" / "session.yaml").read_text())
    session["session"]["kill_file"] = str(home / "kill.flag")
    (home / "config" / "session.yaml").write_text(yaml.safe_dump(session, sort_keys=False))
    return home


def test_train_interval_1m_records_the_interval_calendar_annualisation_and_scaled_label(home):
    card = json.loads((home / "models" / "spy_1m.json").read_text())
    assert card["data"]["interval"] == "1m"
    assert card["data"]["periods_per_year"] == 252 * 390  # not 365, not 252
    assert "--interval 1m" in card["train_command"]
    # 10 bps is a daily dead zone; on 1m NYSE bars it is scaled by sqrt(1/390)
    assert card["label"]["dead_zone"] == pytest.approx(0.001 * (1 / 390) ** 0.5, rel=1e-5)
    assert card["label"]["rows"]["up"] > 300 and card["label"]["rows"]["down"] > 300


def _paper(home: Path, tmp_path: Path, *args: str) -> int:
    return main(["paper", "--symbols", "SPY", "--run-dir", str(tmp_path / "runs"),
                 "--config-dir", str(home / "config"), *args])


def test_session_on_the_models_interval_trades_with_it(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    code = _paper(home, tmp_path, "--interval", "1m", "--model", "spy_1m", "--json",
                  "--max-steps", "120")
    out = capsys.readouterr()
    assert code == 0, out.err
    d = read_run(json.loads(out.out)["ledger"])["decisions"]
    assert set(d["model"].dropna()) == {"spy_1m"} and d["probability"].notna().sum() > 50


def test_session_on_another_interval_refuses_the_model_with_the_reason(
        home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    code = _paper(home, tmp_path, "--interval", "1d", "--model", "spy_1m", "--max-steps", "5")
    err = capsys.readouterr().err
    assert code == 2
    assert ("INTERVAL_MISMATCH: model spy_1m was trained on 1m bars (card models/spy_1m.json); "
            "this session runs 1d bars") in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_shipped_daily_models_are_refused_on_one_minute_bars(home, tmp_path, monkeypatch,
                                                             capsys):
    """Forced (``--model universal_v1``) or named for 1m in assets.yaml, a daily model is
    refused on 1m bars by its card (the router's own 1m session uses the 1m models the
    config names for 1m: tests/test_live_models.py)."""
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    code = _paper(home, tmp_path, "--interval", "1m", "--model", "universal_v1",
                  "--max-steps", "5")
    err = capsys.readouterr().err
    assert code == 2
    assert "model universal_v1 was trained on 1d bars" in err and "--interval 1m" in err
    other = tmp_path / "home"
    shutil.copytree(home, other)
    assets = yaml.safe_load((other / "config" / "assets.yaml").read_text())
    assets["universal_model"] = {"1d": "universal_v1", "1m": "universal_v1"}
    (other / "config" / "assets.yaml").write_text(yaml.safe_dump(assets, sort_keys=False))
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(other))
    code = _paper(other, tmp_path, "--interval", "1m", "--max-steps", "5")
    err = capsys.readouterr().err
    assert code == 2
    assert ("INTERVAL_MISMATCH: model universal_v1 was trained on 1d bars (card "
            "models/universal_v1.json); this session runs 1m bars") in err


def test_a_model_whose_card_does_not_say_its_interval_is_refused_fail_closed(
        home, tmp_path, monkeypatch, capsys):
    other = tmp_path / "home"
    shutil.copytree(home, other)
    card = json.loads((other / "models" / "spy_1m.json").read_text())
    del card["data"]["interval"]
    (other / "models" / "spy_1m.json").write_text(json.dumps(card))
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(other))
    code = _paper(other, tmp_path, "--interval", "1m", "--model", "spy_1m", "--max-steps", "5")
    assert code == 2
    assert "INTERVAL_UNKNOWN: the card models/spy_1m.json" in capsys.readouterr().err


def test_features_cli_on_intraday_bars_writes_one_row_per_bar(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "f.parquet"
    code = main(["features", "--symbols", "SPY,EURUSD", "--interval", "1h", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    f = pd.read_parquet(out)
    assert set(f["symbol"]) == {"SPY", "EURUSD"}
    assert (f["symbol"] == "EURUSD").sum() == 5000 and (f["symbol"] == "SPY").sum() == 31
    assert "resampled from the sample's 1m bars" in capsys.readouterr().out
