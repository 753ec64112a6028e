"""Router: flag-driven routing, fallback with reasons, shadow mode, batching, no-signal cases."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from research_lib import data, features
from research_lib.cli import main
from research_lib.config import parse_assets
from research_lib.errors import ConfigError, ModelError
from research_lib.models.onnx import OnnxModel, export
from research_lib.models.router import Prediction, Route, Router

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHIPPED = ("universal_v1", "crypto_v1", "equities_v1")
OPTION = "SPY251219C00600000"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    for n in SHIPPED:
        shutil.copy(MODELS / f"{n}.onnx", d / f"{n}.onnx")
    return d


def make_assets(folder: Path, overrides: dict | None = None, pins: dict | None = None):
    models = {}
    for n in (*SHIPPED, "options_v1"):
        entry = {"path": f"{n}.onnx"}
        p = folder / f"{n}.onnx"
        if p.exists():
            entry["sha256"] = sha(p)
        if pins and n in pins:
            entry["sha256"] = pins[n]
        models[n] = entry
    return parse_assets(
        {
            "universal_model": "universal_v1",
            "classes": {
                "crypto": {
                    "patterns": ["*-USD", "*USDT"],
                    "calendar": "24/7",
                    "model": "crypto_v1",
                },
                "options": {
                    "patterns": [r"re:^[A-Z]{1,6}\s*\d{6}[CP]\d{8}$"],
                    "model": "options_v1",
                },
                "equities": {"patterns": ["*"], "model": "equities_v1"},
            },
            "overrides": overrides or {},
            "models": models,
        },
        source="test-assets.yaml",
    )


@pytest.fixture
def router(folder: Path) -> Router:
    return Router(make_assets(folder), models_dir=folder)


@pytest.fixture(scope="module")
def rows() -> tuple[list[str], np.ndarray]:
    """The last complete feature row of two crypto and two equity symbols (real sample)."""
    syms = ["BTC-USD", "ETH-USD", "^GSPC", "GOOG"]
    frames = data.load(syms)
    X = np.vstack([features.build(frames[s]).dropna().iloc[-1].to_numpy() for s in syms])
    return syms, X


@contextmanager
def captured(caplog, level: int):
    """Records of the package logger, even after a CLI call set ``propagate = False``."""
    lg = logging.getLogger("research_lib")
    old = (lg.level, lg.propagate)
    lg.addHandler(caplog.handler)
    lg.setLevel(level)
    lg.propagate = False  # each record once
    try:
        yield
    finally:
        lg.removeHandler(caplog.handler)
        lg.setLevel(old[0])
        lg.propagate = old[1]


def direct(name: str, X: np.ndarray) -> np.ndarray:
    return OnnxModel(MODELS / f"{name}.onnx").predict_proba_up(X.astype(np.float32))


def test_routes_when_flag_0_then_every_symbol_uses_universal(router, monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "0")
    routes = router.routes(["BTC-USD", "^GSPC", OPTION])
    assert [r.model for r in routes] == ["universal_v1"] * 3
    assert [r.asset_class for r in routes] == ["crypto", "equities", "options"]
    assert all(r.fallback_reason is None and r.shadow_model is None for r in routes)
    assert all(r.checksum_ok and r.mode == "0" for r in routes)


def test_routes_when_flag_unset_then_disabled(router, monkeypatch):
    monkeypatch.delenv("FLAG_ASSET_SPECIFIC_MODELS", raising=False)
    assert router.routes(["BTC-USD"])[0].model == "universal_v1"


def test_routes_when_flag_1_then_class_models_and_missing_options_falls_back_saying_why(
    router, monkeypatch
):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    btc, spx, opt = router.routes(["BTC-USD", "^GSPC", OPTION])
    assert (btc.model, spx.model) == ("crypto_v1", "equities_v1")
    assert btc.fallback_reason is None and spx.fallback_reason is None
    assert opt == Route(
        OPTION,
        "options",
        "universal_v1",
        "1",
        "model file models/options_v1.onnx missing",
        None,
        True,
    )


def test_routes_when_flag_shadow_then_universal_decides_and_class_model_shadows(
    router, monkeypatch
):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "shadow")
    btc, opt = router.routes(["BTC-USD", OPTION])
    assert (btc.model, btc.shadow_model, btc.mode) == ("universal_v1", "crypto_v1", "shadow")
    assert opt.model == "universal_v1" and opt.shadow_model is None
    assert "options_v1.onnx missing" in opt.fallback_reason


def test_predict_when_flag_flipped_between_calls_then_same_router_switches_models(
    router, rows, monkeypatch
):
    syms, X = rows
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "0")
    first = router.predict(syms, X)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    second = router.predict(syms, X)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "shadow")
    third = router.predict(syms, X)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "0")
    fourth = router.predict(syms, X)

    uni = direct("universal_v1", X)
    assert [p.model for p in first] == ["universal_v1"] * 4
    assert [p.probability for p in first] == pytest.approx(uni.tolist(), abs=0)
    assert [p.model for p in second] == ["crypto_v1", "crypto_v1", "equities_v1", "equities_v1"]
    assert [p.probability for p in second[:2]] == pytest.approx(
        direct("crypto_v1", X[:2]).tolist(), abs=0
    )
    assert [p.probability for p in second[2:]] == pytest.approx(
        direct("equities_v1", X[2:]).tolist(), abs=0
    )
    assert [p.model for p in third] == ["universal_v1"] * 4
    assert [p.shadow_model for p in third] == [
        "crypto_v1",
        "crypto_v1",
        "equities_v1",
        "equities_v1",
    ]
    assert [p.shadow_probability for p in third] == [p.probability for p in second]
    assert [p.probability for p in fourth] == [p.probability for p in first]
    assert all(p.shadow_model is None for p in first + second + fourth)


def test_predict_when_flag_has_unknown_value_then_config_error(router, rows, monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "maybe")
    with pytest.raises(ConfigError, match="FLAG_ASSET_SPECIFIC_MODELS must be 0, 1 or shadow"):
        router.predict(*rows)


def test_predict_when_shadow_then_both_probabilities_logged(router, rows, monkeypatch, caplog):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "shadow")
    with captured(caplog, logging.INFO):
        preds = router.predict(*rows)
    logged = [r for r in caplog.records if r.getMessage() == "shadow_prediction"]
    assert len(logged) == len(preds)
    f = logged[0].fields
    assert f["model"] == "universal_v1" and f["shadow_model"] == "crypto_v1"
    assert f["probability"] == preds[0].probability
    assert f["shadow_probability"] == preds[0].shadow_probability


def test_predict_when_row_has_nan_or_inf_then_that_row_is_no_signal(router, rows, monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    syms, X = rows
    X = X.copy()
    X[1, 3] = np.nan
    X[2, 0] = np.inf
    X[3, 5] = 1e300  # finite in float64, inf once cast to float32
    preds = router.predict(syms, X)
    assert preds[0].probability is not None
    assert [p.probability for p in preds[1:]] == [None, None, None]
    assert [p.model for p in preds] == ["crypto_v1", "crypto_v1", "equities_v1", "equities_v1"]


def test_predict_when_many_rows_then_one_onnxruntime_call_per_model(router, rows, monkeypatch):
    syms, X = rows
    calls: list[tuple[str, int]] = []
    original = OnnxModel.predict_proba_up

    def spy(self, X32):
        calls.append((self.path.stem, len(X32)))
        return original(self, X32)

    monkeypatch.setattr(OnnxModel, "predict_proba_up", spy)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "shadow")
    big_syms = syms * 25
    router.predict(big_syms, np.tile(X, (25, 1)))
    assert sorted(calls) == [("crypto_v1", 50), ("equities_v1", 50), ("universal_v1", 100)]


def test_predict_when_model_outputs_nan_then_no_signal_and_logged(
    folder, rows, monkeypatch, caplog
):
    from sklearn.linear_model import LogisticRegression

    syms, X = rows
    lr = LogisticRegression().fit(np.random.default_rng(0).normal(size=(50, 11)), [0, 1] * 25)
    lr.coef_[:] = np.nan  # a broken model: every output NaN
    (folder / "crypto_v1.onnx").write_bytes(export(lr))
    router = Router(make_assets(folder), models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    with captured(caplog, logging.WARNING):
        preds = router.predict(syms, X)
    assert [p.probability for p in preds[:2]] == [None, None]
    assert all(p.probability is not None for p in preds[2:])
    warned = [r for r in caplog.records if r.getMessage() == "no_signal"]
    assert {r.fields["symbol"] for r in warned} == {"BTC-USD", "ETH-USD"}
    assert "non-finite model output" in warned[0].fields["reason"]


def test_predict_when_class_model_checksum_mismatch_then_universal_with_reason_naming_key(
    folder, rows, monkeypatch
):
    router = Router(make_assets(folder, pins={"crypto_v1": "f" * 64}), models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    p = router.predict(*rows)[0]
    assert p.model == "universal_v1" and p.probability is not None
    assert p.fallback_reason.startswith("models.crypto_v1.sha256 mismatch")


def test_predict_when_class_model_file_corrupt_then_fallback_names_file(folder, rows, monkeypatch):
    good = (folder / "crypto_v1.onnx").read_bytes()
    (folder / "crypto_v1.onnx").write_bytes(good[: len(good) // 2])  # truncated, pinned as is
    router = Router(make_assets(folder), models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    p = router.predict(*rows)[0]
    assert p.model == "universal_v1"
    assert "crypto_v1.onnx" in p.fallback_reason
    assert router.status("crypto_v1").checksum == "INVALID"


def test_predict_when_file_replaced_after_loading_then_rechecked_and_refused(
    folder, rows, monkeypatch
):
    router = Router(make_assets(folder), models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    assert router.predict(*rows)[0].model == "crypto_v1"
    shutil.copy(folder / "equities_v1.onnx", folder / "crypto_v1.onnx")  # swapped on disk
    p = router.predict(*rows)[0]
    assert p.model == "universal_v1"
    assert "models.crypto_v1.sha256 mismatch" in p.fallback_reason


def test_predict_when_universal_missing_then_no_signal_with_reason(folder, rows, monkeypatch):
    assets = make_assets(folder)
    (folder / "universal_v1.onnx").unlink()
    router = Router(assets, models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "0")
    preds = router.predict(*rows)
    assert [p.probability for p in preds] == [None] * 4
    assert "model file models/universal_v1.onnx missing" in preds[0].fallback_reason
    assert router.routes(["BTC-USD"])[0].checksum_ok is False
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")  # class models still serve
    assert all(p.probability is not None for p in router.predict(*rows))


def test_set_assets_when_reloaded_then_next_call_uses_new_mapping(folder, rows, monkeypatch):
    router = Router(make_assets(folder), models_dir=folder)
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    assert router.predict(*rows)[0].model == "crypto_v1"
    router.set_assets(make_assets(folder, overrides={"BTC-USD": "equities"}))
    p = router.predict(*rows)[0]
    assert (p.asset_class, p.model) == ("equities", "equities_v1")


def test_predict_when_shape_or_length_wrong_then_error_names_expected(router, rows):
    syms, X = rows
    with pytest.raises(ModelError, match=r"expected X of shape \(3, 11\).*got \(4, 11\)"):
        router.predict(syms[:3], X)
    with pytest.raises(ModelError, match=r"expected X of shape \(4, 11\).*got \(4, 5\)"):
        router.predict(syms, X[:, :5])


def test_router_sessions_when_loaded_then_single_threaded(router):
    so = router.model("universal_v1").session.get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (1, 1)
    assert so.execution_mode.name == "ORT_SEQUENTIAL"


def test_prediction_when_built_then_fields_are_the_paper_loop_interface():
    fields = list(Prediction.__dataclass_fields__)
    assert fields == [
        "symbol",
        "asset_class",
        "model",
        "probability",
        "shadow_model",
        "shadow_probability",
        "fallback_reason",
    ]
    assert list(Route.__dataclass_fields__) == [
        "symbol",
        "asset_class",
        "model",
        "mode",
        "fallback_reason",
        "shadow_model",
        "checksum_ok",
    ]


@pytest.mark.parametrize(
    ("flag", "word"), [("0", "DISABLED"), ("1", "ENABLED"), ("shadow", "SHADOW")]
)
def test_routing_cli_when_flag_set_then_header_and_table(flag, word, monkeypatch, capsys):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", flag)
    code = main(["routing", "--symbols", f"BTC-USD,SPY,{OPTION}"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith(f"Asset-specific model routing {word}")
    header = out.splitlines()[1].split()
    assert header[:4] == ["symbol", "class", "model", "checksum"] and header[-1] == "fallback"
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:5]}
    if flag == "1":
        assert lines["BTC-USD"].split()[2] == "crypto_v1"
        assert lines[OPTION].split()[1:4] == ["options", "options_v1", "ok"]
    else:
        assert lines["BTC-USD"].split()[2] == "universal_v1"
    assert lines["SPY"].split()[1] == "equities"


def test_routing_cli_when_a_model_is_refused_then_exit_1_and_reason_shown(
    folder, monkeypatch, capsys, tmp_path
):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "assets.yaml").write_text(
        "universal_model: universal_v1\n"
        "classes:\n  equities: {patterns: ['*'], model: universal_v1}\n"
        f"models:\n  universal_v1: {{path: universal_v1.onnx, sha256: {'ab' * 32}}}\n"
    )
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path))
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "0")
    assert main(["routing", "--symbols", "GOOG"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "models.universal_v1.sha256 mismatch" in out


def test_routing_cli_when_json_then_routes_and_model_states(monkeypatch, capsys):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    assert main(["routing", "--symbols", "ETH-USD", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["routing"] == "ENABLED"
    assert doc["routes"][0]["model"] == "crypto_v1"
    assert {m["state"] for m in doc["models"].values()} == {"ok"}
