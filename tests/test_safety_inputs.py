"""Issue 10, class 4: inputs are read as what they are, or refused.

Integer dates (YYYYMMDD, epoch seconds/ms) are read as dates, never as nanoseconds since
1970; bars whose spacing is not the interval are refused; a folder source reads only data
files and keeps dotted symbols; a model output that is not a probability is no signal;
two symbols on one underlying are refused; ``--max-steps`` below 1 is refused; a replay
that stops at the first symbol's last bar says so.

Price fixtures are real ^GSPC / BTC-USD daily bars from the shipped sample, rewritten in
another date format; synthetic frames (tests/kit/paper.py) are labelled so.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.data import load
from research_lib.data.csv_source import CsvSource
from research_lib.data.sanity import ERROR, SanityConfig, check_frame
from research_lib.errors import ConfigError, DataError
from research_lib.ledger_read import read_run
from research_lib.session import run_session
from tests.kit.paper import (
    FrameSource,
    ScriptedModel,
    make_session,
    quiet_switch,
    random_walk,
    write_config,
)
from tests.test_fast_replay import assert_same_ledger

START, END = "2018-10-01", "2018-12-31"


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    """Real ^GSPC daily bars (shipped sample), 2018: warm-up plus a three-month window."""
    return load(["^GSPC"], start="2018-05-01", end=END)["^GSPC"]


def write_dates(folder: Path, df: pd.DataFrame, stamps, name: str = "SPX",
                suffix: str = ".csv") -> Path:
    """``df``'s bars with the timestamp column written as ``stamps`` (one per bar)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = df.reset_index(drop=True)
    out.insert(0, "timestamp", list(stamps))
    path = folder / f"{name}{suffix}"
    out.to_csv(path, index=False)
    return path


def ymd(df: pd.DataFrame) -> list[int]:
    return [int(t.strftime("%Y%m%d")) for t in df.index]


def epoch_s(df: pd.DataFrame) -> list[int]:
    return [int(t.timestamp()) for t in df.index]


def paper(tmp_path: Path, *args: str) -> int:
    cfg = tmp_path / "config"
    if not cfg.exists():
        write_config(cfg, session={"kill_file": str(tmp_path / "kill.flag")})
    return main(["paper", *args, "--model", "baseline:buy_and_hold", "--config-dir", str(cfg),
                 "--run-dir", str(tmp_path / "runs")])


def no_run_written(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------ integer dates
def test_csv_source_when_dates_are_yyyymmdd_integers_then_read_as_those_dates(tmp_path, spx):
    path = write_dates(tmp_path / "data", spx, ymd(spx))
    got = CsvSource(path).fetch("SPX")
    assert list(got.index) == list(spx.index)  # 2018 dates, not 1970 + 20180501 ns
    assert got.index[0].year == 2018


def test_csv_source_when_dates_are_epoch_seconds_or_ms_then_read_in_that_unit(tmp_path, spx):
    secs = epoch_s(spx)
    for name, stamps in (("S", secs), ("MS", [s * 1000 for s in secs])):
        got = CsvSource(write_dates(tmp_path / name, spx, stamps, name=name)).fetch(name)
        assert list(got.index) == list(spx.index), name


def test_csv_source_when_integer_dates_are_ambiguous_then_refused_naming_column_values_and_fix(
        tmp_path, spx):
    path = write_dates(tmp_path / "data", spx, range(len(spx)), name="SPX")  # 0, 1, 2, ...
    with pytest.raises(DataError) as e:
        CsvSource(path).fetch("SPX")
    msg = str(e.value)
    assert "column 'timestamp'" in msg and str(path) in msg
    assert "[0, 1, 2]" in msg  # sample values
    assert "YYYYMMDD" in msg and "nanoseconds" in msg  # the fix and what was refused


def test_parse_timestamps_when_units_are_mixed_then_refused():
    from research_lib.data.timestamps import parse_timestamps

    with pytest.raises(DataError, match="refusing to guess"):
        parse_timestamps(pd.Series([1_500_000_000, 1_500_000_000_000]), "col 'ts'")


def test_paper_when_csv_dates_are_yyyymmdd_then_the_replay_steps_on_those_dates(tmp_path, spx):
    path = write_dates(tmp_path / "data", spx, ymd(spx))
    res = run_session(symbols=["SPX"], source=f"csv:{path}", start=START, end=END,
                      model="baseline:buy_and_hold", run_dir=tmp_path / "runs",
                      config_dir=write_config(tmp_path / "config"),
                      kill_switch=quiet_switch(tmp_path), log_file=False)
    steps = read_run(res.ledger_path)["steps"]
    assert steps["ts"].min() == pd.Timestamp(START, tz="UTC")
    assert len(steps) == int(((spx.index >= START) & (spx.index <= END)).sum())


def test_cli_paper_when_csv_dates_are_epoch_seconds_without_start_end_then_real_dates(
        tmp_path, spx, capsys):
    path = write_dates(tmp_path / "data", spx, epoch_s(spx))
    code = paper(tmp_path, "--symbols", "SPX", "--source", f"csv:{path}", "--json")
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert '"last_step_ts": "2018-12-31T00:00:00+00:00"' in out


def test_train_dataset_when_csv_dates_are_yyyymmdd_then_read_as_dates_and_numbers_refused(
        tmp_path, spx):
    from research_lib.models.dataset import load_frames

    good = write_dates(tmp_path / "good", spx, ymd(spx))
    frames, _ = load_frames(["SPX"], source=f"csv:{good}")
    assert frames["SPX"].index[0] == spx.index[0]
    bad = write_dates(tmp_path / "bad", spx, range(10_000, 10_000 + len(spx)))
    with pytest.raises(DataError, match="column 'timestamp'"):
        load_frames(["SPX"], source=f"csv:{bad}")


def test_train_dataset_when_hourly_bars_loaded_as_1d_then_refused(tmp_path, spx):
    from research_lib.models.dataset import load_frames

    hourly = pd.date_range("2018-06-01 13:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in hourly])
    with pytest.raises(DataError, match="BAR_SPACING"):
        load_frames(["SPX"], source=f"csv:{path}", interval="1d")


def test_cache_source_when_parquet_index_is_small_integers_then_refused(tmp_path, spx):
    from research_lib.data.cache import CacheSource

    cache = CacheSource(tmp_path / "cache")
    p = cache.path("SPX", "1d")
    p.parent.mkdir(parents=True)
    raw = spx[["open", "high", "low", "close", "volume"]].copy()
    raw.index = pd.RangeIndex(len(raw))
    raw.to_parquet(p)
    with pytest.raises(DataError, match="index holds numbers"):
        cache.fetch("SPX")


def test_cache_source_when_parquet_index_is_epoch_seconds_then_read_as_seconds(tmp_path, spx):
    from research_lib.data.cache import CacheSource

    cache = CacheSource(tmp_path / "cache")
    p = cache.path("SPX", "1d")
    p.parent.mkdir(parents=True)
    raw = spx[["open", "high", "low", "close", "volume"]].copy()
    raw.index = pd.Index(epoch_s(spx), name="timestamp")
    raw.to_parquet(p)
    got = cache.fetch("SPX")
    assert list(got.index) == list(spx.index)


# ------------------------------------------------------------------ bar spacing
def test_data_check_when_daily_bars_sit_inside_a_millisecond_of_1970_then_errors(spx):
    df = spx.copy()
    df.index = pd.to_datetime(epoch_s(spx), unit="ns", utc=True)  # seconds read as ns
    found = check_frame(df, "SPX", SanityConfig(now=pd.Timestamp("2026-01-01", tz="UTC")))
    codes = {f.code for f in found if f.severity == ERROR}
    assert {"IMPLAUSIBLE_TIMESTAMP", "BAR_SPACING"} <= codes


def test_cli_data_check_when_hourly_bars_checked_as_1d_then_exit_1_with_bar_spacing(
        tmp_path, spx, capsys):
    hourly = pd.date_range("2018-06-01 13:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in hourly])
    code = main(["data", "check", "--symbols", "SPX", "--source", f"csv:{path}",
                 "--interval", "1d"])
    out = capsys.readouterr().out
    assert code == 1
    assert "BAR_SPACING" in out and "'1d'" in out


def test_cli_paper_when_hourly_bars_replayed_as_1d_then_exit_2_and_no_run(tmp_path, spx, capsys):
    hourly = pd.date_range("2018-12-01 00:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in hourly])
    code = paper(tmp_path, "--symbols", "SPX", "--source", f"csv:{path}", "--interval", "1d")
    err = capsys.readouterr().err
    assert code == 2
    assert "research-lib paper: error: SPX: BAR_SPACING" in err
    assert "pass the --interval they have" in err
    assert no_run_written(tmp_path)


def test_cli_features_when_hourly_bars_as_1d_then_exit_2_and_nothing_written(
        tmp_path, spx, capsys):
    hourly = pd.date_range("2018-06-01 13:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in hourly])
    out = tmp_path / "f.parquet"
    code = main(["features", "--symbols", "SPX", "--source", f"csv:{path}", "--out", str(out)])
    assert code == 2
    assert "BAR_SPACING" in capsys.readouterr().err
    assert not out.exists()


def test_data_check_when_daily_bars_checked_as_daily_then_no_spacing_finding(spx):
    found = check_frame(spx, "SPX", SanityConfig(now=pd.Timestamp("2026-01-01", tz="UTC")))
    assert not {f.code for f in found} & {"BAR_SPACING", "IMPLAUSIBLE_TIMESTAMP"}


# ------------------------------------------------------------------ folder sources
def test_csv_folder_when_bak_file_sits_beside_csv_then_the_csv_is_read(tmp_path, spx):
    folder = tmp_path / "data"
    write_dates(folder, spx, [t.isoformat() for t in spx.index])
    half = spx.copy()
    half[["open", "high", "low", "close"]] /= 2
    write_dates(folder, half, [t.isoformat() for t in spx.index], suffix=".csv.bak")
    src = CsvSource(folder)
    assert src.symbols() == ["SPX"]
    assert np.allclose(src.fetch("SPX")["close"].to_numpy(), spx["close"].to_numpy())


def test_csv_folder_when_symbol_has_a_dot_then_it_keeps_the_dot(tmp_path, spx):
    folder = tmp_path / "data"
    write_dates(folder, spx, [t.isoformat() for t in spx.index], name="BRK.B")
    src = CsvSource(folder)
    assert src.symbols() == ["BRK.B"]
    assert len(src.fetch("BRK.B")) == len(spx)
    assert CsvSource(folder / "BRK.B.csv").symbols() == ["BRK.B"]


def test_csv_folder_when_two_files_serve_one_symbol_then_refused_naming_both(tmp_path, spx):
    folder = tmp_path / "data"
    path = write_dates(folder, spx, [t.isoformat() for t in spx.index])
    (folder / "SPX.csv.gz").write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match=r"SPX.csv and SPX.csv.gz"):
        CsvSource(folder).fetch("SPX")


def test_csv_folder_when_names_differ_only_in_case_then_refused(tmp_path, spx):
    folder = tmp_path / "data"
    write_dates(folder, spx, [t.isoformat() for t in spx.index], name="SPX")
    write_dates(folder, spx, [t.isoformat() for t in spx.index], name="spx")
    with pytest.raises(DataError, match="two files for symbol"):
        CsvSource(folder).symbols()


# ------------------------------------------------------------------ model outputs
def bars(n: int = 40, seed: int = 1) -> dict[str, pd.DataFrame]:
    return {"SYN": random_walk(n, seed=seed, symbol="SYN")}


def run_scripted(tmp_path: Path, prob, fast: bool = False, run_id: str = "p",
                 source: FrameSource | None = None):
    """A replay of one synthetic symbol whose model says ``prob(symbol, n_seen, close)``."""
    source = source or FrameSource(bars())
    idx = source.frames["SYN"].index
    res = make_session(tmp_path, symbols=["SYN"], source=source,
                       router=ScriptedModel(["SYN"], prob=prob), start=str(idx[0].date()),
                       end=str(idx[-1].date()), fast=fast, run_id=run_id).run()
    return res, read_run(res.ledger_path)


@pytest.mark.parametrize("bad", [1.7, -0.4, 2, "0.9", True])
def test_paper_when_model_probability_is_not_in_0_1_then_no_signal_recorded_and_no_order(
        tmp_path, bad):
    res, run = run_scripted(tmp_path, lambda s, n, c: bad)
    d = run["decisions"]
    assert len(d) and (d["verdict"] == "NO_SIGNAL").all()
    assert d["reason"].str.startswith("MODEL_OUTPUT_INVALID").all()
    assert d["probability"].isna().all()
    assert len(run["orders"]) == 0 and res.summary["orders"] == 0


def test_checked_prediction_when_shadow_probability_out_of_range_then_dropped_and_decision_kept():
    from research_lib.baselines import Prediction
    from research_lib.session import checked_prediction

    p = checked_prediction(Prediction("SYN", "test", "m", 0.8, "shadow_m", 3.0), "SYN", "test", "m")
    assert (p.probability, p.shadow_probability, p.fallback_reason) == (0.8, None, None)


def test_paper_when_probability_turns_negative_while_long_then_the_position_is_kept(tmp_path):
    # 1.0 buys; a later -0.5 (below the short threshold) would sell everything if traded
    res, run = run_scripted(tmp_path, lambda s, n, c: 1.0 if n < 10 else -0.5)
    d = run["decisions"]
    invalid = d[d["reason"].fillna("").str.startswith("MODEL_OUTPUT_INVALID")]
    assert len(invalid) > 10
    assert invalid["client_order_id"].isna().all()  # no order on an invalid output
    pos = run["positions"]
    assert pos[pos["step"] == pos["step"].max()]["qty"].iloc[0] > 0  # still long


def test_fast_replay_when_model_outputs_are_invalid_then_same_ledger_as_step_loop(tmp_path):
    def prob(s, n, c):
        return (1.0, 1.6, 0.2, -3.0, float("nan"), 0.9)[n % 6]

    src = FrameSource(bars())  # one object: the ledger's meta records its repr
    a, _ = run_scripted(tmp_path / "a", prob, fast=False, run_id="eq", source=src)
    b, _ = run_scripted(tmp_path / "b", prob, fast=True, run_id="eq", source=src)
    dump = assert_same_ledger(a.ledger_path, b.ledger_path, "invalid model outputs")
    assert any("MODEL_OUTPUT_INVALID" in str(r) for r in dump["decisions"])
    assert a.summary["orders"] >= 1


def _constant_onnx(path: Path, pair: tuple[float, float]) -> Path:
    """A model whose output row is always ``pair`` (zero weights plus a bias)."""
    import onnx
    from onnx import TensorProto, helper

    from research_lib.features import N_FEATURES

    w = helper.make_tensor("W", TensorProto.FLOAT, [N_FEATURES, 2], [0.0] * (N_FEATURES * 2))
    b = helper.make_tensor("B", TensorProto.FLOAT, [2], list(pair))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["z"]),
         helper.make_node("Add", ["z", "B"], ["probabilities"])],
        "constant", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("pair,why", [((-0.5, 1.5), "outside [0, 1]"),
                                      ((0.7, 0.9), "sums to 1.6")])
def test_onnx_model_when_output_is_not_a_probability_pair_then_router_gives_no_signal_with_reason(
        tmp_path, pair, why):
    from research_lib.config import parse_assets
    from research_lib.models.router import Router

    folder = tmp_path / "models"
    folder.mkdir()
    path = _constant_onnx(folder / "universal_v1.onnx", pair)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assets = parse_assets({"universal_model": "universal_v1",
                           "classes": {"equities": {"patterns": ["*"], "model": "universal_v1"}},
                           "models": {"universal_v1": {"path": "universal_v1.onnx",
                                                       "sha256": sha}}},
                          source="test")
    X = np.zeros((2, 11))
    preds = Router(assets, models_dir=folder).predict(["AAA", "BBB"], X)
    assert [p.probability for p in preds] == [None, None]
    assert all(p.fallback_reason.startswith("MODEL_OUTPUT_INVALID") and why in p.fallback_reason
               for p in preds)


# ------------------------------------------------------------------ one underlying
@pytest.mark.parametrize("symbols", ["BTC-USD,BTCUSDT", "SPY,^GSPC", "ETH-USD,ETHUSDT"])
def test_cli_paper_when_two_symbols_are_one_underlying_then_exit_2_naming_both(
        tmp_path, capsys, symbols):
    code = paper(tmp_path, "--symbols", symbols, "--start", "2018-01-01", "--end", "2018-03-01")
    err = capsys.readouterr().err
    a, b = symbols.split(",")
    assert code == 2
    assert f"{a} and {b} are the same underlying" in err
    assert "list only one of them" in err
    assert no_run_written(tmp_path)


def test_underlying_key_when_crypto_pair_is_spelled_differently_then_one_key():
    from research_lib.risk import refuse_shared_underlying, underlying_key

    assert {underlying_key(s) for s in ("BTC-USD", "BTCUSDT", "BTC/USD", "btc-usdt")} == {"BTC"}
    assert underlying_key("SPY", "^GSPC") == "^GSPC"
    assert underlying_key("SPY 251219C00600000") == underlying_key("SPY251219C00600000")
    assert underlying_key("AAPL") != underlying_key("MSFT")
    with pytest.raises(ConfigError, match="spy and SPY"):
        refuse_shared_underlying(["spy", "SPY"])


def test_paper_when_one_symbol_per_underlying_then_runs(tmp_path):
    res = run_session(symbols=["BTC-USD", "ETH-USD", "SPY"], start="2018-01-01", end="2018-02-01",
                      model="baseline:buy_and_hold", run_dir=tmp_path / "runs",
                      config_dir=write_config(tmp_path / "config"),
                      kill_switch=quiet_switch(tmp_path), log_file=False)
    assert res.exit_code == 0 and res.summary["steps"] > 0


# ------------------------------------------------------------------ --max-steps
@pytest.mark.parametrize("n", ["0", "-1"])
def test_cli_paper_when_max_steps_below_1_then_exit_2_and_no_run(tmp_path, capsys, n):
    code = paper(tmp_path, "--symbols", "SPY", "--start", START, "--end", END, "--max-steps", n)
    err = capsys.readouterr().err
    assert code == 2
    assert f"--max-steps must be a whole number >= 1, got {n}" in err
    assert no_run_written(tmp_path)


def test_session_when_max_steps_is_not_an_integer_then_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--max-steps"):
        make_session(tmp_path, symbols=["SPY"], start=START, end=END, max_steps=2.5).run()


def test_cli_paper_when_interval_has_no_length_then_exit_2_and_no_run(tmp_path, spx, capsys):
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in spx.index])
    code = paper(tmp_path, "--symbols", "SPX", "--source", f"csv:{path}", "--interval", "0d",
                 "--start", START, "--end", END)
    assert code == 2
    assert "--interval '0d' is a bar of no length" in capsys.readouterr().err
    assert no_run_written(tmp_path)


# ------------------------------------------------------------------ replay end
def test_replay_without_end_when_a_symbol_ends_early_then_summary_stderr_and_ledger_say_so(
        tmp_path, capsys):
    # real sample bars: ^GSPC ends on 2018-12-31, BTC-USD on 2020-01-17
    code = paper(tmp_path, "--symbols", "^GSPC,BTC-USD", "--start", "2018-10-01",
                 "--run-id", "early")
    out, err = capsys.readouterr()
    assert code == 0, err
    note = ("^GSPC ends on 2018-12-31, before BTC-USD (last bar 2020-01-17); the replay stops "
            "there (pass --end 2020-01-17")
    assert f"note       {note}" in out
    assert "replay_ends_early" in err and note in err
    run = read_run(tmp_path / "runs" / "early")
    assert run["steps"]["ts"].max() == pd.Timestamp("2018-12-31", tz="UTC")
    ev = run["risk_events"]
    assert ev[ev["code"] == "REPLAY_ENDS_EARLY"]["symbol"].tolist() == ["^GSPC"]


def test_replay_without_end_when_start_is_after_the_first_symbols_end_then_refused_saying_why(
        tmp_path):
    long = random_walk(120, seed=3, symbol="LONG")
    short = random_walk(60, seed=4, symbol="SHORT")
    with pytest.raises(ConfigError) as e:
        make_session(tmp_path, symbols=["LONG", "SHORT"], start=str(long.index[80].date()),
                     source=FrameSource({"LONG": long, "SHORT": short}),
                     model="baseline:buy_and_hold").run()
    msg = str(e.value)
    assert f"SHORT ends on {short.index[-1].date()}" in msg
    assert f"pass --end {long.index[-1].date()}" in msg


def test_csv_source_when_dates_are_day_first_then_read_day_first_never_mixed(tmp_path, spx):
    path = write_dates(tmp_path / "d", spx, [t.strftime("%d/%m/%Y") for t in spx.index])
    assert list(CsvSource(path).fetch("SPX").index) == list(spx.index)
    path = write_dates(tmp_path / "m", spx, [t.strftime("%m/%d/%Y") for t in spx.index])
    assert list(CsvSource(path).fetch("SPX").index) == list(spx.index)
    few = spx.iloc[:8]  # 2018-05-01 .. 2018-05-10: no field above 12
    path = write_dates(tmp_path / "x", few, [t.strftime("%d/%m/%Y") for t in few.index])
    with pytest.raises(DataError, match="write them as YYYY-MM-DD"):
        CsvSource(path).fetch("SPX")


def test_csv_source_when_date_and_time_are_two_columns_then_both_make_the_bar_time(tmp_path, spx):
    hourly = pd.date_range("2018-06-01 13:00", periods=len(spx), freq="h", tz="UTC")
    folder = tmp_path / "data"
    folder.mkdir()
    out = spx.reset_index(drop=True)
    out.insert(0, "Date", [t.strftime("%Y-%m-%d") for t in hourly])
    out.insert(1, "Time", [t.strftime("%H:%M:%S") for t in hourly])
    out.to_csv(folder / "SPX.csv", index=False)
    got = CsvSource(folder).fetch("SPX", interval="1h")
    assert list(got.index) == list(hourly)


@pytest.mark.parametrize("freq,interval,bad", [
    ("h", "1d", True),     # hourly bars as daily
    ("B", "1h", True),     # daily bars as hourly
    ("W", "1d", True),     # weekly bars as daily
    ("B", "1d", False),
    ("h", "1h", False),
    ("5min", "1m", False),  # a thin market's 1m bars skip empty minutes
])
def test_bar_spacing_when_bars_and_interval_differ_then_error_else_none(freq, interval, bad):
    from tests.kit import make_bars

    df = make_bars(n=60, start="2018-06-01", freq=freq)
    found = check_frame(df, "SYN", SanityConfig(interval=interval,
                                                now=pd.Timestamp("2026-01-01", tz="UTC")))
    assert any(f.code == "BAR_SPACING" for f in found) is bad


def test_train_dataset_when_two_spellings_of_one_coin_then_refused(tmp_path):
    from research_lib.models.dataset import load_frames

    btc = load(["BTC-USD"], start="2019-01-01", end="2019-12-31")["BTC-USD"]
    folder = tmp_path / "data"
    for name in ("BTC-USD", "BTC_USDT"):
        write_dates(folder, btc, [t.isoformat() for t in btc.index], name=name)
    with pytest.raises(ConfigError, match="BTC-USD and BTC_USDT are the same underlying BTC"):
        load_frames(["BTC-USD", "BTC_USDT"], source=f"csv:{folder}")


def test_csv_source_when_dates_are_yyyymmddhhmm_integers_then_not_read_as_1976_milliseconds(
        tmp_path, spx):
    hourly = pd.date_range("2018-06-01 13:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [int(t.strftime("%Y%m%d%H%M")) for t in hourly])
    assert list(CsvSource(path).fetch("SPX", interval="1h").index) == list(hourly)


def test_live_when_polled_bars_are_hourly_under_interval_1d_then_refused_before_any_step(
        tmp_path, spx):
    hourly = pd.date_range("2018-12-20 00:00", periods=len(spx), freq="h", tz="UTC")
    path = write_dates(tmp_path / "data", spx, [t.isoformat() for t in hourly])
    clock = {"t": hourly[-1].timestamp() + 60}

    def sleep(dt: float) -> None:
        clock["t"] += dt

    s = make_session(tmp_path, symbols=["SPX"], source=f"csv:{path}", mode="live",
                     interval="1d", model="baseline:buy_and_hold", poll_seconds=60,
                     clock=lambda: clock["t"], sleep=sleep, max_steps=1, run_id="live")
    with pytest.raises(DataError, match="SPX: BAR_SPACING"):
        s.run()
    assert len(read_run(tmp_path / "runs" / "live")["steps"]) == 0


# ---------------------------------------------------------------- red team (round 2 merged)
@pytest.mark.parametrize("spec", ["csv:", "csv: ", "csv:\t"])
def test_cli_paper_when_csv_source_has_no_path_then_exit_2_and_the_working_folder_unread(
        tmp_path, capsys, monkeypatch, spec):
    """``--source csv:`` (e.g. ``csv:$DATA`` with DATA unset) read the working folder: any
    ``SPY.csv`` lying there was replayed and traded. An empty path is refused."""
    from tests.kit.paper import random_walk

    work = tmp_path / "work"
    work.mkdir()
    random_walk(300, seed=1, symbol="SPY").rename_axis("timestamp").to_csv(work / "SPY.csv")
    monkeypatch.chdir(work)
    code = paper(tmp_path, "--symbols", "SPY", "--source", spec, "--start", "2021-04-01")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "csv:PATH" in err and "no path" in err
    assert no_run_written(tmp_path)


def test_cli_paper_when_one_series_is_listed_under_two_file_names_then_exit_2_naming_both(
        tmp_path, capsys, spx):
    # found by the red team: AAA.csv copied to AAA2.csv traded both, two 15% caps on one
    # series (the one-underlying check compared names only)
    folder = tmp_path / "csv"
    write_dates(folder, spx, spx.index, name="AAA")
    write_dates(folder, spx, spx.index, name="AAA2")
    code = paper(tmp_path, "--symbols", "AAA,AAA2", "--source", f"csv:{folder}",
                 "--start", START, "--end", END)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "AAA and AAA2 have identical bars" in err and "two position caps" in err
    assert no_run_written(tmp_path)


def test_session_when_identical_series_are_declared_replicas_then_each_trades(tmp_path, spx):
    # the benchmarks' replicated real series, said so explicitly: each its own instrument
    frames = {}
    for name in ("AAA", "AAA2"):
        frames[name] = spx.copy()
        frames[name].attrs = {"symbol": name, "served_as": name}  # as benchmarks' copies
    res = make_session(tmp_path, symbols=["AAA", "AAA2"], source=FrameSource(frames),
                       start=START, end=END, model="baseline:buy_and_hold",
                       replicas=True).run()
    fills = read_run(res.ledger_path)["fills"]
    assert set(fills["symbol"]) == {"AAA", "AAA2"}
