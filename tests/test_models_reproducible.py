"""The committed models are reproducible: retrained from their cards (which record the
command, data, settings and seed) they predict the same, byte for byte."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from research_lib.config import load_assets
from research_lib.models.card import read_card
from research_lib.models.onnx import OnnxModel, sha256_file
from research_lib.models.train import retrain_from_card, sample_feature_rows

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
NAMES = ("universal_v1", "equities_v1", "crypto_v1", "options_v1",
         "universal_1m_v1", "equities_1m_v1", "crypto_1m_v1")  # 1m: the intraday sample


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrained")
    return {
        n: retrain_from_card(read_card(MODELS / f"{n}.json"), out=out / f"{n}.onnx") for n in NAMES
    }


@pytest.mark.parametrize("name", NAMES)
def test_committed_model_when_retrained_from_card_then_same_predictions(name, retrained):
    X32 = sample_feature_rows()[0].astype(np.float32)
    committed = OnnxModel(MODELS / f"{name}.onnx").predict_proba_up(X32)
    again = OnnxModel(retrained[name].model_path).predict_proba_up(X32)
    assert np.max(np.abs(committed - again)) <= 1e-6
    assert ((committed > 0.52) == (again > 0.52)).all()


@pytest.mark.parametrize("name", NAMES)
def test_committed_model_when_retrained_then_byte_identical_file_and_same_card(name, retrained):
    res = retrained[name]
    assert res.model_path.read_bytes() == (MODELS / f"{name}.onnx").read_bytes()
    committed = json.loads((MODELS / f"{name}.json").read_text())
    card = json.loads(res.card_path.read_text())
    for c in (committed, card):
        c.pop("train_command")
    assert card == committed


@pytest.mark.parametrize("name", NAMES)
def test_committed_card_when_read_then_sha256_matches_file_and_assets_pin(name):
    card = read_card(MODELS / f"{name}.json")
    actual = sha256_file(MODELS / f"{name}.onnx")
    assert card["sha256"] == actual
    assert load_assets(ROOT / "config" / "assets.yaml").models[name].sha256 == actual
    assert card["parity"]["passed"] is True


@pytest.mark.parametrize("name", NAMES)
def test_makefile_models_target_when_read_then_builds_each_card_from_the_same_spec(name):
    text = (ROOT / "Makefile").read_text()
    lines = [ln for ln in text.splitlines() if f"--out models/{name}.onnx" in ln]
    assert len(lines) == 1, f"Makefile target `models` must build models/{name}.onnx once"
    argv = shlex.split(re.sub(r"^\s*\$\(BIN\)/", "", lines[0]))
    opts = dict(zip(argv[2::2], argv[3::2], strict=False))
    spec = read_card(MODELS / f"{name}.json")["spec"]
    assert opts["--asset-class"] == spec["asset_class"]
    assert opts["--symbols"].split(",") == spec["symbols"]
    assert (opts.get("--start"), opts.get("--end")) == (spec["start"], spec["end"])
    assert opts.get("--source", "sample") == spec["source"]


def test_committed_models_when_listed_then_each_has_a_card_and_there_are_no_pickles():
    onnx_files = sorted(p.stem for p in MODELS.glob("*.onnx"))
    assert set(NAMES) <= set(onnx_files)
    assert onnx_files == sorted(p.stem for p in MODELS.glob("*.json"))
    assert not [p for p in MODELS.iterdir() if p.suffix in (".pkl", ".pickle", ".joblib")]
