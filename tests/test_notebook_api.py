"""The notebook API: ``run_session(frames=..., model=..., flag=..., risk=...)`` with results
as DataFrames; each path and each bad input (issue 14)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import research_lib as rl
from research_lib.config_overrides import risk_loader
from research_lib.data import load
from research_lib.errors import ConfigError, DataError, ModelError
from research_lib.ledger_read import read_run
from research_lib.signal_model import ModelBase
from tests.kit.paper import quiet_switch, random_walk, write_config

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, **kw):
    kw.setdefault("run_dir", tmp_path / "runs")
    kw.setdefault("kill_switch", quiet_switch(tmp_path))
    kw.setdefault("log_file", False)
    return rl.run_session(**kw)


def no_run(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.fixture(scope="module")
def sample_frames():
    return load(["SPY", "QQQ"], start="2016-01-01", end="2017-06-30")


@pytest.fixture(scope="module")
def my_model(tmp_path_factory):
    """A model trained here, outside models/ and unknown to config/assets.yaml."""
    from research_lib.models.train import train

    out = tmp_path_factory.mktemp("mine") / "my_crypto.onnx"
    train("crypto", "BTC-USD", start="2015-01-01", end="2017-12-31", out=out)
    return out


# --------------------------------------------------------------------------- frames
def test_frames_when_one_dataframe_with_symbol_then_results_are_the_ledgers_dataframes(tmp_path):
    df = random_walk(300, seed=1, symbol="AAA")
    res = run(tmp_path, frames=df, symbol="AAA", model="baseline:sma_cross")
    assert res.summary["symbols"] == ["AAA"]
    tables = read_run(res.ledger_path)
    pd.testing.assert_frame_equal(res.equity, tables["equity"])
    pd.testing.assert_frame_equal(res.trades, tables["fills"])
    pd.testing.assert_frame_equal(res.positions, tables["positions"])
    pd.testing.assert_frame_equal(res.decisions, tables["decisions"])
    assert len(res.trades) == res.summary["fills"] > 0
    assert res.equity["equity"].iloc[-1] == pytest.approx(res.summary["final_equity"])
    assert isinstance(res.equity.index, pd.DatetimeIndex)


def test_frames_when_run_twice_then_identical_ledgers_apart_from_times_and_ids(tmp_path):
    from research_lib.ledger_read import deterministic_dump

    runs = [run(tmp_path / k, frames={"AAA": random_walk(200, seed=9, symbol="AAA")},
                model="baseline:sma_cross") for k in "ab"]
    a, b = (deterministic_dump(r.ledger_path) for r in runs)
    assert a == b
    spec = json.loads(dict(a["meta"])["spec"])
    assert spec["source"] == "frames:AAA"


def test_frames_when_a_dict_then_every_symbol_trades_and_symbols_picks_some(tmp_path,
                                                                            sample_frames):
    res = run(tmp_path, frames=sample_frames, model="baseline:buy_and_hold")
    assert res.summary["symbols"] == ["SPY", "QQQ"]
    assert set(res.trades["symbol"]) == {"SPY", "QQQ"}
    one = run(tmp_path, frames=sample_frames, symbols=["QQQ"], model="baseline:buy_and_hold")
    assert one.summary["symbols"] == ["QQQ"]


def test_frames_when_columns_capitalised_and_index_in_new_york_then_read_as_utc(tmp_path):
    df = random_walk(200, seed=2, symbol="AAA")
    ny = df.rename(columns=str.capitalize)
    ny.index = ny.index.tz_convert("America/New_York")
    a = run(tmp_path / "a", frames=df, symbol="AAA", model="baseline:sma_cross")
    b = run(tmp_path / "b", frames=ny, symbol="AAA", model="baseline:sma_cross")
    da, db = (read_run(r.ledger_path) for r in (a, b))
    pd.testing.assert_frame_equal(da["fills"].drop(columns="client_order_id"),
                                  db["fills"].drop(columns="client_order_id"))
    assert str(db["equity"]["ts"].dt.tz) == "UTC"


def test_frames_when_bad_values_then_gated_and_recorded_like_any_source(tmp_path):
    df = random_walk(200, seed=3, symbol="AAA")
    df.iloc[150, df.columns.get_loc("close")] = np.nan
    res = run(tmp_path, frames=df, symbol="AAA", model="baseline:sma_cross")
    assert res.summary["bad_bars"] == 1
    assert "BAD_BAR" in set(read_run(res.ledger_path)["risk_events"]["code"])


@pytest.mark.parametrize("defect, match", [
    ("naive", r"AAA: INDEX_NOT_TZ_AWARE.*tz_localize\('UTC'\)"),
    ("empty", r"AAA: the source returned an empty frame"),
    ("duplicate", r"AAA: duplicate bar timestamps"),
    ("unordered", r"AAA: bar timestamps are not in order"),
    ("no_close", r"AAA: MISSING_COLUMN: column 'close' is missing"),
    ("multiindex", r"AAA: MULTIINDEX_COLUMNS"),
])
def test_frames_when_defective_then_refused_naming_symbol_before_any_run_folder(tmp_path,
                                                                              defect, match):
    df = random_walk(120, seed=4, symbol="AAA")
    if defect == "naive":
        df.index = df.index.tz_localize(None)
    elif defect == "empty":
        df = df.iloc[:0]
    elif defect == "duplicate":
        df = pd.concat([df.iloc[:60], df.iloc[59:]])
    elif defect == "unordered":
        df = df.iloc[::-1]
    elif defect == "no_close":
        df = df.drop(columns="close")
    else:
        df.columns = pd.MultiIndex.from_product([["AAA"], df.columns])
    with pytest.raises(DataError, match=match):
        run(tmp_path, frames=df, symbol="AAA", model="baseline:sma_cross")
    assert no_run(tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    ({"frames": "prices.csv"}, r"frames= must be a DataFrame or a dict"),
    ({"frames": {}}, r"frames= is an empty dict"),
    ({"frames": {"AAA": [1, 2, 3]}}, r"frames\['AAA'\] must be a pandas DataFrame, got list"),
    ({"frames": {1: None}}, r"frames= key 1 must be a ticker string"),
    ({"symbol": "AAA"}, r"symbol= names the symbol of frames="),
])
def test_frames_when_misused_then_config_error_naming_the_argument(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run(tmp_path, model="baseline:sma_cross", **kwargs)
    assert no_run(tmp_path)


def test_frames_when_one_dataframe_without_symbol_or_dict_with_symbol_then_refused(tmp_path):
    df = random_walk(120, seed=5, symbol="AAA")
    with pytest.raises(ConfigError, match=r"name its symbol with symbol='SPY'"):
        run(tmp_path, frames=df, model="baseline:sma_cross")
    with pytest.raises(ConfigError, match=r"symbol='AAA' names a single DataFrame"):
        run(tmp_path, frames={"AAA": df}, symbol="AAA", model="baseline:sma_cross")
    with pytest.raises(ConfigError, match=r"symbols= \['ZZZ'\] are not in frames= \(AAA\)"):
        run(tmp_path, frames={"AAA": df}, symbols=["ZZZ"], model="baseline:sma_cross")
    with pytest.raises(ConfigError, match=r"frames= and source='sample' both name the data"):
        run(tmp_path, frames={"AAA": df}, source="sample", model="baseline:sma_cross")
    with pytest.raises(ConfigError, match=r"frames= is history.*drop mode='live'"):
        run(tmp_path, frames={"AAA": df}, mode="live", model="baseline:sma_cross")
    assert no_run(tmp_path)


# --------------------------------------------------------------------------- models
class Momentum(ModelBase):
    """A notebook's own model: long after an up bar (reads closes only)."""

    needs_features = False
    name = "momentum_nb"

    def __init__(self, n: int) -> None:
        self.prev = np.full(n, np.nan)
        self.last = np.full(n, np.nan)

    def observe(self, rows, close):
        self.prev[rows] = self.last[rows]
        self.last[rows] = close

    def predict(self, symbols, X):
        from research_lib.baselines import Prediction

        up = self.last > self.prev
        return [Prediction(s, "", self.name, 0.9 if up[i] else 0.1)
                for i, s in enumerate(symbols)]


def test_model_object_when_given_then_it_decides_and_the_summary_names_it(tmp_path):
    df = random_walk(200, seed=6, symbol="AAA")
    res = run(tmp_path, frames=df, symbol="AAA", model=Momentum(1))
    assert res.summary["model"] == "momentum_nb"
    d = res.decisions.dropna(subset=["probability"])
    assert len(d) > 100 and set(d["model"]) == {"momentum_nb"}
    assert res.summary["fills"] > 0
    # no window declared: not counted either way, and said so
    assert res.summary["sample"]["unknown_window"] == ["momentum_nb"]


def test_model_object_when_train_window_overlaps_then_in_sample_with_its_decisions(tmp_path):
    df = random_walk(200, seed=6, symbol="AAA", start="2021-01-04")
    default = run(tmp_path, frames=df, symbol="AAA", model=Momentum(1),
                  train_window=("2020-01-01", "2021-04-30"))
    # without start= the replay begins after the declared training window
    assert default.summary["sample"]["stamp"] == "OUT-OF-SAMPLE"
    assert default.equity["ts"].min() == pd.Timestamp("2021-05-01", tz="UTC")
    res = run(tmp_path, frames=df, symbol="AAA", model=Momentum(1), start="2021-03-15",
              train_window=("2020-01-01", "2021-04-30"))
    s = res.summary["sample"]
    assert s["stamp"] == "IN-SAMPLE"
    d = res.decisions.dropna(subset=["probability"])
    want = int((d["ts"] < pd.Timestamp("2021-05-01", tz="UTC")).sum())
    assert s["in_sample_decisions"] == want > 0
    assert s["models"] == {"momentum_nb": {"train_start": "2020-01-01",
                                           "train_end": "2021-04-30"}}


def test_model_object_when_it_misses_part_of_the_protocol_then_error_names_what(tmp_path):
    class OnlyPredict:
        def predict(self, symbols, X):
            return []

    with pytest.raises(ConfigError, match=r"OnlyPredict does not meet the SignalModel "
                                          r"protocol \(no needs_features, warm, observe, "
                                          r"set_assets\).*ModelBase"):
        run(tmp_path, frames=random_walk(100, symbol="AAA"), symbol="AAA", model=OnlyPredict())
    with pytest.raises(ConfigError, match=r"train_window= must be \(start, end\)"):
        run(tmp_path, frames=random_walk(100, symbol="AAA"), symbol="AAA", model=Momentum(1),
            train_window="2020")
    with pytest.raises(ConfigError, match=r"ends \(2019-01-01\) before it starts"):
        run(tmp_path, frames=random_walk(100, symbol="AAA"), symbol="AAA", model=Momentum(1),
            train_window=("2020-01-01", "2019-01-01"))
    assert no_run(tmp_path)


def test_onnx_path_when_card_matches_then_it_serves_without_any_registry_edit(tmp_path,
                                                                            my_model):
    assets = (ROOT / "config" / "assets.yaml").read_bytes()
    res = run(tmp_path, frames=load(["BTC-USD"], start="2017-06-01"), model=str(my_model))
    assert (ROOT / "config" / "assets.yaml").read_bytes() == assets
    assert res.summary["model"] == "my_crypto"
    d = res.decisions.dropna(subset=["probability"])
    assert len(d) > 100 and set(d["model"]) == {"my_crypto"}
    s = res.summary["sample"]
    # trained to 2017-12-31 and the default window (last two years) reaches back before it
    assert s["models"]["my_crypto"] == {"train_start": "2015-01-01", "train_end": "2017-12-31"}
    assert s["stamp"] == "OUT-OF-SAMPLE" and s["in_sample_decisions"] == 0
    assert res.decisions["ts"].min() >= pd.Timestamp("2018-01-01", tz="UTC")


def test_onnx_path_when_its_predictions_are_the_onnx_files_then_same_as_onnxruntime(tmp_path,
                                                                                   my_model):
    from research_lib import features
    from research_lib.models.onnx import OnnxModel

    frames = load(["BTC-USD"], start="2018-01-01", end="2018-06-30")
    res = run(tmp_path, frames=frames, model=my_model, start="2018-04-01")
    d = res.decisions.dropna(subset=["probability"]).set_index("ts")
    X = features.build(frames["BTC-USD"]).loc[d.index].to_numpy(np.float32)
    p = OnnxModel(my_model).predict_proba_up(X)
    np.testing.assert_allclose(d["probability"].to_numpy(), p, rtol=0, atol=1e-7)


def test_onnx_path_when_the_file_differs_from_its_card_then_error_names_both_digests(
        tmp_path, my_model):
    other = tmp_path / "m"
    other.mkdir()
    shutil.copy(ROOT / "models" / "equities_v1.onnx", other / "my_crypto.onnx")
    shutil.copy(my_model.with_suffix(".json"), other / "my_crypto.json")
    actual = hashlib.sha256((other / "my_crypto.onnx").read_bytes()).hexdigest()
    carded = json.loads(my_model.with_suffix(".json").read_text())["sha256"]
    with pytest.raises(ModelError) as exc:
        run(tmp_path, frames=load(["BTC-USD"], start="2019-01-01"), model=other / "my_crypto.onnx")
    assert actual in str(exc.value) and carded in str(exc.value)
    assert "not the model the card describes" in str(exc.value)
    assert no_run(tmp_path)


def test_onnx_path_when_card_missing_failed_parity_or_file_missing_then_refused(tmp_path,
                                                                             my_model):
    frames = load(["BTC-USD"], start="2019-01-01")
    lone = tmp_path / "lone.onnx"
    shutil.copy(my_model, lone)
    with pytest.raises(ModelError, match=r"no model card at .*lone\.json"):
        run(tmp_path, frames=frames, model=lone)
    card = json.loads(my_model.with_suffix(".json").read_text())
    card["parity"]["passed"] = False
    bad = tmp_path / "bad_parity.json"
    bad.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"no passed parity check.*do not serve it"):
        run(tmp_path, frames=frames, model=my_model, card=bad)
    card = json.loads(my_model.with_suffix(".json").read_text())
    card["features"]["names"] = card["features"]["names"][::-1]
    bad.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"lists features"):
        run(tmp_path, frames=frames, model=my_model, card=bad)
    with pytest.raises(ModelError, match=r"model= '.*nowhere\.onnx': cannot read it"):
        run(tmp_path, frames=frames, model=str(tmp_path / "nowhere.onnx"))
    with pytest.raises(ConfigError, match=r"card= goes with model= given as an ONNX path"):
        run(tmp_path, frames=frames, model="crypto_v1", card=bad)
    with pytest.raises(ConfigError, match=r"neither a registry name, a baseline nor an ONNX"):
        run(tmp_path, frames=frames, model=Path("models/crypto_v1"))
    assert no_run(tmp_path)


def test_onnx_path_when_resumed_with_another_model_file_then_refused_naming_digests(
        tmp_path, my_model):
    from research_lib.models.train import train

    frames = load(["BTC-USD"], start="2018-01-01")
    first = run(tmp_path, frames=frames, model=my_model, run_id="nb", max_steps=5)
    assert first.summary["steps"] == 5
    other = train("crypto", "BTC-USD", start="2015-06-01", end="2017-12-31",
                  out=tmp_path / "x" / "my_crypto.onnx")
    with pytest.raises(ConfigError, match=r"model file my_crypto sha256: '[0-9a-f]{64}' -> "
                                          rf"'{other.sha256}'"):
        run(tmp_path, frames=frames, model=other.model_path, resume="nb")
    again = run(tmp_path, frames=frames, model=my_model, resume="nb")
    assert again.summary["steps"] > 5


# --------------------------------------------------------------------------- flag
@pytest.mark.parametrize("flag, deciding, shadow", [
    (0, {"universal_v1"}, set()),
    ("1", {"crypto_v1"}, set()),
    ("shadow", {"universal_v1"}, {"crypto_v1"}),
])
def test_flag_when_given_then_routes_so_whatever_the_environment_says(tmp_path, monkeypatch,
                                                                     flag, deciding, shadow):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1" if flag in (0, "shadow") else "0")
    before = dict(os.environ)
    res = run(tmp_path, symbols=["BTC-USD", "ETH-USD"], start="2019-06-01", end="2019-09-30",
              flag=flag)
    d = res.decisions.dropna(subset=["probability"])
    assert set(d["model"]) == deciding
    assert set(d["shadow_model"].dropna()) == shadow
    assert dict(os.environ) == before  # nothing process-wide changed


@pytest.mark.parametrize("flag", [2, True, "yes", 0.5, ""])
def test_flag_when_not_0_1_or_shadow_then_config_error_naming_flag(tmp_path, flag):
    with pytest.raises(ConfigError, match=r"flag must be 0, 1 or 'shadow', got"):
        run(tmp_path, symbols=["BTC-USD"], start="2019-06-01", end="2019-07-01", flag=flag)
    assert no_run(tmp_path)


def test_flag_when_given_with_a_model_then_refused_as_it_would_change_nothing(tmp_path):
    for model in ("crypto_v1", "baseline:sma_cross", Momentum(1)):
        with pytest.raises(ConfigError, match=r"flag=1 chooses among the registry's models"):
            run(tmp_path, symbols=["BTC-USD"], start="2019-06-01", end="2019-07-01", flag=1,
                model=model)
    assert no_run(tmp_path)


# --------------------------------------------------------------------------- risk
def test_risk_overrides_when_given_then_applied_recorded_and_the_file_untouched(tmp_path):
    cfg = write_config(tmp_path / "config")
    before = (cfg / "risk.yaml").read_bytes()
    res = run(tmp_path, frames=random_walk(250, seed=7, symbol="AAA"), symbol="AAA",
              model="baseline:buy_and_hold", config_dir=cfg,
              risk={"max_position_pct": 0.05})
    meta = read_run(res.ledger_path)["meta"]
    assert meta["config"]["risk"]["max_position_pct"] == 0.05
    assert (cfg / "risk.yaml").read_bytes() == before
    eq = res.equity
    weight = eq["pos_AAA"] / eq["equity"]
    assert weight.max() > 0.04
    # orders are sized to 5% (target 10% clipped), a gap may lift a fill a hair above
    qty = res.trades["qty"].abs()
    assert (qty * res.trades["price"] / 100_000).iloc[0] <= 0.0505


@pytest.mark.parametrize("risk, match", [
    ({"max_position_pct": 1.5}, r"run_session\(risk=\.\.\.\): risk\.max_position_pct must be "
                                r"in \(0, 1\], got 1\.5"),
    ({"max_positon_pct": 0.1}, r"unknown key risk\.max_positon_pct; allowed keys: "),
    ({"allow_short": "yes"}, r"risk\.allow_short must be true or false, got 'yes'"),
    ({"max_drawdown_pct": float("nan")}, r"risk\.max_drawdown_pct must be a finite number"),
    ([("max_position_pct", 0.1)], r"must be a mapping such as"),
])
def test_risk_overrides_when_invalid_then_error_names_the_key_and_no_run(tmp_path, risk, match):
    with pytest.raises(ConfigError, match=match):
        run(tmp_path, frames=random_walk(100, symbol="AAA"), symbol="AAA",
            model="baseline:sma_cross", risk=risk)
    assert no_run(tmp_path)


def test_risk_overrides_when_the_file_reloads_then_the_override_stays(tmp_path):
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 0.15})
    load = risk_loader({"max_position_pct": 0.05})
    assert load(cfg / "risk.yaml").max_position_pct == 0.05
    data = {"risk": {"max_position_pct": 0.12, "max_drawdown_pct": 0.1}}
    limits = load(cfg / "risk.yaml", data=data)  # a reload passes the file's mapping
    assert (limits.max_position_pct, limits.max_drawdown_pct) == (0.05, 0.1)


def test_risk_overrides_when_a_resume_leaves_them_out_then_refused_naming_the_value(tmp_path):
    df = random_walk(150, seed=8, symbol="AAA")
    run(tmp_path, frames=df, symbol="AAA", model="baseline:sma_cross", run_id="r",
        risk={"max_position_pct": 0.05}, max_steps=10)
    with pytest.raises(ConfigError, match=r"risk\.max_position_pct: 0\.05 -> 0\.15"):
        run(tmp_path, frames=df, symbol="AAA", resume="r")
    res = run(tmp_path, frames=df, symbol="AAA", resume="r", risk={"max_position_pct": 0.05})
    assert res.summary["steps"] > 10


# --------------------------------------------------------------------------- docs
def test_the_api_docstring_example_runs_as_written(tmp_path, monkeypatch):
    """The example in research_lib.paper.api's docstring, run as a notebook would."""
    import re

    from research_lib.paper import api

    code = re.search(r"Example \(runs offline on the shipped sample\)::\n\n(.*?)\n\"\"\"",
                     api.__doc__ + '\n"""', re.S).group(1)
    code = "\n".join(line[4:] for line in code.splitlines())
    monkeypatch.chdir(ROOT)
    code = code.replace('"runs/notebook"', repr(str(tmp_path / "runs")))
    code = code.replace(".plot()", ".describe()")
    ns: dict = {}
    exec(compile(code, "api-example", "exec"), ns)  # noqa: S102 - the documented example
    assert ns["res"].summary["sample"]["stamp"] == "OUT-OF-SAMPLE"
    early = ns["early"].sample
    assert early["stamp"] == "IN-SAMPLE" and early["in_sample_decisions"] == 504
