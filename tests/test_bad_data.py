"""Bad market data, end to end through the paper session: each defect gets a clear finding
or error, and no order is ever placed on a bad bar.

Fixtures are CSV files written inside each test from the shipped sample (real ^GSPC daily
bars, 2018), with one defect injected; the session reads them with ``--source csv:PATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.data import load
from research_lib.errors import DataError, EmptyDataError
from research_lib.ledger_read import read_run
from research_lib.session import Session, SessionSpec, run_session
from tests.kit.paper import FrameSource, quiet_switch, write_config

ROOT = Path(__file__).resolve().parents[1]
SYM = "SPX"  # an equity (XNYS calendar, 25% jump threshold) read from SPX.csv
START, END = "2018-10-01", "2018-12-31"
K = 5  # the window bar that carries the defect (bought at step 0, filled at step 1)


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    """Real ^GSPC bars from the shipped sample: 60+ bars of warm-up, then the window."""
    return load(["^GSPC"], start="2018-05-01", end=END)["^GSPC"]


def at(df: pd.DataFrame, k: int) -> pd.Timestamp:
    """The timestamp of window bar ``k`` (= step ``k`` for one symbol)."""
    return df.index[df.index >= pd.Timestamp(START, tz="UTC")][k]


def write_csv(folder: Path, df: pd.DataFrame, name: str = SYM, naive: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    out.index = out.index.strftime("%Y-%m-%d") if naive else [t.isoformat() for t in out.index]
    path = folder / f"{name}.csv"
    out.to_csv(path, index_label="timestamp")
    return path


def spec(tmp_path: Path, source, **kw) -> dict:
    cfg = tmp_path / "config"
    if not cfg.exists():  # target 10% under the 15% limit: ordinary drift never trims
        write_config(cfg, signal={"target_weight": 0.10})
    return {"symbols": [SYM], "source": source, "start": START, "end": END,
            "run_dir": tmp_path / "runs", "model": "baseline:buy_and_hold",
            "config_dir": cfg, "kill_switch": quiet_switch(tmp_path), "log_file": False,
            "run_id": "bad-data"} | kw


def run_csv(tmp_path: Path, df: pd.DataFrame, **kw):
    path = write_csv(tmp_path / "data", df)
    res = run_session(**spec(tmp_path, f"csv:{path}", **kw))
    return res, read_run(res.ledger_path)


def decision(run: dict, step: int, symbol: str = SYM) -> pd.Series:
    d = run["decisions"]
    return d[(d["step"] == step) & (d["symbol"] == symbol)].iloc[0]


def orders_at(run: dict, step: int, symbol: str = SYM) -> pd.DataFrame:
    o = run["orders"]
    return o[(o["step"] == step) & (o["symbol"] == symbol)]


def mark_at(run: dict, step: int, symbol: str = SYM) -> float:
    p = run["positions"]
    return float(p[(p["step"] == step) & (p["symbol"] == symbol)]["mark"].iloc[0])


def nothing_written(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


# --------------------------------------------------------------- bad bars in the window
def _nan_close(df, t):
    df.loc[t, "close"] = np.nan


def _nan_row(df, t):
    df.loc[t, :] = np.nan


def _inf_high(df, t):
    df.loc[t, "high"] = np.inf


def _negative_price(df, t):
    df.loc[t, "low"] = -1.0


def _high_below_low(df, t):
    df.loc[t, "high"] = df.loc[t, "low"] * 0.99


def _negative_volume(df, t):
    df.loc[t, "volume"] = -5.0


def _price_x100(df, t):  # a 100x print: consistent OHLC, every price a hundred times over
    df.loc[t, ["open", "high", "low", "close"]] *= 100.0


DEFECTS = {
    "nan_close": (_nan_close, "NAN_VALUE"),
    "nan_row": (_nan_row, "NAN_VALUE"),
    "inf_high": (_inf_high, "INF_VALUE"),
    "negative_price": (_negative_price, "NON_POSITIVE_PRICE"),
    "high_below_low": (_high_below_low, "OHLC_INCONSISTENT"),
    "negative_volume": (_negative_volume, "NEGATIVE_VOLUME"),
    "price_x100": (_price_x100, "PRICE_JUMP"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_bar_when_defective_then_no_order_bad_bar_event_and_last_good_mark(tmp_path, spx,
                                                                            defect):
    inject, code = DEFECTS[defect]
    df = spx.copy()
    t = at(df, K)
    good_prev_close = float(df["close"].loc[at(df, K - 1)])
    inject(df, t)

    res, run = run_csv(tmp_path, df)

    d = decision(run, K)
    assert d["verdict"] == "BAD_BAR"
    assert d["reason"].startswith(f"BAD_BAR: {code}: ") and d["reason"].endswith(f"symbol={SYM}")
    ev = run["risk_events"]
    bad = ev[(ev["kind"] == "data") & (ev["code"] == "BAD_BAR")]
    assert list(bad["step"]) == [K] and bad["reason"].iloc[0] == d["reason"]
    assert orders_at(run, K).empty  # the position held since step 1 is not touched
    assert mark_at(run, K) == good_prev_close  # equity keeps the last good mark
    eq = run["equity"].set_index("step")
    qty = float(run["fills"]["qty"].sum())
    assert eq.loc[K, "equity"] == pytest.approx(eq.loc[K, "cash"] + qty * good_prev_close)
    assert decision(run, K + 1)["verdict"] != "BAD_BAR"  # one bad bar, one refusal
    assert res.summary["bad_bars"] == 1


def test_bar_when_bad_at_the_fill_step_then_the_open_order_waits_for_the_next_good_bar(
        tmp_path, spx):
    df = spx.copy()
    _price_x100(df, at(df, 1))  # step 0 decides a buy; step 1's open is a 100x print

    _, run = run_csv(tmp_path, df)

    [o] = run["orders"].itertuples()
    assert o.step == 0 and o.status == "filled"
    assert o.fill_ts == at(spx, 2)  # not at step 1's bad open
    assert o.fill_price == pytest.approx(float(spx["open"].loc[at(spx, 2)]), rel=1e-3)


def test_bar_when_unadjusted_split_then_every_later_bar_refused_and_unknown_adjustment_flagged(
        tmp_path, spx):
    df = spx.copy()
    split = at(df, K)
    df.loc[df.index >= split, ["open", "high", "low", "close"]] /= 4.0  # a 4:1 split, raw

    res, run = run_csv(tmp_path, df)

    d = run["decisions"]
    after = d[d["step"] >= K]
    assert (after["verdict"] == "BAD_BAR").all()
    assert after["reason"].str.startswith("BAD_BAR: PRICE_JUMP: ").all()
    assert "an unadjusted split or a unit error?" in after["reason"].iloc[0]
    assert run["orders"][run["orders"]["step"] >= K].empty
    assert mark_at(run, len(d) - 1) == float(spx["close"].loc[at(spx, K - 1)])
    assert res.summary["bad_bars"] == len(after)
    # the whole-frame findings, recorded at step 0: a CSV's adjustment state is unknown
    ev = run["risk_events"]
    start = ev[(ev["step"] == 0) & (ev["kind"] == "data")].set_index("code")
    assert "adjustment state is unknown" in start.loc["ADJUSTMENT_UNKNOWN", "reason"]
    assert "(inside the window: the bar gate checks it at its step)" in start.loc[
        "PRICE_JUMP", "reason"]
    assert res.summary["data_findings"]["ADJUSTMENT_UNKNOWN"] == 1


def test_bars_when_bad_in_warmup_history_then_warned_in_the_ledger_and_the_session_trades(
        tmp_path, spx):
    df = spx.copy()
    early = df.index[df.index < pd.Timestamp(START, tz="UTC")]
    _nan_close(df, early[-10])
    _price_x100(df, early[-5])

    res, run = run_csv(tmp_path, df)

    ev = run["risk_events"]
    warned = ev[(ev["kind"] == "data") & ev["reason"].str.contains("warm-up history")]
    days = {c: set(g["ts"]) for c, g in warned.groupby("code")}
    assert days["NAN_VALUE"] == {early[-10]}
    assert days["PRICE_JUMP"] == {early[-5], early[-4]}  # the whole-frame check: up, then down
    assert (warned["step"] == 0).all()
    assert res.summary["bad_bars"] == 0
    assert decision(run, 0)["verdict"] == "SUBMITTED"  # the window's bars are good


def test_features_and_model_never_see_a_refused_bar(tmp_path, spx):
    df = spx.copy()
    n_window = int((df.index >= pd.Timestamp(START, tz="UTC")).sum())
    _price_x100(df, at(df, n_window - 3))
    s = Session(SessionSpec(**spec(tmp_path, f"csv:{write_csv(tmp_path / 'data', df)}",
                                   model="baseline:sma_cross")))
    s.run()
    good = spx["close"].to_numpy()
    assert s.model.count[0] == len(s.feed.clock) - 1  # every bar but the refused one
    assert np.nanmax(s.model.closes[0]) < 2 * np.median(good)
    assert np.nanmax(s.features.closes[0]) < 2 * np.median(good)
    assert s.last_close[0] == good[-1]


def test_bar_when_stamped_after_the_session_clock_then_refused(tmp_path, spx):
    now = pd.Timestamp("2018-12-27 12:00", tz="UTC")  # the last two bars are "tomorrow"
    n_window = int((spx.index >= pd.Timestamp(START, tz="UTC")).sum())

    res, run = run_csv(tmp_path, spx.copy(), clock=lambda: now.timestamp())

    d = run["decisions"].set_index("step")
    future = d[d["ts"] > now]
    assert list(future.index) == [n_window - 2, n_window - 1]
    assert (future["verdict"] == "BAD_BAR").all()
    assert future["reason"].str.startswith("BAD_BAR: FUTURE_TIMESTAMP: bar stamped 2018-12-").all()
    assert run["orders"][run["orders"]["step"] >= n_window - 2].empty
    assert mark_at(run, n_window - 1) == float(spx["close"].iloc[-3])  # 2018-12-27
    found = run["risk_events"][run["risk_events"]["code"] == "FUTURE_TIMESTAMP"]
    assert len(found) == 2 and (found["step"] == 0).all()


def test_missing_session_then_flagged_in_the_ledger_and_never_filled(tmp_path, spx):
    gap = at(spx, 30)
    df = spx.drop(index=gap)

    res, run = run_csv(tmp_path, df)

    ev = run["risk_events"]
    [miss] = ev[ev["code"] == "MISSING_SESSION"].itertuples()
    assert miss.step == 0 and miss.ts == gap
    assert f"no bar for {gap.date()}" in miss.reason and "never filled" not in miss.reason
    assert "flagged, not filled" in miss.reason
    assert gap not in set(run["steps"]["ts"])  # no invented bar, no step on that day
    assert len(run["steps"]) == int((df.index >= pd.Timestamp(START, tz="UTC")).sum())
    assert res.summary["data_findings"]["MISSING_SESSION"] == 1


def test_stale_last_bar_in_replay_then_flagged_and_no_decision_after_it(tmp_path, spx):
    folder = tmp_path / "data"
    write_csv(folder, spx)
    ndx = load(["^IXIC"], start="2018-05-01", end="2018-12-14")["^IXIC"]  # its feed stops
    write_csv(folder, ndx, name="NDX")

    res = run_session(**spec(tmp_path, f"csv:{folder}", symbols=[SYM, "NDX"]))
    run = read_run(res.ledger_path)

    ev = run["risk_events"]
    [stale] = ev[(ev["code"] == "STALE_LAST_BAR") & (ev["symbol"] == "NDX")].itertuples()
    assert stale.step == 0 and "2018-12-14" in stale.reason
    d = run["decisions"]
    assert d[d["symbol"] == "NDX"]["ts"].max() == pd.Timestamp("2018-12-14", tz="UTC")


def _live(tmp_path: Path, csv: Path, now: pd.Timestamp):
    clock = {"t": now.timestamp()}

    def sleep(dt: float) -> None:
        clock["t"] += dt

    res = run_session(**spec(tmp_path, f"csv:{csv}", mode="live", start=None, end=None,
                             poll_seconds=60, clock=lambda: clock["t"], sleep=sleep,
                             max_steps=1))
    return read_run(res.ledger_path)


@pytest.mark.parametrize(("now", "verdict"), [
    ("2018-12-31 18:00", "SUBMITTED"),  # the day's bar: fresh
    ("2019-01-15 15:00", "BAD_BAR"),  # two weeks of sessions without a bar: stale
])
def test_stale_last_bar_live_then_no_order_on_it(tmp_path, spx, now, verdict):
    run = _live(tmp_path, write_csv(tmp_path / "data", spx), pd.Timestamp(now, tz="UTC"))

    d = decision(run, 0)
    assert d["verdict"] == verdict
    if verdict == "BAD_BAR":
        assert d["reason"].startswith("BAD_BAR: STALE_LAST_BAR: newest bar stamped 2018-12-31")
        assert run["orders"].empty


# ------------------------------------------------------- frames the loop cannot replay
def _dup_row(df):
    t = at(df, K)
    return pd.concat([df, df.loc[[t]]]).sort_index(kind="stable")


def _unordered(df):
    i = df.index.get_loc(at(df, K))
    order = list(range(len(df)))
    order[i], order[i + 1] = order[i + 1], order[i]
    return df.iloc[order]


@pytest.mark.parametrize(("mangle", "message"), [
    (_dup_row, r"SPX: duplicate bar timestamps \(first 2018-10-08"),
    (_unordered, r"SPX: bar timestamps are not in order"),
])
def test_timestamps_when_duplicate_or_unordered_then_refused_before_any_run_folder(
        tmp_path, spx, mangle, message):
    with pytest.raises(DataError, match=message):
        run_csv(tmp_path, mangle(spx.copy()))
    assert nothing_written(tmp_path)


def test_frame_when_empty_then_refused_before_any_run_folder(tmp_path, spx):
    header_only = tmp_path / "data" / f"{SYM}.csv"
    header_only.parent.mkdir()
    header_only.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(EmptyDataError, match=r"no data for symbol 'SPX'"):
        run_session(**spec(tmp_path, f"csv:{header_only}"))

    class EmptySource(FrameSource):  # a source that breaks the contract: no error, no rows
        def fetch(self, symbol, start=None, end=None, interval="1d"):
            return spx.iloc[:0].copy()

    with pytest.raises(DataError, match="SPX: the source returned an empty frame"):
        run_session(**spec(tmp_path, EmptySource({})))
    with pytest.raises(DataError, match=r"SPX: no bars between 2019-03-01 and 2019-06-28"):
        run_csv(tmp_path, spx, start="2019-03-01", end="2019-06-28")
    assert nothing_written(tmp_path)


def test_frame_when_multiindex_columns_then_refused_naming_the_fix(tmp_path, spx):
    yf_shaped = spx.copy()
    yf_shaped.columns = pd.MultiIndex.from_product(
        [[c.title() for c in spx.columns], [SYM]], names=["Price", "Ticker"])
    path = tmp_path / "data" / f"{SYM}.csv"
    path.parent.mkdir()
    yf_shaped.to_csv(path)  # two header rows, as a yf.download frame saves
    with pytest.raises(DataError, match=r"has MultiIndex columns .*flatten_yf_columns"):
        run_session(**spec(tmp_path, f"csv:{path}"))
    with pytest.raises(DataError, match=r"SPX: MULTIINDEX_COLUMNS: columns are a 2-level "
                                        r"MultiIndex .*flatten_yf_columns"):
        run_session(**spec(tmp_path, FrameSource({SYM: yf_shaped})))
    assert nothing_written(tmp_path)


def test_cli_paper_when_csv_has_duplicate_rows_then_exit_2_with_the_reason_and_no_run(
        tmp_path, spx, capsys):
    path = write_csv(tmp_path / "data", _dup_row(spx.copy()))
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    code = main(["paper", "--symbols", SYM, "--source", f"csv:{path}", "--start", START,
                 "--end", END, "--model", "baseline:buy_and_hold", "--config-dir", str(cfg),
                 "--run-dir", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err
    assert "research-lib paper: error: SPX: duplicate bar timestamps" in err
    assert "fix the source" in err
    assert nothing_written(tmp_path)


# ---------------------------------------------------------------- machine timezone
_TZ_SCRIPT = """
import json, sys
from research_lib.flags import KillSwitch
from research_lib.ledger_read import deterministic_dump
from research_lib.session import run_session
csv, cfg, runs = sys.argv[1:4]
res = run_session(symbols=["SPX"], source="csv:" + csv, start="2018-10-01", end="2018-12-31",
                  model="baseline:sma_cross", run_dir=runs, config_dir=cfg, run_id="tz",
                  kill_switch=KillSwitch(runs + "/kill.flag", env={}), log_file=False)
print(json.dumps(deterministic_dump(res.ledger_path), sort_keys=True, default=str))
"""


def test_machine_timezone_does_not_change_the_ledger_or_the_decisions(tmp_path, spx):
    df = spx.copy()
    _nan_close(df, at(df, 12))  # a refused bar too: its event must not move either
    csv = write_csv(tmp_path / "data", df, naive=True)  # naive dates: read as UTC
    cfg = write_config(tmp_path / "config", signal={"target_weight": 0.10})
    procs = {}
    for tz in ("UTC", "Asia/Tokyo", "America/New_York"):
        runs = tmp_path / tz.replace("/", "_")
        env = {**os.environ, "TZ": tz, "RESEARCH_LIB_HOME": str(ROOT)}
        procs[tz] = subprocess.Popen(
            [sys.executable, "-c", _TZ_SCRIPT, str(csv), str(cfg), str(runs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    dumps = {}
    for tz, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        dumps[tz] = json.loads(out)
    assert dumps["UTC"]["decisions"] and dumps["UTC"]["fills"]
    assert any("BAD_BAR: NAN_VALUE" in json.dumps(r) for r in dumps["UTC"]["risk_events"])
    assert dumps["Asia/Tokyo"] == dumps["UTC"]
    assert dumps["America/New_York"] == dumps["UTC"]


# ------------------------------------------------- the gate's rules are the sanity suite's
def test_bar_faults_when_one_defect_per_bar_then_the_same_code_as_the_whole_frame_check(spx):
    from research_lib.data.sanity import BAR_FAULTS, SanityConfig, bar_faults, check_frame

    for name, (inject, code) in DEFECTS.items():
        df = spx.iloc[:80].copy()
        t = df.index[70]
        inject(df, t)
        whole = {f.code for f in check_frame(df, SYM, SanityConfig(calendar="XNYS"))
                 if f.severity == "error" and f.timestamp == t}
        row = df.loc[[t]]
        ref = np.array([float(df["close"].iloc[69])])
        got = bar_faults(*(row[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
                         ref, np.array([0.25]))
        assert BAR_FAULTS[int(got[0])] == code, name
        assert code in whole, name


def test_bar_faults_when_few_or_many_bars_then_the_same_codes():
    from research_lib.data.sanity import bar_faults

    rng = np.random.default_rng(5)
    n = 400
    c = rng.uniform(50, 150, n)
    o = c * rng.uniform(0.97, 1.03, n)
    h, lo = np.maximum(o, c) * 1.01, np.minimum(o, c) * 0.99
    v = rng.uniform(0, 1e6, n)
    ref = c * rng.uniform(0.7, 1.3, n)  # some moves beyond 25%
    ref[rng.random(n) < 0.05] = np.nan  # no reference yet: no jump check
    for arr, bad in ((c, np.nan), (o, np.inf), (lo, -1.0), (h, 1.0), (v, -5.0), (v, np.inf)):
        arr[rng.random(n) < 0.03] = bad
    ns = np.where(rng.random(n) < 0.03, 10, 0)
    stale = rng.random(n) < 0.03
    many = bar_faults(o, h, lo, c, v, ref, np.full(n, 0.25), ns, 5, stale)  # numpy
    assert len(set(many.tolist())) == 9  # every code and "usable" occur
    for i in range(0, n, 2):  # two at a time: the plain-float path first
        few = bar_faults(o[i:i + 2], h[i:i + 2], lo[i:i + 2], c[i:i + 2], v[i:i + 2],
                         ref[i:i + 2], np.full(2, 0.25), ns[i:i + 2], 5, stale[i:i + 2])
        assert few.tolist() == many[i:i + 2].tolist(), i
