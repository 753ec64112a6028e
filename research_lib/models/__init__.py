"""Models: training, ONNX export and serving, parity, the registry and the router.

The paper loop needs only :class:`Router` (onnxruntime, no scikit-learn). Training and
parity import scikit-learn and skl2onnx when first used::

    from research_lib.models import Router, train_model, parity

(``train_model`` is :func:`research_lib.models.train.train`; the name ``train`` is the module.)
"""

from __future__ import annotations

from typing import Any

from .router import Prediction, Route, Router

__all__ = ["OnnxModel", "Prediction", "Route", "Router", "parity", "train_model"]


def __getattr__(name: str) -> Any:
    if name == "train_model":
        from .train import train

        return train
    if name == "parity":
        from .parity import parity

        return parity
    if name == "OnnxModel":
        from .onnx import OnnxModel

        return OnnxModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
