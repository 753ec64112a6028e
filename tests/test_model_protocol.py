"""One conformance suite for the model protocol (:class:`research_lib.signal_model.SignalModel`),
run over every implementation: the router adapter (over the shipped models and over the
test router stand-in), each rule baseline, and the test stand-in models. Like
scikit-learn's ``parametrize_with_checks``: each (model, check) pair is one test."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from research_lib.baselines import BASELINES, make_baseline
from research_lib.config import load_assets
from research_lib.features import N_FEATURES
from research_lib.paper.signals import RouterModel, make_model
from research_lib.signal_model import ModelBase, SignalModel
from tests.kit.paper import GOLDEN_CONFIG, FakeRouter, ScriptedModel
from tests.test_risk_invariants import StubModel

SYMBOLS = ["SPY", "BTC-USD"]
FIELDS = ("symbol", "asset_class", "model", "probability", "shadow_model",
          "shadow_probability", "fallback_reason")


def _assets():
    return load_assets(GOLDEN_CONFIG / "assets.yaml")


def _classes():
    a = _assets()
    return {s: a.classify(s) for s in SYMBOLS}


def _router():
    return make_model(None, SYMBOLS, _assets(), _classes())


def _stub():
    m = StubModel()
    m.probs = {"SPY": 0.7, "BTC-USD": None}
    return m


# every implementation in the library and the tests: name -> a fresh instance
MODELS: dict[str, Callable[[], SignalModel]] = {
    "router": _router,
    "router:FakeRouter": lambda: RouterModel(FakeRouter()),
    **{b: (lambda b=b: make_baseline(b, SYMBOLS, _classes())) for b in BASELINES},
    "tests:ScriptedModel": lambda: ScriptedModel(SYMBOLS, prob=lambda s, n, c: 0.25),
    "tests:StubModel": _stub,
}


def _bars(model: SignalModel, n: int = 30, seed: int = 0) -> np.ndarray:
    """Feed ``n`` bars of both symbols; the feature rows of the last one."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(SYMBOLS))
    close = np.array([400.0, 30000.0])
    for _ in range(n):
        close = close * np.exp(rng.normal(0, 0.01, len(SYMBOLS)))
        model.observe(rows, close)
    return rng.normal(0, 0.01, (len(SYMBOLS), N_FEATURES if model.needs_features else 0))


# ---------------------------------------------------------------------------- checks
def check_speaks_the_protocol(model: SignalModel) -> None:
    assert isinstance(model, SignalModel)
    assert isinstance(model, ModelBase)  # the defaults come from one base class
    assert isinstance(model.needs_features, bool)


def check_warm_then_predict_one_prediction_per_symbol_in_order(model: SignalModel) -> None:
    assert model.warm(SYMBOLS) is None
    X = _bars(model)
    out = model.predict(SYMBOLS, X)
    assert len(out) == len(SYMBOLS)
    for s, p in zip(SYMBOLS, out, strict=True):
        assert all(hasattr(p, f) for f in FIELDS), p
        assert p.symbol == s and isinstance(p.model, str) and p.model
        prob = p.probability
        if prob is not None:  # None: no signal (the loop records the reason, or NO_SIGNAL)
            assert isinstance(prob, float) and (math.isnan(prob) or 0.0 <= prob <= 1.0)


def check_predicts_a_subset_in_the_order_asked(model: SignalModel) -> None:
    X = _bars(model)
    out = model.predict(SYMBOLS[::-1], X[::-1])
    assert [p.symbol for p in out] == SYMBOLS[::-1]
    one = model.predict(SYMBOLS[1:], X[1:])
    assert [p.symbol for p in one] == SYMBOLS[1:]


def check_no_history_is_no_trade_signal_or_a_probability(model: SignalModel) -> None:
    """Before any bar a model answers too (fail closed: None, or a value in [0, 1])."""
    X = np.zeros((len(SYMBOLS), N_FEATURES if model.needs_features else 0))
    out = model.predict(SYMBOLS, X)
    assert len(out) == len(SYMBOLS)
    assert all(p.probability is None or 0.0 <= p.probability <= 1.0 for p in out)


def check_set_assets_on_reload_keeps_predicting(model: SignalModel) -> None:
    X = _bars(model)
    assert model.set_assets(_assets(), _classes()) is None
    assert len(model.predict(SYMBOLS, X)) == len(SYMBOLS)


def check_same_bars_same_predictions(model_factory: Callable[[], SignalModel]) -> None:
    a, b = model_factory(), model_factory()
    pa = a.predict(SYMBOLS, _bars(a, seed=7))
    pb = b.predict(SYMBOLS, _bars(b, seed=7))
    key = [(p.symbol, p.model, p.probability, p.fallback_reason) for p in pa]
    assert key == [(p.symbol, p.model, p.probability, p.fallback_reason) for p in pb]


CHECKS = [check_speaks_the_protocol,
          check_warm_then_predict_one_prediction_per_symbol_in_order,
          check_predicts_a_subset_in_the_order_asked,
          check_no_history_is_no_trade_signal_or_a_probability,
          check_set_assets_on_reload_keeps_predicting]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(MODELS))
def test_model_conforms(name, check):
    check(MODELS[name]())


@pytest.mark.parametrize("name", list(MODELS))
def test_model_is_deterministic(name):
    check_same_bars_same_predictions(MODELS[name])


def test_a_model_that_speaks_half_the_protocol_is_refused():
    class Half:
        needs_features = False

        def observe(self, rows, close):
            pass

        def predict(self, symbols, X):
            return []

    with pytest.raises(TypeError, match="ModelBase"):
        make_model(None, SYMBOLS, _assets(), _classes(), router=Half())
