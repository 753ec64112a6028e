"""Config: typed, validated, safe YAML only, errors name key/value/fix, hot reload."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import yaml

from research_lib.config import (
    ConfigWatcher,
    load_assets,
    load_risk,
    load_session,
    load_yaml,
    parse_assets,
    parse_symbols,
)
from research_lib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_configs_when_loaded_then_defaults_match_the_design():
    r = load_risk(ROOT / "config/risk.yaml")
    assert (r.max_position_pct, r.max_gross_leverage, r.daily_loss_stop_pct,
            r.max_drawdown_pct) == (0.15, 2.0, 0.03, 0.20)
    s = load_session(ROOT / "config/session.yaml")
    assert s.session.initial_cash > 0
    a = load_assets(ROOT / "config/assets.yaml")
    assert a.classify("BTC-USD") == "crypto" and a.classify("SPY") == "equities"
    assert a.classify("SPY250117C00450000") == "options"
    assert a.classify("BTCUSDT") == "crypto"


@pytest.mark.parametrize("value", ["1.5", "0", "-0.1"])
def test_risk_limit_when_out_of_range_then_error_names_key_and_value(tmp_path, value):
    p = _write(tmp_path, "risk.yaml", f"risk:\n  max_position_pct: {value}\n")
    with pytest.raises(ConfigError, match=r"risk\.max_position_pct must be in \(0, 1\]") as e:
        load_risk(p)
    assert value in str(e.value) and str(p) in str(e.value)


def test_risk_when_unknown_key_then_error_lists_allowed(tmp_path):
    p = _write(tmp_path, "risk.yaml", "risk:\n  max_postion_pct: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key risk\.max_postion_pct.*max_position_pct"):
        load_risk(p)


def test_risk_when_string_for_number_then_type_error(tmp_path):
    p = _write(tmp_path, "risk.yaml", "risk:\n  max_gross_leverage: two\n")
    with pytest.raises(ConfigError, match="must be a number, got 'two'"):
        load_risk(p)


def test_yaml_when_python_object_tag_then_refused(tmp_path):
    p = _write(tmp_path, "risk.yaml", "risk: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p)


@pytest.mark.parametrize("ticker", ["ON", "NO", "YES", "off"])
def test_assets_override_when_ticker_reads_as_boolean_then_error_says_quote_it(ticker):
    data = yaml.safe_load((ROOT / "config/assets.yaml").read_text())
    data["overrides"] = yaml.safe_load(f"{ticker}: equities")
    with pytest.raises(ConfigError, match="quote"):
        parse_assets(data)


def test_symbols_when_yaml_boolean_then_error_names_position():
    with pytest.raises(ConfigError, match=r"symbols\[1\] parsed as boolean True"):
        parse_symbols(["SPY", True])


def test_symbols_when_duplicate_or_empty_then_error():
    with pytest.raises(ConfigError, match="twice"):
        parse_symbols("SPY,QQQ,SPY")
    with pytest.raises(ConfigError, match="empty"):
        parse_symbols(" , ")


def test_assets_when_class_without_model_then_error_names_class():
    data = yaml.safe_load((ROOT / "config/assets.yaml").read_text())
    del data["classes"]["crypto"]["model"]
    with pytest.raises(ConfigError, match="classes.crypto has no model"):
        parse_assets(data)


def test_assets_when_unknown_key_then_error():
    data = yaml.safe_load((ROOT / "config/assets.yaml").read_text())
    data["classes"]["crypto"]["modle"] = "x"
    with pytest.raises(ConfigError, match=r"unknown key classes\.crypto\.modle"):
        parse_assets(data)


def test_session_when_thresholds_crossed_then_error(tmp_path):
    p = _write(tmp_path, "session.yaml",
               "signal:\n  long_threshold: 0.4\n  short_threshold: 0.6\n")
    with pytest.raises(ConfigError, match="short_threshold"):
        load_session(p)


def test_watcher_when_valid_edit_then_applies_and_invalid_edit_keeps_previous(tmp_path, caplog):
    p = _write(tmp_path, "risk.yaml", "risk:\n  max_position_pct: 0.15\n")
    w = ConfigWatcher(p, load_risk)
    assert w.current().max_position_pct == 0.15
    p.write_text("risk:\n  max_position_pct: 0.10\n")
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert w.current().max_position_pct == 0.10
    p.write_text("risk:\n  max_position_pct: 7\n")
    os.utime(p, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    logger = logging.getLogger("research_lib")
    logger.propagate = True
    try:
        with caplog.at_level(logging.ERROR, logger="research_lib"):
            assert w.current().max_position_pct == 0.10
    finally:
        logger.propagate = False
    assert "max_position_pct" in (w.last_error or "")
    assert any(r.getMessage() == "config_reload_failed" for r in caplog.records)
