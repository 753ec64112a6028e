"""The one test kit (NautilusTrader test_kit style): shared stubs here, session helpers in
tests.kit.paper, fault-injection helpers in tests.kit.crash."""

from __future__ import annotations

import pandas as pd


def make_bars(n: int = 80, start: str = "2020-01-01", freq: str = "B", seed: int = 0,
              price: float = 100.0) -> pd.DataFrame:
    """Synthetic OHLCV for unit tests only (labelled synthetic; never shipped as data)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    vol = rng.uniform(1e5, 2e5, n).round()
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol},
                      index=idx)
    df.attrs = {"symbol": "SYN", "served_as": "SYN", "proxy": False, "label": "SYN (synthetic)",
                "source": "synthetic", "adjustment": "synthetic"}
    return df
