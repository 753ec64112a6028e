"""Signals: the model protocol (:mod:`research_lib.signal_model`, re-exported here), the
router adapter, ``make_model``/``force_model``, checked predictions and the signal rule."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..baselines import BASELINES, Prediction, make_baseline
from ..config import (
    AssetsConfig,
)
from ..errors import (
    ConfigError,
    ModelError,
)
from ..signal_model import ModelBase, SignalModel
from ..telemetry import (
    get_logger,
    log_event,
)

log = get_logger("session")


# ------------------------------------------------------------------------- models
class RouterModel(ModelBase):
    """Adapts :class:`research_lib.models.router.Router` (or a stand-in with the same
    ``predict``/``set_assets``) to the loop."""

    needs_features = True

    def __init__(self, router: Any) -> None:
        self.router = router

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Any]:
        return self.router.predict(list(symbols), X)

    def set_assets(self, assets: AssetsConfig, classes: dict[str, str]) -> None:
        """The router routes by ``assets`` (a stand-in router may have nothing to reload)."""
        if hasattr(self.router, "set_assets"):
            self.router.set_assets(assets)

    def warm(self, symbols: Sequence[str]) -> None:
        """Load and check the models the current routes need before the first bar, so the
        first decision does not pay for it. A symbol left with no usable model (its class
        model and the universal fallback both missing, truncated, tampered with or outside
        models/) stops the start: nothing runs half-configured."""
        if not hasattr(self.router, "routes"):
            return
        bad = [r for r in self.router.routes(list(symbols)) if not r.checksum_ok]
        if bad:
            raise ModelError(
                "cannot start the session: "
                + "; ".join(f"{r.symbol} (class {r.asset_class}, model {r.model}): "
                            f"{r.fallback_reason}" for r in bad)
                + "; fix config/assets.yaml or the file in models/ (`research-lib routing` "
                "shows every route)")


def force_model(assets: AssetsConfig, name: str) -> AssetsConfig:
    """The assets config with every class (and the universal slot) mapped to ``name``."""
    if name not in assets.models:
        raise ConfigError(
            f"--model {name!r} is neither a registry model ({', '.join(sorted(assets.models))}) "
            f"nor a baseline ({', '.join(BASELINES)})"
        )
    from ..model_intervals import MODEL_INTERVALS

    every = tuple((k, name) for k in MODEL_INTERVALS)  # any interval (its card must agree)
    return dataclasses.replace(
        assets, universal_model=name, universal_intervals=every,
        classes=tuple(dataclasses.replace(c, model=name, intervals=every)
                      for c in assets.classes),
    )


def model_assets_for(assets: AssetsConfig, model: str | None) -> AssetsConfig:
    """The assets config the session decides with: a forced registry model mapped to every
    class, else the config as it is (the router's own map; a rule baseline reads no route).
    Set-up and hot reload both use it, so the checksums a resume compares are the models
    actually used."""
    if model and not model.startswith("baseline:"):
        return force_model(assets, model)
    return assets


def make_model(model: str | None, symbols: Sequence[str], assets: AssetsConfig,
               classes: dict[str, str], router: Any = None,
               flag: str | None = None, interval: str | None = None) -> SignalModel:
    """The session's model: a rule baseline, a model object given (``router``), or the
    registry's router (forced to ``model`` when named; ``flag``: its routing mode, None
    for ``FLAG_ASSET_SPECIFIC_MODELS`` at each decision), which refuses a model whose card
    records another bar interval than ``interval``."""
    if model is not None and model.startswith("baseline:"):
        return make_baseline(model, symbols, classes)  # type: ignore[return-value]
    if isinstance(router, SignalModel):
        return router  # already speaks the loop's protocol (a stand-in model in tests)
    if router is not None and hasattr(router, "observe") and hasattr(router, "needs_features"):
        raise TypeError(f"{type(router).__name__} speaks part of the model protocol: subclass "
                        "research_lib.signal_model.ModelBase for the rest (warm, set_assets)")
    if router is None:
        from ..config import models_dir
        from ..models.router import Router  # serving path: onnxruntime, never sklearn

        a = force_model(assets, model) if model else assets
        router = Router(assets=a, models_dir=models_dir(), mode=flag, interval=interval)
    return RouterModel(router)



def _probability_problem(value: Any) -> str | None:
    """Why ``value`` is not a probability (a finite real number in [0, 1]), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        return f"{value!r} is a {type(value).__name__}, not a number"
    v = float(value)
    if not math.isfinite(v):
        return None  # non-finite: no signal already (warm-up, NaN input)
    if not 0.0 <= v <= 1.0:
        return f"{v!r} is outside [0, 1]"
    return None


def checked_prediction(pr: Any, symbol: str, asset_class: str, label: str) -> Any:
    """A model's prediction for ``symbol`` with every probability checked: one that is not
    a number in [0, 1] (or not a number at all) becomes no signal, with the reason
    ``MODEL_OUTPUT_INVALID: ...`` recorded as the decision's reason; never traded. A
    shadow probability out of range is dropped the same way (it is recorded only)."""
    if pr is None:
        return pr
    prob = getattr(pr, "probability", None)
    shadow = getattr(pr, "shadow_probability", None)
    if shadow is None and (prob is None or (type(prob) is float and (0.0 <= prob <= 1.0
                                                                     or prob != prob))):
        return pr  # the usual case, cheaply: a probability, None or NaN (no signal)
    bad, bad_shadow = _probability_problem(prob), _probability_problem(shadow)
    model = getattr(pr, "model", label)
    why = getattr(pr, "fallback_reason", None)
    if bad is None and bad_shadow is None:
        if all(v is None or isinstance(v, float) for v in (prob, shadow)):
            return pr
        # np.float32 (ONNX), np.int64, ...: a plain float, or SQLite stores
        # its bytes as a BLOB in a REAL column
        return Prediction(symbol, getattr(pr, "asset_class", asset_class), model,
                          None if prob is None else float(prob),
                          getattr(pr, "shadow_model", None),
                          None if shadow is None else float(shadow), why)
    if bad is not None:
        why = f"MODEL_OUTPUT_INVALID: model {model} gave probability {bad}; no signal"
        log_event(log, "model_output_invalid", level=40, symbol=symbol, model=model,
                  probability=repr(prob))
    return Prediction(symbol, getattr(pr, "asset_class", asset_class), model,
                      None if bad is not None else prob, getattr(pr, "shadow_model", None),
                      None if bad_shadow is not None else shadow, why)


def signal_target(p: float, long_threshold: float, short_threshold: float,
                  target_weight: float, allow_short: bool) -> float | None:
    """p > long -> +target_weight; p < short -> 0 (or -target_weight); else ``None`` (hold)."""
    if p > long_threshold:
        return target_weight
    if p < short_threshold:
        return -target_weight if allow_short else 0.0
    return None

