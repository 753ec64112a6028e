"""Bad config and bad models are refused at load with the key, the value and the fix, and a
paper session given one does not start: exit 2, the reason on stderr, no run folder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from research_lib.cli import main
from research_lib.config import load_assets, load_risk, load_session, parse_symbols
from research_lib.errors import ConfigError
from research_lib.models.settings import load_settings
from tests.kit.paper import GOLDEN_CONFIG, write_config

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ limits and keys
@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("max_position_pct", "1.5", "(0, 1]"),
    ("max_position_pct", "0", "(0, 1]"),
    ("max_gross_leverage", "0", "(0, 10]"),
    ("max_gross_leverage", "11", "(0, 10]"),
    ("daily_loss_stop_pct", "1.0", "(0, 1)"),
    ("max_drawdown_pct", "0", "(0, 1)"),
    ("max_drawdown_pct", "-0.2", "(0, 1)"),
    ("price_band_pct", "0", "(0, 10]"),
    ("cash_buffer_pct", "0.6", "[0, 0.5]"),
])
def test_risk_limit_when_out_of_range_then_refused_naming_file_key_value_and_range(
        tmp_path, key, value, allowed):
    p = _write(tmp_path / "risk.yaml", f"risk:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as e:
        load_risk(p)
    assert str(e.value) == f"{p}: risk.{key} must be in {allowed}, got {yaml.safe_load(value)!r}"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_number_when_not_finite_then_refused(tmp_path, value):
    # .nan passes every range comparison (nan > 1 is False): a NaN limit would never deny
    p = _write(tmp_path / "risk.yaml", f"risk:\n  max_position_pct: {value}\n")
    with pytest.raises(ConfigError, match=r"risk\.max_position_pct must be a finite number"):
        load_risk(p)
    s = _write(tmp_path / "session.yaml", f"session:\n  initial_cash: {value}\n")
    with pytest.raises(ConfigError, match=r"session\.initial_cash must be a finite number"):
        load_session(s)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("risk.yaml", "riks:\n  max_position_pct: 0.1\n",
     r"unknown top-level key 'riks'; allowed: risk"),
    ("session.yaml", "session:\n  intial_cash: 5\n",
     r"unknown key session\.intial_cash; allowed keys: .*initial_cash"),
    ("session.yaml", "signal:\n  treshold: 0.5\n",
     r"unknown key signal\.treshold; allowed keys: .*long_threshold"),
    ("models.yaml", "seed: 7\nlabels: {horizon: 1}\n", r"unknown key 'labels'; allowed: .*label"),
])
def test_config_when_unknown_key_then_refused_naming_key_and_allowed(tmp_path, name, text,
                                                                     message):
    loader = {"risk.yaml": load_risk, "session.yaml": load_session,
              "models.yaml": load_settings}[name]
    p = _write(tmp_path / name, text)
    with pytest.raises(ConfigError, match=message) as e:
        loader(p)
    assert str(p) in str(e.value)


# ------------------------------------------------------------- tickers read as booleans
def test_symbols_list_when_yaml_reads_tickers_as_booleans_then_refused_with_position():
    items = yaml.safe_load("[SPY, ON, NO, YES]")  # YAML 1.1: ON/NO/YES are booleans
    assert items == ["SPY", True, False, True]
    with pytest.raises(ConfigError, match=r"symbols\[1\] parsed as boolean True; tickers such "
                                          r"as ON, NO, YES must be quoted in YAML \('ON'\)"):
        parse_symbols(items)
    assert parse_symbols(yaml.safe_load("[SPY, 'ON', 'NO', 'YES']")) == ["SPY", "ON", "NO", "YES"]


def _assets_text(**edits: str) -> str:
    text = (GOLDEN_CONFIG / "assets.yaml").read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(("old", "new", "message"), [
    ('overrides:\n  "^VIX": equities', "overrides:\n  ON: equities",
     r"overrides key True parsed as bool; a ticker such as ON, NO or YES must be quoted"),
    ('patterns: ["*"]', "patterns: [YES]",
     r"classes\.equities\.patterns\[0\] parsed as bool True; quote it in YAML"),
    ("  equities:\n", "  YES:\n",
     r"classes key True parsed as bool; a class name such as YES, NO or ON must be quoted"),
])
def test_assets_file_when_yaml_reads_a_name_as_boolean_then_refused_saying_quote_it(
        tmp_path, old, new, message):
    p = _write(tmp_path / "assets.yaml", _assets_text(**{old: new}))
    with pytest.raises(ConfigError, match=message):
        load_assets(p)


# ------------------------------------------------- the paper command does not start
def _paper(tmp_path: Path, cfg: Path, *extra: str) -> int:
    return main(["paper", "--symbols", "SPY", "--start", "2018-10-01", "--end", "2018-12-31",
                 "--config-dir", str(cfg), "--run-dir", str(tmp_path / "runs"),
                 "--run-id", "refused", *extra])


def _no_run(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


BAD_CONFIGS = {
    "limit_out_of_range": ("risk.yaml", {"max_position_pct": 1.5},
                           "risk.max_position_pct must be in (0, 1], got 1.5"),
    "limit_nan": ("risk.yaml", {"max_drawdown_pct": float("nan")},
                  "risk.max_drawdown_pct must be a finite number, got nan"),
    "unknown_risk_key": ("risk.yaml", {"max_postion_pct": 0.1},
                         "unknown key risk.max_postion_pct; allowed keys:"),
    "cash_negative": ("session.yaml", {"initial_cash": -5},
                      "session.initial_cash must be in (0, inf], got -5"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_paper_when_risk_or_session_yaml_is_bad_then_exit_2_with_key_value_fix_and_no_run(
        tmp_path, capsys, case):
    name, change, message = BAD_CONFIGS[case]
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    data = yaml.safe_load((cfg / name).read_text())
    data["risk" if name == "risk.yaml" else "session"].update(change)
    (cfg / name).write_text(yaml.safe_dump(data))

    assert _paper(tmp_path, cfg, "--model", "baseline:buy_and_hold") == 2

    err = capsys.readouterr().err
    assert f"research-lib paper: error: {cfg / name}: " in err and message in err
    assert _no_run(tmp_path)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    model: crypto_v1\n", "",
     "classes.crypto has no model; add `model: NAME` naming an entry under models"),
    ('overrides:\n  "^VIX": equities', "overrides:\n  ON: equities", "must be quoted in YAML"),
    ("universal_model: universal_v1", "universal_model: universal_v9",
     "universal_model must name an entry under models, got 'universal_v9'"),
    ("universal_v1: {path: universal_v1.onnx,", "universal_v1: {path: ../universal_v1.onnx,",
     "models.universal_v1.path '../universal_v1.onnx' must name a file inside models/"),
])
def test_paper_when_assets_yaml_is_bad_then_exit_2_naming_the_key_and_no_run(
        tmp_path, capsys, old, new, message):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    (cfg / "assets.yaml").write_text(_assets_text(**{old: new}))

    assert _paper(tmp_path, cfg) == 2

    assert message in capsys.readouterr().err
    assert _no_run(tmp_path)


# -------------------------------------------------------------- models at start-up
def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _narrow_model() -> bytes:
    """A real logistic model over 7 inputs (the feature spec has 11): the wrong shape."""
    from sklearn.linear_model import LogisticRegression

    from research_lib.models.onnx import export

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 7))
    return export(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), n_features=7,
                  feature_names=None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A project home (config/ and models/) the session reads models from."""
    h = tmp_path / "home"
    write_config(h / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    shutil.copy(ROOT / "config" / "assets.yaml", h / "config" / "assets.yaml")
    shutil.copytree(ROOT / "models", h / "models")
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(h))
    return h


def _repin(home: Path, name: str) -> None:
    """Pin ``name`` to the bytes now in models/ (as a careless re-pin would)."""
    p = home / "config" / "assets.yaml"
    data = yaml.safe_load(p.read_text())
    data["models"][name]["sha256"] = _sha(home / "models" / data["models"][name]["path"])
    p.write_text(yaml.safe_dump(data))


def _truncated(home: Path) -> None:
    f = home / "models" / "universal_v1.onnx"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    _repin(home, "universal_v1")


def _tampered(home: Path) -> None:
    f = home / "models" / "universal_v1.onnx"
    f.write_bytes(f.read_bytes() + b"\0")  # the pin in assets.yaml no longer matches


def _wrong_shape(home: Path) -> None:
    (home / "models" / "universal_v1.onnx").write_bytes(_narrow_model())
    _repin(home, "universal_v1")


def _symlink_outside(home: Path) -> None:
    outside = home.parent / "elsewhere.onnx"
    f = home / "models" / "universal_v1.onnx"
    shutil.move(f, outside)
    f.symlink_to(outside)  # same bytes, same pin, but outside models/


def _missing(home: Path) -> None:
    (home / "models" / "universal_v1.onnx").unlink()


MODEL_DEFECTS = {
    "truncated": (_truncated, "not a valid ONNX file (truncated or corrupt)"),
    "checksum_mismatch": (_tampered, "models.universal_v1.sha256 mismatch"),
    "wrong_input_shape": (_wrong_shape, "model expects 7 features, the feature spec has 11"),
    "symlink_outside_models": (_symlink_outside, "(a symlink pointing out of models/?); refused"),
    "missing": (_missing, "model file models/universal_v1.onnx missing"),
}


@pytest.mark.parametrize("defect", list(MODEL_DEFECTS))
def test_paper_when_the_deciding_model_is_unusable_then_exit_2_and_no_run(
        tmp_path, home, capsys, defect):
    break_it, message = MODEL_DEFECTS[defect]
    break_it(home)

    code = _paper(tmp_path, home / "config")

    err = capsys.readouterr().err
    assert code == 2
    assert ("research-lib paper: error: cannot start the session: SPY (class equities, model "
            "universal_v1): no usable model: ") in err
    assert message in err and "research-lib routing" in err
    assert _no_run(tmp_path)


def test_paper_when_only_a_class_model_is_broken_and_the_flag_is_on_then_starts_on_universal(
        tmp_path, home, capsys, monkeypatch):
    f = home / "models" / "equities_v1.onnx"
    f.write_bytes(f.read_bytes()[:100])
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")

    code = _paper(tmp_path, home / "config", "--max-steps", "2")

    assert code == 0, capsys.readouterr().err
    from research_lib.ledger_read import read_run

    d = read_run(tmp_path / "runs" / "refused" / "ledger.sqlite")["decisions"]
    assert set(d["model"]) == {"universal_v1"}
    assert d["fallback_reason"].str.contains("models.equities_v1.sha256 mismatch").all()
