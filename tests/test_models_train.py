"""Training: label, dataset, walk-forward with embargo, trading baselines, card, CLI errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.errors import ConfigError, UnknownSymbolError
from research_lib.features import FEATURES, WARMUP
from research_lib.models.card import read_card
from research_lib.models.dataset import build_dataset, labels, load_frames
from research_lib.models.evaluation import backtest, walk_forward_splits
from research_lib.models.settings import load_settings, settings_from_dict
from research_lib.models.train import train
from tests.kit import make_bars

CRYPTO = "BTC-USD,ETH-USD,LTC-USD"


@pytest.fixture(scope="module")
def crypto_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "crypto_test.onnx"
    return train("crypto", CRYPTO, out=out)


# ------------------------------------------------------------------------- label
def test_labels_when_move_inside_dead_zone_then_no_label_else_sign():
    close = pd.Series([100.0, 100.05, 101.0, 100.0, 100.0])
    fwd, lab = labels(close, horizon=1, dead_zone=0.001)
    # 100 -> 100.05 is +5 bps (dead zone), -> 101 up, -> 100 down, -> 100 flat (dead zone)
    assert lab.tolist()[:4] == [pytest.approx(v, nan_ok=True) for v in (np.nan, 1.0, 0.0, np.nan)]
    assert np.isnan(lab.iloc[-1]) and np.isnan(fwd.iloc[-1])


def test_labels_when_horizon_h_then_last_h_bars_have_no_label():
    close = pd.Series(np.linspace(100, 120, 30))
    fwd, lab = labels(close, horizon=5, dead_zone=0.0)
    assert lab.iloc[:-5].eq(1.0).all()
    assert lab.iloc[-5:].isna().all() and fwd.iloc[-5:].isna().all()
    assert fwd.iloc[0] == pytest.approx(close.iloc[5] / close.iloc[0] - 1)


def test_dataset_when_built_then_trainable_rows_have_complete_features_and_a_label():
    frames, notes = load_frames(["ETH-USD"])
    ds = build_dataset(frames, horizon=1, dead_zone=0.001, notes=notes)
    r = ds.rows
    t = r["trainable"].to_numpy()
    assert np.isfinite(r.loc[t, list(FEATURES)].to_numpy()).all()
    assert r.loc[t, "label"].isin([0.0, 1.0]).all()
    assert not t[: WARMUP - 1].any()  # warm-up rows have no features
    assert not t[-1]  # the last bar has no forward close
    counts = ds.label_counts()
    assert counts["up"] + counts["down"] == t.sum()
    assert counts["dead_zone"] > 0 and counts["no_forward_bar"] == 1


def test_dataset_when_built_then_input_frames_unchanged():
    frames, notes = load_frames(["LTC-USD"])
    before = frames["LTC-USD"].copy()
    build_dataset(frames, horizon=1, dead_zone=0.001, notes=notes)
    pd.testing.assert_frame_equal(frames["LTC-USD"], before)


# ------------------------------------------------------------------- walk-forward
def test_splits_when_built_then_every_train_label_ends_embargo_bars_before_test():
    frames, notes = load_frames(["BTC-USD", "ETH-USD"])
    ds = build_dataset(frames, horizon=3, dead_zone=0.001, notes=notes)
    folds = walk_forward_splits(ds, folds=4, initial_train_fraction=0.4, embargo=5)
    r = ds.rows
    for f in folds:
        for sym in ("BTC-USD", "ETH-USD"):
            m = (r["symbol"] == sym).to_numpy()
            test_bars = r.loc[m & f.test, "bar"]
            train_bars = r.loc[m & f.train, "bar"]
            if len(test_bars) and len(train_bars):
                assert train_bars.max() + 3 + 5 <= test_bars.min()
        assert r.loc[f.train, "timestamp"].max() < f.test_start
        assert not (f.train & f.test).any()
    starts = [f.test_start for f in folds]
    assert starts == sorted(starts)  # time-ordered, no shuffling
    train_sizes = [int(f.train.sum()) for f in folds]
    assert train_sizes == sorted(train_sizes)  # expanding window


# ------------------------------------------------------------------------ trading
def _oos(n: int = 10, p: float = 0.9, freq: str = "D") -> tuple[pd.DataFrame, dict]:
    idx = pd.date_range("2021-01-04", periods=n, freq=freq, tz="UTC")
    rets = np.array([0.01, -0.02, 0.03, 0.0, 0.01, -0.01, 0.02, 0.01, -0.03, 0.02][:n])
    oos = pd.DataFrame({"timestamp": idx, "symbol": "AAA", "p": p, "ret_next": rets})
    close = pd.Series(100 * np.cumprod(np.r_[1, 1 + rets[:-1]]), index=idx)
    return oos, {"AAA": close}


def test_backtest_when_always_long_then_model_equals_buy_and_hold_minus_entry_cost():
    oos, closes = _oos()
    res = backtest(
        oos, closes, threshold=0.5, cost_bps=10, periods_per_year=252, sma_fast=2, sma_slow=3,
        fill="close",
    )
    r = oos["ret_next"].to_numpy()
    expected = (1 + r[0] - 0.001) * np.prod(1 + r[1:]) - 1  # 10 bps entry cost on bar 1
    got = res.metrics["buy_and_hold"]["total_return"]
    assert got == pytest.approx(expected, rel=1e-4)
    assert res.metrics["model"]["total_return"] == got
    assert res.metrics["always_flat"]["total_return"] == 0.0
    assert res.metrics["always_flat"]["turnover"] == 0.0


def test_backtest_when_signal_below_threshold_then_flat_and_no_cost():
    oos, closes = _oos(p=0.3)
    res = backtest(
        oos, closes, threshold=0.5, cost_bps=10, periods_per_year=252, sma_fast=2, sma_slow=3,
        fill="close",
    )
    assert res.metrics["model"]["total_return"] == 0.0
    assert res.metrics["model"]["exposure"] == 0.0


def _with_opens(oos: pd.DataFrame, gaps: np.ndarray) -> pd.DataFrame:
    """The same bars with an open: close t -> open t+1 is ``gaps``, the rest of ret_next
    is earned open -> close."""
    out = oos.copy()
    out["gap_next"] = gaps
    out["intra_next"] = (1 + out["ret_next"]) / (1 + gaps) - 1
    return out


def _share_simulation(p: np.ndarray, ret: np.ndarray, gap: np.ndarray,
                      threshold: float) -> float:
    """A one-symbol paper account the plain way: decide at close t with p[t], size the
    whole equity in shares at close t, fill at open t+1, mark at close t+1 (no costs).
    Returns the total return."""
    cash, qty, close = 1.0, 0.0, 100.0
    for t in range(len(p)):
        equity = cash + qty * close
        target = equity / close if p[t] > threshold else 0.0  # sized at the decision
        cash -= (target - qty) * close * (1 + gap[t])  # filled at the next open
        qty = target
        close = close * (1 + ret[t])
    return cash + qty * close - 1.0


def test_backtest_when_filled_at_next_open_then_equals_a_share_simulation_of_the_broker():
    """Fills at the next open, as the paper broker fills: the walk-forward's model return
    equals a plain share-by-share simulation (sized at close t, filled at open t+1); the
    close fill (the old rule) gives another number."""
    oos, closes = _oos()
    gaps = np.array([0.004, -0.01, 0.02, 0.003, -0.004, 0.006, -0.01, 0.0, -0.02, 0.01])
    p = np.array([0.9, 0.9, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1])
    oos = _with_opens(oos.assign(p=p), gaps)
    kw = dict(threshold=0.5, cost_bps=0, periods_per_year=252, sma_fast=2, sma_slow=3)
    got = backtest(oos, closes, **kw)
    want = _share_simulation(p, oos["ret_next"].to_numpy(), gaps, 0.5)
    # the backtest holds each decided weight of the equity at every close (the same
    # constant-weight convention as close fills); the share account drifts between trades:
    # a second-order difference, well below what the fill rule changes
    assert got.metrics["model"]["total_return"] == pytest.approx(want, abs=1e-4)
    close_fill = backtest(oos, closes, fill="close", **kw).metrics["model"]["total_return"]
    assert abs(close_fill - want) > 1e-3


def test_backtest_when_next_open_and_always_long_then_only_the_first_gap_is_missed():
    oos, closes = _oos()
    gaps = np.full(10, 0.005)
    oos = _with_opens(oos, gaps)
    res = backtest(oos, closes, threshold=0.5, cost_bps=0, periods_per_year=252, sma_fast=2,
                   sma_slow=3)
    r = oos["ret_next"].to_numpy()
    intra0 = (1 + r[0]) / 1.005 - 1
    # bought at the first open: the first bar's gap is missed, every later bar is earned whole
    expected = (1 + 1.005 * intra0) * np.prod(1 + r[1:]) - 1
    assert res.metrics["buy_and_hold"]["total_return"] == pytest.approx(expected, rel=1e-4)


def test_backtest_when_next_open_then_a_new_position_misses_the_gap_and_an_exit_earns_it():
    oos, closes = _oos(n=3)
    gaps = np.array([0.02, -0.03, 0.01])
    p = np.array([0.9, 0.1, 0.1])  # long decided at bar 0, flat decided at bar 1
    oos = _with_opens(oos.assign(p=p), gaps)
    res = backtest(oos, closes, threshold=0.5, cost_bps=0, periods_per_year=252, sma_fast=2,
                   sma_slow=3)
    r = oos["ret_next"].to_numpy()
    intra0 = (1 + r[0]) / (1 + gaps[0]) - 1
    # bar 0 -> 1: bought at the open, earns open -> close on the weight sized at close 0;
    # bar 1 -> 2: still held until the exit fills at the next open: earns the gap
    expected = (1 + (1 + gaps[0]) * intra0) * (1 + gaps[1]) - 1
    assert res.metrics["model"]["total_return"] == pytest.approx(expected, rel=1e-5)
    close = backtest(oos, closes, threshold=0.5, cost_bps=0, periods_per_year=252, sma_fast=2,
                     sma_slow=3, fill="close")
    assert close.metrics["model"]["total_return"] == pytest.approx(r[0], rel=1e-5)


def test_backtest_when_next_open_fill_without_opens_then_error_names_the_columns():
    oos, closes = _oos()
    with pytest.raises(ValueError, match=r"gap_next.*intra_next.*fill='close'"):
        backtest(oos, closes, threshold=0.5, cost_bps=10, periods_per_year=252, sma_fast=2,
                 sma_slow=3)


def test_backtest_when_pooled_weekday_and_weekend_symbols_then_equity_held_over_weekend():
    a, ca = _oos(n=10, freq="D")  # trades every day
    b, cb = _oos(n=10, freq="B")  # weekdays only
    b["symbol"] = "BBB"
    res = backtest(
        pd.concat([a, b]),
        {"AAA": ca["AAA"], "BBB": cb["AAA"]},
        threshold=0.5,
        cost_bps=10,
        periods_per_year=365,
        sma_fast=2,
        sma_slow=3,
        fill="close",
    )
    # buy-and-hold enters each symbol once and never leaves: only the entry costs
    bh = res.returns["buy_and_hold"]
    assert bh.iloc[0] == pytest.approx(0.5 * 0.01 + 0.5 * 0.01 - 0.001)
    # Saturday 2021-01-09: AAA trades (-1%), BBB has no bar but is still held: no cost
    assert bh[pd.Timestamp("2021-01-09", tz="UTC")] == pytest.approx(0.5 * -0.01, abs=1e-15)
    # Monday 2021-01-11: both bars, no re-entry cost
    assert bh[pd.Timestamp("2021-01-11", tz="UTC")] == pytest.approx(
        0.5 * 0.01 + 0.5 * -0.01, abs=1e-15
    )
    # total |weight change|: 1.0 to enter, then 1.0 when AAA's range ends and BBB goes to
    # full weight; weekends add nothing
    assert res.metrics["buy_and_hold"]["turnover"] * res.metrics["buy_and_hold"]["years"] == (
        pytest.approx(2.0, rel=1e-3)
    )


# --------------------------------------------------------------------- settings
def test_settings_when_embargo_below_horizon_then_error_names_both():
    with pytest.raises(
        ConfigError, match=r"walk_forward\.embargo \(1\) must be >= label\.horizon \(5\)"
    ):
        settings_from_dict({"label": {"horizon": 5}, "walk_forward": {"embargo": 1}})


def test_settings_when_unknown_key_then_error_names_key():
    with pytest.raises(ConfigError, match=r"unknown key label\.deadzone"):
        settings_from_dict({"label": {"deadzone": 0.1}})


def test_settings_when_pipeline_sets_seed_itself_then_error():
    with pytest.raises(
        ConfigError, match=r"pipelines\.lr\.params\.random_state is set by the trainer"
    ):
        settings_from_dict(
            {"pipelines": {"lr": {"kind": "logistic", "params": {"random_state": 1}}}}
        )


def test_shipped_settings_when_loaded_then_defaults_are_parity_passing_pipelines():
    s = load_settings()
    assert {s.pipeline(None, c).kind for c in ("universal", "equities", "crypto")} <= {
        "logistic",
        "random_forest",
    }
    assert s.pipelines["hgb"].kind == "hist_gradient_boosting"


# ------------------------------------------------------------------------ train
def test_train_when_unknown_symbol_then_error_lists_available(tmp_path):
    with pytest.raises(
        UnknownSymbolError, match=r"unknown symbol 'DOGE-USD'; available: .*BTC-USD"
    ):
        train("crypto", "BTC-USD,DOGE-USD", out=tmp_path / "x.onnx")


def test_train_cli_when_unknown_symbol_then_exit_2_and_message(tmp_path, capsys):
    code = main(
        [
            "train",
            "--asset-class",
            "crypto",
            "--symbols",
            "DOGE-USD",
            "--out",
            str(tmp_path / "x.onnx"),
        ]
    )
    assert code == 2
    assert "unknown symbol 'DOGE-USD'; available:" in capsys.readouterr().err


def test_train_when_symbol_outside_asset_class_then_error_says_which_class(tmp_path):
    with pytest.raises(ConfigError, match=r"symbol \^GSPC is in class 'equities'.*not 'crypto'"):
        train("crypto", "BTC-USD,^GSPC", out=tmp_path / "x.onnx")


def test_train_when_same_prices_listed_twice_via_proxy_then_error(tmp_path):
    with pytest.raises(Exception, match="both served as"):
        train("equities", "SPY,^GSPC", out=tmp_path / "x.onnx")


def test_train_when_range_partly_outside_data_then_trimmed_and_noted(crypto_run, tmp_path):
    res = train("crypto", "ETH-USD", start="2016-01-01", end="2030-01-01", out=tmp_path / "e.onnx")
    notes = res.card["data"]["notes"]
    assert any(
        re.match(r"ETH-USD: asked from 2016-01-01, data starts 2017-11-09; trimmed", n)
        for n in notes
    )
    assert any("asked to 2030-01-01, data ends 2020-01-17; trimmed" in n for n in notes)
    assert res.card["data"]["span"] == {"first": "2017-11-09", "last": "2020-01-17"}


def test_train_when_proxy_symbols_then_card_says_spy_served_as_gspc_proxy(tmp_path):
    res = train("equities", "SPY,QQQ", start="2010-01-01", out=tmp_path / "eq.onnx")
    proxies = res.card["data"]["proxies"]
    assert any(p.startswith("SPY served as ^GSPC proxy") for p in proxies)
    assert any(p.startswith("QQQ served as ^IXIC proxy") for p in proxies)
    spy = res.card["data"]["symbols"][0]
    assert (spy["symbol"], spy["served_as"], spy["proxy"]) == ("SPY", "^GSPC", True)


def test_train_when_run_then_card_has_what_a_reader_needs(crypto_run):
    card = read_card(crypto_run.card_path)
    for key in (
        "asset_class",
        "data",
        "features",
        "label",
        "pipeline",
        "walk_forward",
        "trading",
        "verdict",
        "parity",
        "onnx",
        "versions",
        "sha256",
        "train_command",
    ):
        assert key in card, key
    assert card["asset_class"] == "crypto"
    assert [s["symbol"] for s in card["data"]["symbols"]] == CRYPTO.split(",")
    assert card["data"]["source"] == "sample"
    assert card["features"]["names"] == list(FEATURES)
    assert card["label"]["horizon"] >= 1 and card["label"]["dead_zone"] > 0
    assert card["pipeline"]["seed"] == 7 and card["pipeline"]["kind"] == "logistic"
    oos = card["walk_forward"]["out_of_sample"]
    assert {"accuracy", "log_loss", "auc"} <= set(oos)
    assert card["walk_forward"]["embargo_bars"] >= card["label"]["horizon"]
    assert set(card["trading"]["portfolio"]) == {
        "model",
        "buy_and_hold",
        "always_flat",
        "sma_crossover",
    }
    for m in card["trading"]["portfolio"].values():
        assert {"total_return", "sharpe", "max_drawdown", "turnover"} <= set(m)
    assert card["parity"]["passed"] is True
    assert card["onnx"]["opset"]["ai.onnx"] == 17
    assert {"scikit-learn", "skl2onnx", "onnx", "onnxruntime"} <= set(card["versions"])
    assert card["sha256"] == crypto_run.sha256


def test_card_when_written_then_no_wall_clock_time_in_it(crypto_run):
    text = crypto_run.card_path.read_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text)
    assert "run-" not in text


def test_train_when_run_twice_then_identical_onnx_bytes_and_card(crypto_run, tmp_path):
    again = train("crypto", CRYPTO, out=tmp_path / "crypto_test.onnx")
    assert again.model_path.read_bytes() == crypto_run.model_path.read_bytes()
    a = json.loads(crypto_run.card_path.read_text())
    b = json.loads(again.card_path.read_text())
    a.pop("train_command")
    b.pop("train_command")
    assert a == b


def test_verdict_when_model_does_not_beat_a_baseline_then_card_says_so(crypto_run):
    t = crypto_run.card["trading"]["portfolio"]
    verdict = crypto_run.card["verdict"]
    for name in ("buy_and_hold", "sma_crossover"):
        worse = (
            t["model"]["sharpe"] <= t[name]["sharpe"]
            and t["model"]["total_return"] <= t[name]["total_return"]
        )
        if worse:
            assert f"does NOT beat {name}" in verdict
    assert "standard error" in verdict


def test_train_cli_when_hgb_pipeline_then_writes_card_but_exits_1_parity_failed(tmp_path, capsys):
    out = tmp_path / "hgb.onnx"
    code = main(
        [
            "train",
            "--asset-class",
            "crypto",
            "--symbols",
            "ETH-USD",
            "--out",
            str(out),
            "--pipeline",
            "hgb",
        ]
    )
    text = capsys.readouterr().out
    assert code == 1
    assert "parity FAILED" in text and "do not serve it" in text
    assert read_card(out.with_suffix(".json"))["parity"]["passed"] is False


def test_train_when_synthetic_frame_too_short_then_error_names_symbol():
    short = make_bars(n=40)
    with pytest.raises(Exception, match="SYN: 40 bars is too few"):
        build_dataset({"SYN": short}, horizon=1, dead_zone=0.001)


def test_train_cli_when_out_not_onnx_then_error(tmp_path, capsys):
    code = main(
        [
            "train",
            "--asset-class",
            "crypto",
            "--symbols",
            "ETH-USD",
            "--out",
            str(tmp_path / "model.pkl"),
        ]
    )
    assert code == 2
    assert "--out must end in .onnx" in capsys.readouterr().err


def test_train_cli_when_default_out_path_is_models_then_not_touched_by_tests(tmp_path):
    # guards the suite itself: nothing above writes into the committed models/ folder
    models = Path(__file__).resolve().parents[1] / "models"
    assert not list(models.glob("*_test.onnx")) and not list(models.glob("hgb.onnx"))
