"""ONNX: export (skl2onnx), serving (onnxruntime) and comparison with scikit-learn.

* :func:`export` turns a fitted pipeline into ONNX bytes: one float32 input ``features``
  of shape ``(None, n_features)``, outputs ``label`` and ``probabilities`` (no ZipMap),
  the feature names in the model's metadata. Deterministic: the same pipeline gives the
  same bytes.
* :class:`OnnxModel` loads one file: checksum (when given), external data kept inside the
  model's folder, ``onnx.checker``, one single-threaded deterministic session, and checks
  the input name, shape and dtype before every run.
* :func:`compare` runs a fitted pipeline and an :class:`OnnxModel` on the same rows
  (a :class:`ParityReport`).

The workflows built on these live beside it: :mod:`.parity` (``research-lib parity``:
rebuild from the card, compare on held-out rows) and :mod:`.legacy` (``convert-legacy``,
the one place a pickle is loaded, behind ``--trust``). This module imports neither the
model card nor training, and loads no pickle.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import features
from ..errors import ModelError, RegistryError

INPUT_NAME = "features"
PROBA_OUTPUT = "probabilities"
META_FEATURES = "research_lib.features"
PARITY_TOLERANCE = 1e-5


class UnsafeModelFileError(RegistryError, ModelError):
    """Raised when a model file, or external data it references, lies outside its folder
    (``..``, an absolute path, or a symlink pointing elsewhere)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------ export
def _final_estimator(pipeline: Any) -> Any:
    return pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline


def export(
    pipeline: Any,
    n_features: int = features.N_FEATURES,
    *,
    opset: int = 17,
    ml_opset: int = 3,
    name: str = "research_lib_model",
    feature_names: tuple[str, ...] | None = features.FEATURES,
) -> bytes:
    """ONNX bytes for a fitted binary classifier (classes 0 and 1), float32 input."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    classes = getattr(pipeline, "classes_", None)
    if classes is None or [int(c) for c in classes] != [0, 1]:
        raise ModelError(
            f"export needs a fitted binary classifier with classes [0, 1], got classes {classes!r}"
        )
    n_in = getattr(pipeline, "n_features_in_", n_features)
    if n_in != n_features:
        raise ModelError(f"pipeline was fitted on {n_in} features, expected {n_features}")
    final = _final_estimator(pipeline)
    try:
        model = to_onnx(
            pipeline,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(final): {"zipmap": False}},
            target_opset={"": opset, "ai.onnx.ml": ml_opset},
            name=name,
        )
    except Exception as exc:  # skl2onnx raises many types
        raise ModelError(f"skl2onnx could not convert {type(pipeline).__name__}: {exc}") from exc
    if feature_names is not None:
        entry = model.metadata_props.add()
        entry.key = META_FEATURES
        entry.value = ",".join(feature_names)
    return model.SerializeToString()


def opset_of(model_bytes: bytes) -> dict[str, int]:
    import onnx

    m = onnx.load_model_from_string(model_bytes)
    return {(o.domain or "ai.onnx"): int(o.version) for o in m.opset_import}


# ------------------------------------------------------------------------- serve
def _session_options():
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.use_deterministic_compute = True
    so.log_severity_level = 3
    return so


def _check_external_data(model: Any, path: Path) -> bool:
    """Refuse external data outside the model's folder; True if the model has any."""
    from onnx.external_data_helper import _get_all_tensors

    folder = path.parent.resolve()
    found = False
    for t in _get_all_tensors(model):
        if t.data_location != 1:  # onnx.TensorProto.EXTERNAL
            continue
        found = True
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = (folder / loc).resolve()
        if (
            not loc
            or Path(loc).is_absolute()
            or ".." in Path(loc).parts
            or not target.is_relative_to(folder)
        ):
            raise UnsafeModelFileError(
                f"{path}: tensor {t.name!r} references external data {loc!r} outside the "
                f"model's folder {folder}; refused (copy the data next to the model)"
            )
    return found


class OnnxModel:
    """One ONNX binary classifier served by onnxruntime, single-threaded.

    ``OnnxModel(path)`` reads the file once; with ``expected_sha256`` the bytes must match
    (checked before parsing). A truncated or corrupt file is a :class:`ModelError` naming it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        expected_sha256: str | None = None,
        data: bytes | None = None,
        n_features: int | None = features.N_FEATURES,
    ) -> None:
        self.path = Path(path)
        if data is None:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                raise ModelError(f"model file {self.path} missing") from None
            except OSError as exc:
                raise ModelError(f"model file {self.path} unreadable: {exc}") from exc
        self.sha256 = sha256_bytes(data)
        if expected_sha256 is not None and self.sha256 != expected_sha256:
            raise ModelError(
                f"{self.path}: sha256 {self.sha256} does not match the expected "
                f"{expected_sha256}; the file changed since it was pinned"
            )
        self.session = self._load(data)
        self._check_signature(n_features)

    def _load(self, data: bytes):
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError

        if not data:
            raise ModelError(f"{self.path}: empty file, not an ONNX model")
        try:
            model = onnx.load_model_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{self.path}: not a valid ONNX file (truncated or corrupt): {exc}"
            ) from None
        if _check_external_data(model, self.path):
            from onnx.external_data_helper import load_external_data_for_model

            try:
                load_external_data_for_model(model, str(self.path.parent))
            except (OSError, ValueError) as exc:
                raise ModelError(f"{self.path}: external data unreadable: {exc}") from None
            data = model.SerializeToString()
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx.checker.ValidationError and friends
            raise ModelError(
                f"{self.path}: fails onnx.checker (corrupt or truncated): {exc}"
            ) from None
        self.metadata = {p.key: p.value for p in model.metadata_props}
        self.opset = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
        try:
            return ort.InferenceSession(
                data, _session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{self.path}: onnxruntime cannot load it: {exc}") from None

    def _check_signature(self, n_features: int | None) -> None:
        ins = self.session.get_inputs()
        if len(ins) != 1:
            raise ModelError(
                f"{self.path}: expected one input {INPUT_NAME!r}, got {[i.name for i in ins]}"
            )
        inp = ins[0]
        if inp.type != "tensor(float)":
            raise ModelError(
                f"{self.path}: input {inp.name!r} must be tensor(float), got {inp.type}"
            )
        if len(inp.shape) != 2:
            raise ModelError(
                f"{self.path}: input must be 2-D (rows, features), got shape {inp.shape}"
            )
        width = inp.shape[1]
        if not isinstance(width, int):
            raise ModelError(f"{self.path}: input width must be fixed, got {width!r}")
        if n_features is not None and width != n_features:
            raise ModelError(
                f"{self.path}: model expects {width} features, the feature spec has {n_features}"
            )
        names = self.metadata.get(META_FEATURES)
        if names is not None and n_features == features.N_FEATURES:
            if tuple(names.split(",")) != features.FEATURES:
                raise ModelError(
                    f"{self.path}: trained on features {names.split(',')}, this package builds "
                    f"{list(features.FEATURES)}; retrain it"
                )
        outs = [o.name for o in self.session.get_outputs()]
        if PROBA_OUTPUT not in outs:
            raise ModelError(
                f"{self.path}: no {PROBA_OUTPUT!r} output (got {outs}); export with zipmap=False"
            )
        self.input_name = inp.name
        self.n_features = width

    def check_input(self, X32: Any) -> None:
        """Name, shape and dtype checks; errors say what was expected and what came."""
        if not isinstance(X32, np.ndarray):
            raise ModelError(
                f"{self.path}: input {self.input_name!r} must be a numpy array, got {type(X32).__name__}"
            )
        if X32.dtype != np.float32:
            raise ModelError(
                f"{self.path}: input {self.input_name!r} expected dtype float32, got {X32.dtype}"
            )
        if X32.ndim != 2 or X32.shape[1] != self.n_features:
            raise ModelError(
                f"{self.path}: input {self.input_name!r} expected shape (n, {self.n_features}), "
                f"got {X32.shape}"
            )

    def predict_proba_up(self, X32: np.ndarray) -> np.ndarray:
        """p(up) for each row, float32, shape ``(n,)``. Non-finite outputs are returned as
        they are (the router turns them into no signal); a row that is not a probability
        pair (each in [0, 1], summing to 1 within ``PAIR_TOLERANCE``) is NaN too, its
        reason in ``self.output_problems`` (row -> text, the last call's)."""
        self.output_problems: dict[int, str] = {}
        self.check_input(X32)
        if X32.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        one = X32.shape[0] == 1
        # onnxruntime's tree ensembles sum a lone row in another order than a batch (the
        # last float32 bit differs on ~3% of rows): a lone row goes as a batch of two, so a
        # row's probability never depends on how many rows came with it (per-step and
        # whole-clock inference give the same decisions, bit for bit; tests/test_batch_inference.py)
        feed = np.repeat(X32, 2, axis=0) if one else np.ascontiguousarray(X32)
        try:
            proba = self.session.run([PROBA_OUTPUT], {self.input_name: feed})[0]
            if one and proba.ndim == 2 and proba.shape[0] == 2:
                proba = proba[:1]
        except Exception as exc:
            raise ModelError(f"{self.path}: inference failed: {exc}") from None
        if proba.ndim != 2 or proba.shape != (X32.shape[0], 2):
            raise ModelError(
                f"{self.path}: output {PROBA_OUTPUT!r} expected shape ({X32.shape[0]}, 2), "
                f"got {proba.shape}"
            )
        up = proba[:, 1]
        bad = pair_problems(proba)
        if bad:
            up = up.copy()
            for r, why in bad.items():
                up[r] = np.nan
                self.output_problems[r] = f"{self.path.name}: {why}"
        return up

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, sha256={self.sha256[:12]})"


# --------------------------------------------------------------- output checks
PAIR_TOLERANCE = 1e-3  # |p(down) + p(up) - 1| above this: not a probability pair


def pair_problems(proba: np.ndarray) -> dict[int, str]:
    """Rows of an ``(n, 2)`` output that are not a probability pair: a finite value outside
    [0, 1], or two finite values not summing to 1. Non-finite rows are left to the caller
    (no signal already)."""
    p = np.asarray(proba, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(p).all(axis=1)
        out_of_range = finite & ((p < 0) | (p > 1)).any(axis=1)
        unsummed = finite & ~out_of_range & (np.abs(p.sum(axis=1) - 1.0) > PAIR_TOLERANCE)
    out: dict[int, str] = {}
    for r in np.flatnonzero(out_of_range):
        out[int(r)] = (f"output {PROBA_OUTPUT!r} row {int(r)} = [{p[r, 0]:g}, {p[r, 1]:g}] is "
                       "not a probability pair (a value outside [0, 1])")
    for r in np.flatnonzero(unsummed):
        out[int(r)] = (f"output {PROBA_OUTPUT!r} row {int(r)} = [{p[r, 0]:g}, {p[r, 1]:g}] is "
                       f"not a probability pair (sums to {p[r].sum():g}, not 1)")
    return out


# ------------------------------------------------------------------------ parity
@dataclass(frozen=True)
class ParityReport:
    model: str
    rows: int
    max_abs_diff: float
    share_identical_decisions: float
    threshold: float
    tolerance: float
    passed: bool
    rows_from: str = ""
    sha256: str = ""
    card_sha256_matches: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        card = ""
        if self.card_sha256_matches is False:
            card = "; WARNING: the file's sha256 differs from its card"
        return (
            f"parity {verdict}: {self.model}: {self.rows} held-out rows, max |p_sklearn - "
            f"p_onnx| = {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}), identical "
            f"decisions at p > {self.threshold:g}: {self.share_identical_decisions:.2%}{card}"
        )


@dataclass(frozen=True)
class ParityCheck:
    """A parity report with the two probability vectors behind it (for figures)."""

    report: ParityReport
    p_sklearn: np.ndarray
    p_onnx: np.ndarray


def compare_detail(
    pipeline: Any,
    model: OnnxModel,
    X: np.ndarray,
    *,
    threshold: float = 0.5,
    tolerance: float = PARITY_TOLERANCE,
    rows_from: str = "",
) -> ParityCheck:
    """scikit-learn and onnxruntime on the same float32 rows (sklearn sees the float32
    values cast back, exactly what ONNX sees)."""
    X32 = np.asarray(X, dtype=np.float32)
    X32 = X32[np.isfinite(X32).all(axis=1)]
    if len(X32) == 0:
        raise ModelError("parity needs at least one finite row")
    p_sk = pipeline.predict_proba(X32.astype(np.float64))[:, 1]
    p_ox = model.predict_proba_up(X32).astype(np.float64)
    diff = np.abs(p_sk - p_ox)
    max_diff = float(np.max(diff)) if np.isfinite(diff).all() else float("inf")
    same = float(np.mean((p_sk > threshold) == (p_ox > threshold)))
    report = ParityReport(
        model=str(model.path),
        rows=int(len(X32)),
        max_abs_diff=max_diff,
        share_identical_decisions=same,
        threshold=threshold,
        tolerance=tolerance,
        passed=bool(max_diff <= tolerance and same == 1.0),
        rows_from=rows_from,
        sha256=model.sha256,
    )
    return ParityCheck(report, p_sk, p_ox)


def compare(pipeline: Any, model: OnnxModel, X: np.ndarray, **kwargs: Any) -> ParityReport:
    """:func:`compare_detail` without the vectors."""
    return compare_detail(pipeline, model, X, **kwargs).report
