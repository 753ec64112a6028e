"""Declared, causal, scale-free features, built two ways with identical numbers.

* :func:`build` turns a whole history into a feature frame (training, research).
* :class:`FeatureState` takes one new bar per symbol (live and replay), vectorised across
  symbols, with small numpy ring buffers: no pandas, no rebuilt rolling windows.
* :func:`write_features` writes the matrix of several symbols to parquet or csv.

The value at bar t uses bars <= t only. Every feature is a ratio, a return or a z-score
(scale-free, so float32 ONNX inputs keep their precision). Both paths use only
+ - * / sqrt and reductions over C-contiguous rows of the same length in the same
order, so they agree bit for bit; ``tests/test_features.py`` checks every value.
Rows before ``WARMUP`` bars, or whose window holds a NaN, are NaN: no signal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError

FEATURES: tuple[str, ...] = (
    "ret_1",  # close / previous close - 1
    "ret_5",  # 5-bar simple return
    "ret_20",  # 20-bar simple return
    "vol_20",  # sample std of 1-bar returns over 20 bars
    "rsi_14",  # Cutler RSI over 14 price changes, centred: in [-0.5, 0.5]
    "dist_sma_10",  # close / SMA(10) - 1
    "dist_sma_50",  # close / SMA(50) - 1
    "range_1",  # (high - low) / close
    "volume_z_20",  # (volume - mean20) / std20 (population); 0 when std is 0
    "dow_sin",  # day of week (UTC) on the unit circle
    "dow_cos",
)
N_FEATURES = len(FEATURES)
WINDOW = 50  # closes kept per symbol (SMA 50 is the longest look-back)
VOL_WINDOW = 20
WARMUP = WINDOW  # a row is defined once WINDOW closes exist

_DOW = np.arange(7, dtype=np.float64) * (2.0 * np.pi / 7.0)
DOW_SIN = np.sin(_DOW)
DOW_COS = np.cos(_DOW)
_DOW_SIN_COS = np.column_stack([DOW_SIN, DOW_COS])


def _rows(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


# np.mean / np.std along rows without their Python layers (numpy's own _mean and _var,
# step for step: add.reduce, true_divide by the count as intp, square, sqrt), so the numbers
# are the ones np.mean / np.std give, bit for bit (tests/test_features.py checks).
def _mean_rows(a: np.ndarray) -> np.ndarray:
    s = np.add.reduce(a, axis=1)
    return np.true_divide(s, np.intp(a.shape[1]), out=s)


def _std_rows(a: np.ndarray, ddof: int = 0) -> np.ndarray:
    n = a.shape[1]
    m = np.add.reduce(a, axis=1, keepdims=True)
    np.true_divide(m, np.intp(n), out=m)
    x = np.subtract(a, m)
    np.square(x, out=x)
    v = np.add.reduce(x, axis=1)
    np.true_divide(v, np.intp(max(n - ddof, 0)), out=v)
    return np.sqrt(v, out=v)


_RET_LAGS = [-2, -6, -21]  # ret_1, ret_5, ret_20: close against these closes of the window


def _from_windows(
    C: np.ndarray,  # (k, WINDOW) closes, oldest first
    V: np.ndarray,  # (k, VOL_WINDOW) volumes
    high: np.ndarray,
    low: np.ndarray,
    dow: np.ndarray,
) -> np.ndarray:
    """The one formula both paths call, on windows laid out the same way.

    Reductions of equal length run together (gains and losses of the 14 changes; the
    deviations of the 20 returns and of the 20 volumes), each row still reduced alone and
    in the same order, so the numbers are those of one reduction per feature."""
    k = C.shape[0]
    out = np.empty((k, N_FEATURES), dtype=np.float64)
    c = C[:, -1]
    out[:, 0:3] = c[:, None] / C[:, _RET_LAGS] - 1.0
    r = C[:, -VOL_WINDOW:] / C[:, -VOL_WINDOW - 1 : -1] - 1.0  # new array: C-contiguous
    d = C[:, -14:] - C[:, -15:-1]
    # rows k.. are the changes negated: where(-d > 0, -d, 0) == where(d < 0, -d, 0)
    dd = np.concatenate((d, np.negative(d)))
    gl = np.add.reduce(np.where(dd > 0.0, dd, 0.0), axis=1)
    gain, loss = gl[:k], gl[k:]
    tot = gain + loss
    # std of the returns (ddof=1) and of the volumes (ddof=0): _std_rows's steps on both
    W = np.concatenate((r, V))
    m = np.add.reduce(W, axis=1, keepdims=True)
    np.true_divide(m, np.intp(VOL_WINDOW), out=m)
    x = np.subtract(W, m)
    np.square(x, out=x)
    var = np.add.reduce(x, axis=1)
    np.true_divide(var[:k], np.intp(VOL_WINDOW - 1), out=var[:k])
    np.true_divide(var[k:], np.intp(VOL_WINDOW), out=var[k:])
    np.sqrt(var, out=var)
    out[:, 3] = var[:k]
    vm, vs = m[k:, 0], var[k:]  # np.mean(V, axis=1), np.std(V, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = tot > 0.0
        out[:, 4] = np.where(pos, gain / np.where(pos, tot, 1.0) - 0.5, 0.0)
        out[:, 5] = c / _mean_rows(_rows(C[:, -10:])) - 1.0
        out[:, 6] = c / _mean_rows(_rows(C)) - 1.0
        out[:, 7] = (high - low) / c
        spread = vs > 0.0
        z = (V[:, -1] - vm) / np.where(spread, vs, 1.0)
        out[:, 8] = np.where(spread, z, 0.0)
    out[:, 9:11] = _DOW_SIN_COS[dow]
    # a NaN close or high/low reaches a feature (SMA 50 spans the whole window, the range
    # reads both), a NaN volume may not (volume_z is 0 when the std is not > 0)
    bad = np.isnan(V).any(axis=1) | ~np.isfinite(out).all(axis=1)
    out[bad] = np.nan
    return out


def _windows(x: np.ndarray, w: int) -> np.ndarray:
    """(T - w + 1, w) C-contiguous trailing windows of ``x``."""
    return _rows(np.lib.stride_tricks.sliding_window_view(x, w))


def build(history: pd.DataFrame) -> pd.DataFrame:
    """Features for every bar of one symbol's history (``open, high, low, close, volume``
    on a UTC index). Returns a float64 frame on the same index; rows before ``WARMUP``
    are NaN. The input is not changed."""
    missing = [c for c in ("high", "low", "close", "volume") if c not in history.columns]
    if missing:
        raise ValueError(f"features.build: history lacks columns {missing}; "
                         "expected open, high, low, close, volume")
    out = build_arrays(_dayofweek(history.index), history["high"].to_numpy(np.float64),
                       history["low"].to_numpy(np.float64),
                       history["close"].to_numpy(dtype=np.float64),
                       history["volume"].to_numpy(dtype=np.float64))
    return pd.DataFrame(out, index=history.index.copy(), columns=list(FEATURES))


def build_arrays(dow: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 volume: np.ndarray) -> np.ndarray:
    """:func:`build` on one symbol's bars as arrays (the fast replay's batch pass): rows
    before ``WARMUP`` are NaN, the others what :class:`FeatureState` gives bar by bar."""
    n = len(close)
    out = np.full((n, N_FEATURES), np.nan)
    if n >= WINDOW:
        C = _windows(np.asarray(close, dtype=np.float64), WINDOW)  # row j ends at bar j + WINDOW - 1
        V = _windows(np.asarray(volume, dtype=np.float64), VOL_WINDOW)[WINDOW - VOL_WINDOW:]
        sl = slice(WINDOW - 1, n)
        out[sl] = _from_windows(C, V, np.asarray(high, np.float64)[sl],
                                np.asarray(low, np.float64)[sl], np.asarray(dow, np.int64)[sl])
    return out


def _dayofweek(index: pd.Index) -> np.ndarray:
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC")
    return np.asarray(idx.day_of_week, dtype=np.int64)


def build_many(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long feature matrix (``timestamp, symbol, <features>``) for several symbols."""
    parts = []
    for sym in frames:
        f = build(frames[sym])
        f.insert(0, "symbol", sym)
        parts.append(f)
    out = pd.concat(parts)
    out.index.name = "timestamp"
    return out.reset_index()


@dataclass
class FeatureState:
    """Incremental features for ``n_symbols`` symbols, one new bar at a time.

    ``update(rows, dow, high, low, close, volume)`` appends one bar for each symbol index
    in ``rows`` and returns their feature rows, shape ``(len(rows), N_FEATURES)``.
    Memory is fixed (``WINDOW`` closes and ``VOL_WINDOW`` volumes per symbol), whatever
    the history length.
    """

    n_symbols: int = 1

    def __post_init__(self) -> None:
        self.closes = np.full((self.n_symbols, WINDOW), np.nan)
        self.volumes = np.full((self.n_symbols, VOL_WINDOW), np.nan)
        self.count = np.zeros(self.n_symbols, dtype=np.int64)
        self._warm = False  # every symbol has WARMUP bars

    def update(
        self,
        rows: np.ndarray | list[int],
        dow: np.ndarray | list[int],
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        C, V = self._push(rows, close, volume)
        out = _from_windows(
            C, V, np.asarray(high, np.float64), np.asarray(low, np.float64),
            np.asarray(dow, np.int64),
        )
        if not self._warm:  # counts only grow: once every symbol is warm, always warm
            out[self.count[rows] < WARMUP] = np.nan
            self._warm = bool(self.count.min() >= WARMUP)
        return out

    def push(self, rows: np.ndarray | list[int], close: np.ndarray, volume: np.ndarray) -> None:
        """Append one bar for each symbol index in ``rows`` without computing its features
        (the loop's rule baselines need none): the windows and counts move exactly as in
        :meth:`update`, so a later ``update`` gives the same numbers."""
        self._push(np.asarray(rows, dtype=np.int64), close, volume)

    def _push(self, rows: np.ndarray, close: np.ndarray,
              volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # each window drops its oldest value and takes the new one (new C-contiguous rows)
        C = np.concatenate((self.closes[rows, 1:],
                            np.asarray(close, dtype=np.float64).reshape(-1, 1)), axis=1)
        V = np.concatenate((self.volumes[rows, 1:],
                            np.asarray(volume, dtype=np.float64).reshape(-1, 1)), axis=1)
        self.closes[rows] = C
        self.volumes[rows] = V
        self.count[rows] += 1
        return C, V

    def update_one(self, row: int, ts: pd.Timestamp, bar: Mapping[str, float]) -> np.ndarray:
        """Convenience for one symbol and one bar; returns a 1-D feature row."""
        t = pd.Timestamp(ts)
        t = t.tz_convert("UTC") if t.tzinfo is not None else t
        return self.update(
            [row], [t.day_of_week], np.array([bar["high"]]), np.array([bar["low"]]),
            np.array([bar["close"]]), np.array([bar["volume"]]),
        )[0]


def replay_incremental(history: pd.DataFrame) -> pd.DataFrame:
    """Run :class:`FeatureState` bar by bar over one history (for tests and checks)."""
    st = FeatureState(1)
    dow = _dayofweek(history.index)
    h = history["high"].to_numpy(np.float64)
    lo = history["low"].to_numpy(np.float64)
    c = history["close"].to_numpy(np.float64)
    v = history["volume"].to_numpy(np.float64)
    out = np.empty((len(history), N_FEATURES))
    for i in range(len(history)):
        out[i] = st.update([0], dow[i : i + 1], h[i : i + 1], lo[i : i + 1], c[i : i + 1], v[i : i + 1])[0]
    return pd.DataFrame(out, index=history.index.copy(), columns=list(FEATURES))


# --------------------------------------------------------------- the matrix on disk
def write_features(symbols: list[str], source: str, start, end, out: str | Path,
                   interval: str = "1d") -> tuple[Path, list[str]]:
    """``research-lib features``: load ``symbols``, build the long feature matrix (with a
    ``served_as`` column) and write it to ``out`` (``.parquet`` or ``.csv``), atomically.
    Returns the path and the labels of what was served."""
    from .data import load
    from .data.sanity import refuse_bad_timeline
    from .project import resolve_path

    out = resolve_path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {str(out)!r} must end in .parquet or .csv")
    frames = load(symbols, source=source, start=start, end=end, interval=interval)
    refuse_bad_timeline(frames, interval)  # bars of another interval, or before 1971
    matrix = build_many(frames)
    matrix.insert(2, "served_as", matrix["symbol"].map({s: f.attrs["served_as"] for s, f in frames.items()}))
    # written beside it, then renamed over it: a failed write (a full disk) keeps the old file
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            matrix.to_parquet(tmp, index=False)
        else:
            matrix.to_csv(tmp, index=False, float_format="%.17g",
                          date_format="%Y-%m-%dT%H:%M:%S%z")
        os.replace(tmp, out)
    except OSError as exc:
        raise DataError(f"--out {str(out)!r}: cannot write it ({exc.strerror or exc}); any "
                        "previous file there is kept as it was") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out, [f.attrs.get("label", s) for s, f in frames.items()]
