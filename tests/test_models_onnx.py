"""ONNX: export, input checks, refused files, parity with scikit-learn, legacy conversion."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import set_external_data

from research_lib.cli import main
from research_lib.errors import ModelError
from research_lib.features import N_FEATURES
from research_lib.models.dataset import build_dataset, load_frames
from research_lib.models.onnx import (
    OnnxModel,
    UnsafeModelFileError,
    compare,
    export,
)
from research_lib.models.parity import parity
from research_lib.models.settings import PipelineSpec
from research_lib.models.train import make_estimator, sample_feature_rows

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """Real training rows: BTC-USD features and next-bar labels from the shipped sample."""
    frames, notes = load_frames(["BTC-USD"])
    ds = build_dataset(frames, horizon=1, dead_zone=0.001, notes=notes)
    return ds.X(ds.trainable), ds.y(ds.trainable)


@pytest.fixture(scope="module")
def heldout() -> np.ndarray:
    return sample_feature_rows()[0]


def fitted(kind: str, xy, **params):
    return make_estimator(PipelineSpec(kind, kind, params), seed=7).fit(*xy)


@pytest.fixture(scope="module")
def logistic_bytes(xy) -> bytes:
    return export(fitted("logistic", xy, C=0.1, max_iter=1000))


def test_export_when_logistic_then_float32_features_input_and_probabilities_output(logistic_bytes):
    m = onnx.load_model_from_string(logistic_bytes)
    (inp,) = m.graph.input
    assert inp.name == "features"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[1].dim_value == N_FEATURES
    assert [o.name for o in m.graph.output] == ["label", "probabilities"]
    assert not any(n.op_type == "ZipMap" for n in m.graph.node)
    assert {p.key for p in m.metadata_props} == {"research_lib.features"}


def test_export_when_same_pipeline_twice_then_identical_bytes(xy, logistic_bytes):
    again = export(fitted("logistic", xy, C=0.1, max_iter=1000))
    assert again == logistic_bytes


def test_onnx_model_when_float64_input_then_error_names_expected_and_got(tmp_path, logistic_bytes):
    path = tmp_path / "m.onnx"
    path.write_bytes(logistic_bytes)
    model = OnnxModel(path)
    with pytest.raises(
        ModelError, match=r"m\.onnx: input 'features' expected dtype float32, got float64"
    ):
        model.predict_proba_up(np.zeros((2, N_FEATURES)))


def test_onnx_model_when_wrong_width_then_error_names_expected_shape(tmp_path, logistic_bytes):
    path = tmp_path / "m.onnx"
    path.write_bytes(logistic_bytes)
    with pytest.raises(ModelError, match=r"expected shape \(n, 11\), got \(2, 7\)"):
        OnnxModel(path).predict_proba_up(np.zeros((2, 7), dtype=np.float32))
    with pytest.raises(ModelError, match=r"expected shape \(n, 11\), got \(11,\)"):
        OnnxModel(path).predict_proba_up(np.zeros(11, dtype=np.float32))


def test_onnx_model_when_model_has_other_width_then_refused_at_load(tmp_path, xy):
    X, y = xy
    path = tmp_path / "narrow.onnx"
    path.write_bytes(export(fitted("logistic", (X[:, :7], y)), n_features=7, feature_names=None))
    with pytest.raises(ModelError, match="model expects 7 features, the feature spec has 11"):
        OnnxModel(path)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.02])
def test_onnx_model_when_file_truncated_then_model_error_names_file(tmp_path, logistic_bytes, cut):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(logistic_bytes[: int(len(logistic_bytes) * cut)])
    with pytest.raises(ModelError, match=r"truncated\.onnx"):
        OnnxModel(path)


def test_onnx_model_when_file_is_not_onnx_then_model_error_names_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelError, match=r"notes\.onnx"):
        OnnxModel(path)


def test_onnx_model_when_checksum_differs_then_refused_before_parsing(tmp_path, logistic_bytes):
    path = tmp_path / "m.onnx"
    path.write_bytes(logistic_bytes)
    with pytest.raises(ModelError, match="does not match the expected"):
        OnnxModel(path, expected_sha256="0" * 64)


def _matmul_softmax() -> onnx.ModelProto:
    """A hand-built classifier whose weights are an initializer (skl2onnx's linear models
    keep theirs in node attributes), so they can be moved to an external file."""
    from onnx import helper, numpy_helper

    w = np.linspace(-1, 1, N_FEATURES * 2, dtype=np.float32).reshape(N_FEATURES, 2)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "matmul_softmax",
        [helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, [None, N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_onnx_model_when_external_data_points_outside_folder_then_refused(tmp_path, location):
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 256)
    m = _matmul_softmax()
    t = m.graph.initializer[0]
    set_external_data(t, location=location, offset=0, length=N_FEATURES * 2 * 4)
    t.data_location = onnx.TensorProto.EXTERNAL
    t.ClearField("raw_data")
    t.ClearField("float_data")
    path = folder / "ext.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(
        UnsafeModelFileError, match=r"ext\.onnx: tensor 'W' .* outside the model's folder"
    ):
        OnnxModel(path)


def test_onnx_model_when_external_data_inside_folder_then_loads_and_agrees(tmp_path, heldout):
    m = _matmul_softmax()
    inline = tmp_path / "inline.onnx"
    inline.write_bytes(m.SerializeToString())
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        m, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    assert (tmp_path / "weights.bin").is_file()
    assert (
        onnx.load_model(str(path), load_external_data=False).graph.initializer[0].data_location == 1
    )
    X32 = heldout[:100].astype(np.float32)
    np.testing.assert_array_equal(
        OnnxModel(path).predict_proba_up(X32), OnnxModel(inline).predict_proba_up(X32)
    )


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("logistic", {"C": 0.1, "max_iter": 1000}),
        ("random_forest", {"n_estimators": 30, "max_depth": 6, "min_samples_leaf": 50}),
    ],
)
def test_compare_when_parity_pipeline_then_passes_within_1e5_and_all_decisions_agree(
    tmp_path, xy, heldout, kind, params
):
    pipe = fitted(kind, xy, **params)
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(export(pipe))
    report = compare(pipe, OnnxModel(path), heldout, threshold=0.52)
    assert report.passed
    assert report.max_abs_diff <= 1e-5
    assert report.share_identical_decisions == 1.0
    assert report.rows == len(heldout)


def test_compare_when_hist_gradient_boosting_then_parity_fails_honestly(tmp_path, xy, heldout):
    pipe = fitted("hist_gradient_boosting", xy, max_iter=50)
    path = tmp_path / "hgb.onnx"
    path.write_bytes(export(pipe))
    report = compare(pipe, OnnxModel(path), heldout, threshold=0.52)
    assert not report.passed
    assert report.max_abs_diff > 1e-5
    assert "parity FAILED" in report.summary()


@pytest.mark.parametrize("name", ["universal_v1", "equities_v1", "crypto_v1"])
def test_parity_cli_when_committed_model_then_passes(name, capsys):
    code = main(["parity", str(MODELS / f"{name}.onnx"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["passed"] is True
    assert report["max_abs_diff"] <= 1e-5
    assert report["share_identical_decisions"] == 1.0
    assert report["card_sha256_matches"] is True
    assert report["rows"] > 1000


def test_parity_when_card_missing_then_error_says_card_needed(tmp_path):
    shutil.copy(MODELS / "crypto_v1.onnx", tmp_path / "orphan.onnx")
    with pytest.raises(ModelError, match="no model card at .*orphan.json"):
        parity(tmp_path / "orphan.onnx")


class _RunsCodeWhenLoaded:
    """Unpickling this touches a marker file: what any pickle could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_convert_legacy_when_not_trusted_then_refuses_and_never_loads_it(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    pkl = tmp_path / "legacy.pkl"
    pkl.write_bytes(pickle.dumps(_RunsCodeWhenLoaded(marker)))
    out = tmp_path / "models" / "legacy.onnx"
    code = main(["convert-legacy", str(pkl), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to load" in err and "runs arbitrary code when it is loaded" in err
    assert "--trust" in err
    assert not marker.exists()
    assert not out.exists()


def test_convert_legacy_when_trusted_then_onnx_card_and_parity_written(tmp_path, xy, capsys):
    pkl = tmp_path / "legacy.pkl"
    pkl.write_bytes(pickle.dumps(fitted("logistic", xy, C=1.0, max_iter=500)))
    out = tmp_path / "models" / "legacy_v1.onnx"
    code = main(["convert-legacy", str(pkl), "--out", str(out), "--trust"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "parity PASSED" in text
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["origin"]["kind"] == "legacy_pickle"
    assert card["parity"]["passed"] is True
    assert card["sha256"] == OnnxModel(out).sha256
    with pytest.raises(ModelError, match="converted from a pickle"):
        parity(out)


def test_convert_legacy_when_trusted_but_not_a_classifier_then_error(tmp_path):
    pkl = tmp_path / "not_a_model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    assert main(["convert-legacy", str(pkl), "--out", str(tmp_path / "x.onnx"), "--trust"]) == 2
