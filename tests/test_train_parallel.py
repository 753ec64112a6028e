"""Training in parallel (issue 15): the walk-forward folds and several models fan out
through the sweep backends (joblib loky processes, Dask, serial) and give byte-identical
models and cards; a random forest's n_jobs follows --jobs without changing a bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.models.fanout import card_files, train_from_cards
from research_lib.models.settings import PipelineSpec
from research_lib.models.train import make_estimator, train

ROOT = Path(__file__).resolve().parents[1]
CRYPTO = dict(asset_class="crypto", symbols="BTC-USD,ETH-USD,LTC-USD", start="2016-01-01",
              end="2018-12-31")


def _bytes(onnx: Path) -> tuple[bytes, bytes]:
    return onnx.read_bytes(), onnx.with_suffix(".json").read_bytes()


def _train_moved(tmp_path: Path, tag: str, **kw) -> tuple[bytes, bytes]:
    """Train into the same path every time (the card records --out), keep the bytes."""
    out = tmp_path / "m" / "crypto_rf.onnx"
    res = train(**CRYPTO, out=out, **kw)
    assert res.parity is not None and res.parity.passed
    got = _bytes(out)
    shutil.move(out.parent, tmp_path / tag)
    return got


@pytest.mark.parametrize("pipeline", ["logistic", "random_forest"])
def test_train_when_folds_fan_out_then_same_model_and_card_bytes_as_serial(tmp_path, pipeline):
    serial = _train_moved(tmp_path, "serial", pipeline=pipeline, backend="serial")
    local = _train_moved(tmp_path, "local", pipeline=pipeline, backend="local", jobs=2)
    assert local == serial
    if pipeline == "random_forest":  # the forest's own threads: the same trees
        threads = _train_moved(tmp_path, "threads", pipeline=pipeline, backend="serial",
                               jobs=2)
        assert threads == serial
    assert b'"walk_forward"' in serial[1] and len(serial[0]) > 500


def test_train_on_dask_local_cluster_then_same_bytes_as_serial(tmp_path):
    serial = _train_moved(tmp_path, "serial", backend="serial")
    dask = _train_moved(tmp_path, "dask", backend="dask", jobs=2)
    assert dask == serial


def test_make_estimator_when_jobs_given_then_the_forest_uses_them():
    rf = PipelineSpec("random_forest", "random_forest", {"n_estimators": 5})
    assert make_estimator(rf, 7, 3).n_jobs == 3
    assert make_estimator(rf, 7).n_jobs == 1


def test_train_from_cards_when_parallel_then_same_bytes_as_serial(tmp_path):
    cards = [ROOT / "models" / "crypto_v1.json", ROOT / "models" / "equities_v1.json"]
    out = tmp_path / "out"
    serial = train_from_cards(cards, out, backend="serial")
    assert [r["name"] for r in serial] == ["crypto_v1", "equities_v1"]
    want = {p.name: p.read_bytes() for p in out.iterdir()}
    shutil.move(out, tmp_path / "serial")
    rc = main(["train", "--from-cards", *map(str, cards), "--out-dir", str(out),
               "--jobs", "2", "--backend", "local"])
    assert rc == 0
    got = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(got) == ["crypto_v1.json", "crypto_v1.onnx", "equities_v1.json",
                           "equities_v1.onnx"]
    assert got == want
    # a retrain from a card is the committed model (same settings, seed and data)
    assert got["crypto_v1.onnx"] == (ROOT / "models" / "crypto_v1.onnx").read_bytes()


def test_train_from_cards_when_misused_then_refused_naming_the_option(tmp_path, capsys):
    with pytest.raises(ConfigError, match="is where the card crypto_v1.json is read from"):
        train_from_cards([ROOT / "models" / "crypto_v1.json"], ROOT / "models")
    with pytest.raises(ConfigError, match="--from-cards .*nowhere.*not a folder"):
        card_files([tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="--jobs must be a whole number"):
        train(**CRYPTO, jobs=0)
    assert main(["train", "--from-cards", str(ROOT / "models")]) == 2
    assert "--from-cards needs --out-dir" in capsys.readouterr().err
    assert main(["train", "--from-cards", str(ROOT / "models"), "--out-dir",
                 str(tmp_path / "o"), "--seed", "3"]) == 2
    assert "--seed cannot go with --from-cards" in capsys.readouterr().err
    assert main(["train", "--symbols", "BTC-USD", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--asset-class required" in capsys.readouterr().err
