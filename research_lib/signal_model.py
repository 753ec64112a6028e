"""The model protocol the paper loop speaks, and a base class with its defaults.

Every model the session runs (the router adapter, each rule baseline, the test stand-ins)
is a :class:`SignalModel`; subclass :class:`ModelBase` and write ``predict`` (and
``observe`` if the model keeps its own history). One conformance suite,
``tests/test_model_protocol.py``, runs the same checks over every implementation.

It sits low in the house (it imports nothing of the library at run time) so that the
baselines and :mod:`research_lib.paper.signals` can both build on it without a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .config import AssetsConfig


@runtime_checkable
class SignalModel(Protocol):
    """What the loop asks of a model, in the order it asks.

    * ``needs_features``: True if ``predict`` reads the feature rows ``X`` (the router);
      False if the model reads closes only (a rule baseline): the loop then computes no
      feature and passes ``X`` with no columns.
    * ``warm(symbols)``: once, before the first bar: load and check what is needed (a
      model that cannot serve raises :class:`research_lib.errors.ModelError`).
    * ``observe(rows, close)``: every new bar that passed the gate, in time order, warm-up
      and resume re-feed included: ``rows`` index the session's symbols.
    * ``predict(symbols, X)``: one prediction per symbol, in order, with the fields of
      :class:`research_lib.baselines.Prediction`; a probability in [0, 1], or None (no
      signal) with a ``fallback_reason``.
    * ``set_assets(assets, classes)``: assets.yaml was reloaded: the routes (``assets``,
      with ``--model`` forced) and the symbols' asset classes from now on.
    """

    needs_features: bool

    def warm(self, symbols: Sequence[str]) -> None: ...

    def observe(self, rows: np.ndarray, close: np.ndarray) -> None: ...

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Any]: ...

    def set_assets(self, assets: AssetsConfig, classes: dict[str, str]) -> None: ...


class ModelBase:
    """The protocol's defaults: features wanted, nothing to warm, observe or reassign."""

    needs_features: bool = True

    def warm(self, symbols: Sequence[str]) -> None:
        return None

    def observe(self, rows: np.ndarray, close: np.ndarray) -> None:
        return None

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__}.predict")

    def set_assets(self, assets: AssetsConfig, classes: dict[str, str]) -> None:
        return None
