"""Registry: config/assets.yaml entries checked against models/ (keys, paths, checksums)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from research_lib.config import parse_assets
from research_lib.errors import ConfigError, ModelError, RegistryError
from research_lib.models.onnx import UnsafeModelFileError
from research_lib.models.registry import check, load_registry, model_path, validate

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_assets(models: dict, **extra) -> dict:
    data = {
        "universal_model": "universal_v1",
        "classes": {
            "crypto": {"patterns": ["*-USD"], "calendar": "24/7", "model": "crypto_v1"},
            "equities": {"patterns": ["*"], "calendar": "XNYS", "model": "universal_v1"},
        },
        "models": models,
    }
    data.update(extra)
    return data


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    for n in ("universal_v1", "crypto_v1"):
        shutil.copy(MODELS / f"{n}.onnx", d / f"{n}.onnx")
    return d


def pinned(folder: Path) -> dict:
    return {
        n: {"path": f"{n}.onnx", "sha256": sha(folder / f"{n}.onnx")}
        for n in ("universal_v1", "crypto_v1")
    }


def test_shipped_registry_when_loaded_then_every_model_present_and_pinned():
    assets = load_registry(ROOT / "config" / "assets.yaml", MODELS)
    statuses = validate(assets, MODELS)
    assert {n: s.state for n, s in statuses.items()} == {
        "universal_v1": "ok",
        "crypto_v1": "ok",
        "equities_v1": "ok",
        "options_v1": "ok",
        # the 1m models (a model per interval), trained on the intraday sample
        "universal_1m_v1": "ok",
        "crypto_1m_v1": "ok",
        "equities_1m_v1": "ok",
    }


def test_assets_when_unknown_top_level_key_then_error_names_it(folder):
    with pytest.raises(ConfigError, match="unknown key 'modles'"):
        parse_assets(raw_assets(pinned(folder), modles={}))


def test_assets_when_unknown_model_key_then_error_names_models_key(folder):
    models = pinned(folder)
    models["crypto_v1"]["checksum"] = "abc"
    with pytest.raises(ConfigError, match=r"unknown key models\.crypto_v1\.checksum"):
        parse_assets(raw_assets(models))


def test_assets_when_class_has_no_model_then_error_names_class(folder):
    data = raw_assets(pinned(folder))
    del data["classes"]["crypto"]["model"]
    with pytest.raises(ConfigError, match=r"classes\.crypto has no model"):
        parse_assets(data)


def test_assets_when_class_names_unknown_model_then_error_names_class(folder):
    data = raw_assets(pinned(folder))
    data["classes"]["crypto"]["model"] = "crypto_v9"
    with pytest.raises(
        ConfigError, match=r"classes\.crypto\.model 'crypto_v9' is not under models"
    ):
        parse_assets(data)


@pytest.mark.parametrize(
    "bad",
    ["../outside.onnx", "/etc/passwd", "sub/../../x.onnx", "C:\\models\\x.onnx", "..\\x.onnx"],
)
def test_assets_when_path_escapes_models_then_registry_error_names_key(folder, bad):
    models = pinned(folder)
    models["crypto_v1"]["path"] = bad
    with pytest.raises(RegistryError, match=r"models\.crypto_v1\.path .*refused"):
        parse_assets(raw_assets(models))


def test_registry_when_symlink_points_outside_models_then_refused_naming_key(folder, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(MODELS / "crypto_v1.onnx", outside)
    (folder / "crypto_v1.onnx").unlink()
    (folder / "crypto_v1.onnx").symlink_to(outside)
    models = pinned(folder)  # even with the right checksum
    assets = parse_assets(raw_assets(models))
    with pytest.raises(UnsafeModelFileError, match=r"models\.crypto_v1\.path .*outside"):
        model_path(assets, "crypto_v1", folder)
    with pytest.raises(RegistryError, match=r"models\.crypto_v1\.path"):
        validate(assets, folder)
    assert isinstance(UnsafeModelFileError("x"), ModelError)  # catchable as either


def test_registry_when_symlink_stays_inside_models_then_accepted(folder):
    (folder / "crypto_latest.onnx").symlink_to(folder / "crypto_v1.onnx")
    models = pinned(folder)
    models["crypto_v1"]["path"] = "crypto_latest.onnx"
    assets = parse_assets(raw_assets(models))
    assert check(assets, "crypto_v1", folder).state == "ok"


def test_registry_when_checksum_wrong_then_error_names_key_and_both_digests(folder):
    models = pinned(folder)
    models["crypto_v1"]["sha256"] = "0" * 64
    assets = parse_assets(raw_assets(models))
    st = check(assets, "crypto_v1", folder)
    assert st.state == "mismatch" and st.checksum == "MISMATCH"
    with pytest.raises(RegistryError, match=r"models\.crypto_v1\.sha256 mismatch.*0{64}"):
        validate(assets, folder)


def test_registry_when_checksum_malformed_then_error_names_key(folder):
    models = pinned(folder)
    models["crypto_v1"]["sha256"] = "ABC"
    with pytest.raises(ConfigError, match=r"models\.crypto_v1\.sha256 must be 64 lowercase hex"):
        parse_assets(raw_assets(models))


def test_registry_when_existing_file_not_pinned_then_strict_error_names_key(folder):
    models = pinned(folder)
    del models["crypto_v1"]["sha256"]
    assets = parse_assets(raw_assets(models))
    assert validate(assets, folder, strict=False)["crypto_v1"].state == "unpinned"
    with pytest.raises(RegistryError, match=r"models\.crypto_v1\.sha256 is not set"):
        validate(assets, folder)


def test_registry_when_file_missing_then_reported_not_raised(folder):
    (folder / "crypto_v1.onnx").unlink()
    models = {
        "universal_v1": {"path": "universal_v1.onnx", "sha256": sha(folder / "universal_v1.onnx")},
        "crypto_v1": {"path": "crypto_v1.onnx"},
    }
    assets = parse_assets(raw_assets(models))
    st = validate(assets, folder)["crypto_v1"]
    assert st.state == "missing"
    assert st.problem == "model file models/crypto_v1.onnx missing"


def test_load_registry_when_yaml_has_unknown_key_then_registry_error_names_file_and_key(tmp_path):
    p = tmp_path / "assets.yaml"
    p.write_text(
        "universal_model: universal_v1\n"
        "classes:\n  equities: {patterns: ['*'], model: universal_v1, colour: red}\n"
        "models:\n  universal_v1: {path: universal_v1.onnx}\n"
    )
    with pytest.raises(RegistryError, match=r"assets\.yaml.*unknown key classes\.equities\.colour"):
        load_registry(p, tmp_path)


def test_load_registry_when_path_escapes_in_yaml_then_refused(tmp_path):
    p = tmp_path / "assets.yaml"
    p.write_text(
        "universal_model: universal_v1\n"
        "classes:\n  equities: {patterns: ['*'], model: universal_v1}\n"
        "models:\n  universal_v1: {path: ../../etc/model.onnx}\n"
    )
    with pytest.raises(
        RegistryError, match=r"models\.universal_v1\.path '\.\./\.\./etc/model\.onnx'"
    ):
        load_registry(p, tmp_path)
