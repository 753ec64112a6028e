"""Rule baselines that trade like any model: ``baseline:buy_and_hold``, ``baseline:sma_cross``.

They consume bars (closes), not features, but answer ``predict(symbols, X)`` with the same
:class:`Prediction` fields as :class:`research_lib.models.router.Router`, with a
probability-like signal: 1.0 (long) or 0.0 (flat), ``None`` while there is too little
history (no trade: fail closed).

* ``baseline:buy_and_hold``: 1.0 once a symbol has a close.
* ``baseline:sma_cross``: 1.0 when SMA(10) > SMA(20) of closes, else 0.0; ``None`` until 20
  closes exist. Long-only. :func:`sma_cross_signal` is the same rule over a whole series,
  for tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .signal_model import ModelBase

BASELINES = ("baseline:buy_and_hold", "baseline:sma_cross")
SMA_FAST = 10
SMA_SLOW = 20


@dataclass(frozen=True, slots=True)
class Prediction:
    """Same fields as ``research_lib.models.router.Prediction``."""

    symbol: str
    asset_class: str
    model: str
    probability: float | None
    shadow_model: str | None = None
    shadow_probability: float | None = None
    fallback_reason: str | None = None


class _Baseline(ModelBase):
    name = ""
    needs_features = False
    window = 1

    def __init__(self, symbols: Sequence[str], asset_classes: dict[str, str] | None = None):
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.asset_classes = dict(asset_classes or {})
        self.closes = np.full((len(self.symbols), self.window), np.nan)
        self.count = np.zeros(len(self.symbols), dtype=np.int64)

    def observe(self, rows: np.ndarray, close: np.ndarray) -> None:
        """Append one close for each symbol index in ``rows``."""
        C = self.closes[rows]
        C[:, :-1] = C[:, 1:]
        C[:, -1] = close
        self.closes[rows] = C
        self.count[rows] += 1

    def set_asset_classes(self, asset_classes: dict[str, str]) -> None:
        self.asset_classes = dict(asset_classes)

    def set_assets(self, assets: Any, classes: dict[str, str]) -> None:
        """assets.yaml reloaded: a rule reads no route, only the symbols' classes."""
        self.set_asset_classes(classes)

    def _signal(self, i: int) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch(self, close: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """The rule over one symbol's whole series of closes (the fast path): after close
        ``t`` the same value as ``_signal`` after observing closes ``0..t``; NaN: none."""
        raise NotImplementedError

    def _signals(self, rows: list[int]) -> list[float | None]:
        """``_signal`` for many symbol indices; subclasses do it in one pass."""
        return [self._signal(i) for i in rows]

    def predict(self, symbols: Sequence[str], X: np.ndarray | None = None) -> list[Prediction]:
        index, classes, name = self.index, self.asset_classes, self.name
        probs = self._signals([index[s] for s in symbols])
        return [Prediction(s, classes.get(s, ""), name, p, None, None,
                           None if p is not None else "BASELINE_WARMUP")
                for s, p in zip(symbols, probs, strict=True)]


class BuyAndHold(_Baseline):
    name = "baseline:buy_and_hold"

    def _signal(self, i: int) -> float | None:
        return 1.0 if self.count[i] > 0 and np.isfinite(self.closes[i, -1]) else None

    def _signals(self, rows: list[int]) -> list[float | None]:
        ok = (self.count[rows] > 0) & np.isfinite(self.closes[rows, -1])
        return [1.0 if k else None for k in ok.tolist()]

    def batch(self, close: np.ndarray) -> np.ndarray:
        c = np.asarray(close, dtype=np.float64)
        return np.where(np.isfinite(c), 1.0, np.nan)


class SmaCross(_Baseline):
    name = "baseline:sma_cross"
    window = SMA_SLOW

    def _signal(self, i: int) -> float | None:
        if self.count[i] < SMA_SLOW:
            return None
        c = self.closes[i]
        fast = float(np.mean(c[-SMA_FAST:]))
        slow = float(np.mean(c))
        if not (np.isfinite(fast) and np.isfinite(slow)):
            return None
        return 1.0 if fast > slow else 0.0

    def _signals(self, rows: list[int]) -> list[float | None]:
        """All rows at once, with the same numbers as ``_signal``: each mean is a reduction
        over one C-contiguous row of the same length (the summation order of a 1-D mean)."""
        if len(rows) < 4:
            return [self._signal(i) for i in rows]
        C = self.closes[rows]  # a copy: C-contiguous rows
        fast = np.mean(np.ascontiguousarray(C[:, -SMA_FAST:]), axis=1)
        slow = np.mean(C, axis=1)
        ok = (self.count[rows] >= SMA_SLOW) & np.isfinite(fast) & np.isfinite(slow)
        up = fast > slow
        return [(1.0 if u else 0.0) if k else None
                for k, u in zip(ok.tolist(), up.tolist(), strict=True)]

    def batch(self, close: np.ndarray) -> np.ndarray:
        """Each window's means as ``_signals`` takes them (a reduction over one C-contiguous
        row of the same length), so the same floats and the same verdicts."""
        c = np.ascontiguousarray(close, dtype=np.float64)
        out = np.full(len(c), np.nan)
        if len(c) >= SMA_SLOW:
            W = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(c, SMA_SLOW))
            fast = np.mean(np.ascontiguousarray(W[:, -SMA_FAST:]), axis=1)
            slow = np.mean(W, axis=1)
            ok = np.isfinite(fast) & np.isfinite(slow)
            out[SMA_SLOW - 1:] = np.where(ok, (fast > slow).astype(np.float64), np.nan)
        return out


def make_baseline(name: str, symbols: Sequence[str],
                  asset_classes: dict[str, str] | None = None) -> _Baseline:
    if name == BuyAndHold.name:
        return BuyAndHold(symbols, asset_classes)
    if name == SmaCross.name:
        return SmaCross(symbols, asset_classes)
    from .errors import ConfigError

    raise ConfigError(f"--model {name!r} is not a baseline; known: {', '.join(BASELINES)}")


def sma_cross_signal(close: np.ndarray) -> np.ndarray:
    """The SMA(10)/SMA(20) rule over a whole close series: 1.0, 0.0, or NaN (warm-up)
    (:meth:`SmaCross.batch`)."""
    return SmaCross([]).batch(close)
