"""Features: batch == incremental bit for bit, causal (no lookahead), deterministic."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.data import load, sample_symbols
from research_lib.features import (
    FEATURES,
    WARMUP,
    FeatureState,
    build,
    replay_incremental,
)
from tests.kit import make_bars


@pytest.fixture(scope="module")
def sample_frames() -> dict[str, pd.DataFrame]:
    return load(sample_symbols())


def test_batch_and_incremental_when_run_over_every_sample_symbol_then_bit_identical(sample_frames):
    for sym, df in sample_frames.items():
        batch = build(df).to_numpy()
        inc = replay_incremental(df).to_numpy()
        assert batch.shape == (len(df), len(FEATURES))
        same = (batch == inc) | (np.isnan(batch) & np.isnan(inc))
        assert same.all(), f"{sym}: first mismatch at row {np.argwhere(~same)[0]}"
        assert np.isfinite(batch[WARMUP:]).mean() > 0.95, f"{sym}: mostly NaN after warm-up"


def test_multi_symbol_state_when_bars_interleave_then_equals_single_symbol_runs(sample_frames):
    a, b = sample_frames["^GSPC"].iloc[:300], sample_frames["BTC-USD"].iloc[:400]
    union = a.index.union(b.index)
    st = FeatureState(2)
    got = {0: [], 1: []}
    for ts in union:
        rows, bars = [], []
        for k, df in enumerate((a, b)):
            if ts in df.index:
                rows.append(k)
                bars.append(df.loc[ts])
        out = st.update(rows, [ts.day_of_week] * len(rows),
                        np.array([x["high"] for x in bars]), np.array([x["low"] for x in bars]),
                        np.array([x["close"] for x in bars]), np.array([x["volume"] for x in bars]))
        for k, row in zip(rows, out, strict=True):
            got[k].append(row)
    for k, df in enumerate((a, b)):
        np.testing.assert_array_equal(np.array(got[k]), build(df).to_numpy())


def test_features_when_warmup_incomplete_then_nan_and_after_defined():
    df = make_bars(WARMUP + 5)
    f = build(df)
    assert f.iloc[: WARMUP - 1].isna().all().all()
    assert f.iloc[WARMUP - 1 :].notna().all().all()


def test_nan_close_when_in_window_then_row_is_nan_until_it_leaves():
    df = make_bars(200)
    df.iloc[100, df.columns.get_loc("close")] = np.nan
    f = build(df)
    assert f.iloc[100:150].isna().all().all()  # the window of 50 closes holds the NaN
    assert f.iloc[150:].notna().all().all()


def assert_causal(builder: Callable[[pd.DataFrame], pd.DataFrame], history: pd.DataFrame,
                  cuts: list[int], rng: np.random.Generator) -> None:
    """For each cut t: change every bar after t, then delete them; rows <= t must not move."""
    base = builder(history).to_numpy()
    for t in cuts:
        changed = history.copy()
        noise = rng.lognormal(0, 0.2, size=(len(history) - t - 1, 1))
        changed.iloc[t + 1 :, :4] = changed.iloc[t + 1 :, :4].to_numpy() * noise
        changed.iloc[t + 1 :, 4] = changed.iloc[t + 1 :, 4].to_numpy() * 3.0
        a = builder(changed).to_numpy()[: t + 1]
        b = builder(history.iloc[: t + 1]).to_numpy()
        for got in (a, b):
            same = (got == base[: t + 1]) | (np.isnan(got) & np.isnan(base[: t + 1]))
            assert same.all(), f"lookahead: features at or before bar {t} changed"


def test_features_when_future_bars_changed_or_deleted_then_past_unchanged(sample_frames):
    rng = np.random.default_rng(20261123)
    for sym in ("^GSPC", "BTC-USD", "GOOG"):
        df = sample_frames[sym].iloc[:1200]
        cuts = sorted(rng.choice(np.arange(WARMUP, len(df) - 2), size=8, replace=False).tolist())
        assert_causal(build, df, cuts, rng)


def test_leakage_check_when_builder_peeks_ahead_then_fails():
    def leaky(df: pd.DataFrame) -> pd.DataFrame:
        f = build(df)
        f["ret_1"] = f["ret_1"].shift(-1)  # uses bar t+1: the bug the test must catch
        return f

    df = make_bars(200)
    with pytest.raises(AssertionError, match="lookahead"):
        assert_causal(leaky, df, [120], np.random.default_rng(0))


def test_batch_equals_incremental_check_when_builder_off_by_one_then_fails():
    df = make_bars(120)
    broken = build(df).shift(1)
    inc = replay_incremental(df)
    assert not np.array_equal(broken.to_numpy(), inc.to_numpy(), equal_nan=True)


def test_build_when_called_then_input_frame_unchanged():
    df = make_bars(100)
    before = df.copy()
    build(df)
    pd.testing.assert_frame_equal(df, before)


def _features_digest_in_tz(tz: str, out: Path) -> str:
    env = {**os.environ, "TZ": tz}
    subprocess.run([sys.executable, "-m", "research_lib.cli", "features", "--symbols",
                    "SPY,BTC-USD", "--out", str(out)], check=True, env=env,
                   capture_output=True)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_features_cli_when_machine_timezone_differs_then_bytes_identical(tmp_path: Path):
    a = _features_digest_in_tz("UTC", tmp_path / "a.csv")
    b = _features_digest_in_tz("Asia/Tokyo", tmp_path / "b.csv")
    c = _features_digest_in_tz("America/Los_Angeles", tmp_path / "c.csv")
    assert a == b == c


def test_features_cli_when_parquet_then_readable_matrix_with_proxy_column(tmp_path: Path):
    out = tmp_path / "f.parquet"
    proc = subprocess.run([sys.executable, "-m", "research_lib.cli", "features", "--symbols",
                           "SPY,ETH-USD", "--out", str(out)], capture_output=True, text=True,
                          check=True)
    m = pd.read_parquet(out)
    assert list(m.columns[:3]) == ["timestamp", "symbol", "served_as"]
    assert set(m["symbol"]) == {"SPY", "ETH-USD"}
    assert set(m.loc[m["symbol"] == "SPY", "served_as"]) == {"^GSPC"}
    assert "proxy" in proc.stdout
    assert list(m.columns[3:]) == list(FEATURES)


def test_features_cli_when_bad_suffix_then_error_names_flag(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "research_lib.cli", "features", "--symbols",
                           "SPY", "--out", str(tmp_path / "f.txt")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--out" in proc.stderr
