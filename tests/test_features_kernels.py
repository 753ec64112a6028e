"""The row kernels FeatureState and build() share give numpy's own numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from research_lib.features import _mean_rows, _std_rows


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("width", [10, 14, 20, 50, 7, 128, 129])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_mean_and_std_when_computed_then_equal_numpy_bit_for_bit(width, seed):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(3, 1.5, (257, width))
    a[rng.random(a.shape) < 0.01] = np.nan
    a[5] = 1234.5  # a constant row: std exactly 0
    a[6] = np.inf
    with np.errstate(invalid="ignore"):
        assert np.array_equal(_bits(_mean_rows(a)), _bits(np.mean(a, axis=1)))
        assert np.array_equal(_bits(_std_rows(a)), _bits(np.std(a, axis=1)))
        assert np.array_equal(_bits(_std_rows(a, ddof=1)), _bits(np.std(a, axis=1, ddof=1)))
