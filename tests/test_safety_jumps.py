"""Issue 10, class 5: the bar gate never freezes a position on a real move.

A close beyond the jump threshold of the last good close is held (``JUMP_PENDING``) and,
once ``gate.jump_confirm_bars`` bars hold the new level, accepted (``JUMP_CONFIRMED``); a
split-like ratio stays refused; a position on a refused symbol is named in the summary as a
stale mark; the thresholds are validated config keys. Real series: the shipped sample's
^GSPC (2018) with an injected takeover-like jump or an unadjusted split, as in
``tests/test_bad_data.py``; the fast-vs-step cases use synthetic random walks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from research_lib.cli import main
from research_lib.config import load_session
from research_lib.data import load
from research_lib.errors import ConfigError
from research_lib.ledger_read import read_run
from research_lib.paper.summary import format_summary
from research_lib.session import Session, SessionSpec, run_session
from tests.kit.paper import (
    FrameSource,
    ScriptedModel,
    quiet_switch,
    random_walk,
    write_config,
)
from tests.test_bad_data import END, START, SYM, at, decision, mark_at, write_csv
from tests.test_fast_replay import equivalent, resumed_matches

K = 5  # the window bar where the jump happens (bought at step 0, filled at step 1)


# ------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    """Real ^GSPC bars from the shipped sample: warm-up, then the 2018 Q4 window."""
    return load(["^GSPC"], start="2018-05-01", end=END)["^GSPC"]


def gate_config(folder: Path, **gate) -> Path:
    """The golden test config (10% target) with a ``gate`` section in session.yaml."""
    cfg = write_config(folder, signal={"target_weight": 0.10})
    if gate:
        p = cfg / "session.yaml"
        data = yaml.safe_load(p.read_text())
        data["gate"] = gate
        p.write_text(yaml.safe_dump(data))
    return cfg


def scaled(df: pd.DataFrame, first: pd.Timestamp, factor: float, volume: float = 1.0,
           only: pd.Timestamp | None = None) -> pd.DataFrame:
    """Every bar from ``first`` (or only the bar ``only``) with prices times ``factor``."""
    out = df.copy()
    sel = out.index == only if only is not None else out.index >= first
    out.loc[sel, ["open", "high", "low", "close"]] *= factor
    out.loc[sel, "volume"] *= volume
    return out


def run_frame(tmp_path: Path, df: pd.DataFrame, cfg: Path | None = None, **kw):
    path = write_csv(tmp_path / "data", df)
    spec = {"symbols": [SYM], "source": f"csv:{path}", "start": START, "end": END,
            "run_dir": tmp_path / "runs", "model": "baseline:buy_and_hold",
            "config_dir": cfg or gate_config(tmp_path / "config"),
            "kill_switch": quiet_switch(tmp_path), "log_file": False, "run_id": "jumps"} | kw
    res = run_session(**spec)
    return res, read_run(res.ledger_path)


def events(run: dict, code: str) -> pd.DataFrame:
    ev = run["risk_events"]
    return ev[ev["code"] == code]


def window(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.index >= pd.Timestamp(START, tz="UTC")]


# --------------------------------------------------------------- a real move confirmed
def test_jump_when_a_takeover_like_rise_holds_then_accepted_after_the_confirm_bars_and_marked_there(
        tmp_path, spx):
    df = scaled(spx, at(spx, K), 1.4, volume=3.0)  # +40% that holds (Airgas-like)

    res, run = run_frame(tmp_path, df)

    for k in (K, K + 1, K + 2):  # the jump bar and two more held: no feature, no order
        d = decision(run, k)
        assert d["verdict"] == "BAD_BAR" and "JUMP_PENDING" in d["reason"], d["reason"]
        assert mark_at(run, k) == float(spx["close"].loc[at(spx, K - 1)])
    assert decision(run, K + 3)["verdict"] != "BAD_BAR"
    conf = events(run, "JUMP_CONFIRMED")
    assert list(conf["step"]) == [K + 3]
    move = float(df["close"].loc[at(spx, K)]) / float(spx["close"].loc[at(spx, K - 1)]) - 1
    assert f"move={move:+.4f}" in conf["reason"].iloc[0] and move > 0.39
    assert "held=3 bar(s)" in conf["reason"].iloc[0]
    w = window(df)
    last = len(w) - 1
    assert mark_at(run, last) == pytest.approx(float(w["close"].iloc[-1]))
    assert res.summary["bad_bars"] == 3
    assert res.summary["stale_marks"] == {}
    assert res.summary["data_findings"]["JUMP_CONFIRMED"] == 1
    sc = run["state_changes"]
    assert sc[sc["scope"] == SYM].empty  # the price-band breaker sees held -> confirmed bars
    # the position gained the jump: equity above the run without it
    flat, _ = run_frame(tmp_path / "plain", spx)
    assert res.summary["final_equity"] > flat.summary["final_equity"] + 3000


def test_jump_when_confirm_bars_is_one_then_accepted_at_the_next_bar(tmp_path, spx):
    df = scaled(spx, at(spx, K), 1.4)

    _, run = run_frame(tmp_path, df, gate_config(tmp_path / "config", jump_confirm_bars=1))

    assert decision(run, K)["verdict"] == "BAD_BAR"
    assert decision(run, K + 1)["verdict"] != "BAD_BAR"
    assert list(events(run, "JUMP_CONFIRMED")["step"]) == [K + 1]


def test_jump_when_the_xnys_threshold_is_raised_then_a_forty_percent_move_is_no_jump(
        tmp_path, spx):
    df = scaled(spx, at(spx, K), 1.4)

    res, run = run_frame(tmp_path, df, gate_config(tmp_path / "config",
                                                   jump_threshold_xnys=0.5))

    assert res.summary["bad_bars"] == 0
    assert decision(run, K)["verdict"] != "BAD_BAR"
    # the start-up whole-frame check uses the same threshold: no PRICE_JUMP finding
    assert events(run, "PRICE_JUMP").empty


def test_jump_when_the_next_bar_reverses_then_the_jump_is_dropped_and_the_bar_accepted(
        tmp_path, spx):
    df = scaled(spx, at(spx, K), 1.4, only=at(spx, K))  # one bad print

    res, run = run_frame(tmp_path, df)

    assert decision(run, K)["verdict"] == "BAD_BAR"
    assert decision(run, K + 1)["verdict"] != "BAD_BAR"
    rev = events(run, "JUMP_REVERSED")
    assert list(rev["step"]) == [K + 1]
    assert events(run, "JUMP_CONFIRMED").empty
    assert res.summary["bad_bars"] == 1 and res.summary["stale_marks"] == {}


def test_jump_when_the_new_level_never_holds_then_never_confirmed_and_the_mark_is_named_stale(
        tmp_path, spx):
    df = spx.copy()
    w = window(df).index
    ref = float(spx["close"].loc[at(spx, K - 1)])
    for k, t in enumerate(w[K:]):  # +40%, +160%, +40%, ...: no level holds
        c = ref * (1.4 if k % 2 == 0 else 2.6)
        df.loc[t, ["open", "high", "low", "close"]] = [c, c * 1.001, c * 0.999, c]

    res, run = run_frame(tmp_path, df)

    d = run["decisions"]
    assert (d[d["step"] >= K]["verdict"] == "BAD_BAR").all()
    assert events(run, "JUMP_CONFIRMED").empty
    stale = res.summary["stale_marks"][SYM]
    assert stale["bars_refused"] == len(w) - K
    assert stale["last_good"] == float(spx["close"].loc[at(spx, K - 1)])


# ------------------------------------------------------------ splits stay refused
def test_split_when_unadjusted_two_for_one_then_refused_to_the_end_and_summary_names_the_stale_mark(
        tmp_path, spx):
    df = scaled(spx, at(spx, K), 0.5, volume=2.0)

    res, run = run_frame(tmp_path, df)

    d = run["decisions"]
    after = d[d["step"] >= K]
    assert (after["verdict"] == "BAD_BAR").all()
    assert after["reason"].str.contains("LIKELY_SPLIT").all()
    assert events(run, "JUMP_CONFIRMED").empty
    last_good = float(spx["close"].loc[at(spx, K - 1)])
    since = at(spx, K).isoformat()
    stale = res.summary["stale_marks"][SYM]
    assert stale["since"] == since
    assert stale["last_good"] == last_good
    assert stale["bars_refused"] == len(after)
    line = f"stale      {SYM} marked at {last_good:.10g} since {since} ({len(after)} bars refused)"
    assert line in format_summary(res.summary).splitlines()


def test_split_when_the_price_drifts_off_the_split_ratio_later_then_still_refused(
        tmp_path, spx):
    # a 2:1 split, then the raw price drifts 8% up: 0.54 of the old level is no split
    # ratio any more, but the symbol stays locked (a split is never confirmed as a move)
    df = scaled(spx, at(spx, K), 0.5, volume=2.0)
    df = scaled(df, at(spx, K + 2), 1.08)

    res, run = run_frame(tmp_path, df)

    d = run["decisions"]
    assert (d[d["step"] >= K]["verdict"] == "BAD_BAR").all()
    assert d[d["step"] >= K + 2]["reason"].str.contains("LIKELY_SPLIT: locked since").all()
    assert SYM in res.summary["stale_marks"]


def test_unit_error_when_every_later_bar_is_a_hundred_times_then_never_confirmed(
        tmp_path, spx):
    df = scaled(spx, at(spx, K), 100.0)

    res, run = run_frame(tmp_path, df)

    d = run["decisions"]
    assert (d[d["step"] >= K]["verdict"] == "BAD_BAR").all()
    assert events(run, "JUMP_CONFIRMED").empty
    assert SYM in res.summary["stale_marks"]


@pytest.mark.parametrize("ratio, volume_ratio, split", [
    (0.5, 2.1, True),  # 2:1, volume up: a split
    (0.5, 1.0, True),  # 2:1, volume unknown or unchanged: a split
    (0.333, float("nan"), True),  # 3:1
    (2.0, 0.5, True),  # 1:2 reverse split
    (0.5, 0.4, False),  # halved on falling volume: a market move
    (1.4, 3.0, False),  # a takeover bid
    (0.7, 2.0, False),
    (100.0, 1.0, True),  # unit error
    (0.05, 1.0, True),
])
def test_split_like_when_ratio_and_volume_given_then_split_or_move(ratio, volume_ratio, split):
    from research_lib.data.jumps import split_like

    assert (split_like(ratio, volume_ratio, 0.02) is not None) is split


# ------------------------------------------------------------------- features, resume
def test_jump_when_confirmed_then_the_model_saw_every_held_bar_in_order(tmp_path, spx):
    df = scaled(spx, at(spx, K), 1.4)
    path = write_csv(tmp_path / "data", df)
    end = at(spx, K + 4)  # the jump bar, two held, the confirming bar and one more
    s = Session(SessionSpec(symbols=[SYM], source=f"csv:{path}", start=START, end=end,
                            run_dir=tmp_path / "runs", model="baseline:sma_cross",
                            config_dir=gate_config(tmp_path / "config"),
                            kill_switch=quiet_switch(tmp_path), log_file=False, run_id="f"))
    s.run()

    assert list(s.model.closes[0][-5:]) == [float(df["close"].loc[at(spx, K + j)])
                                             for j in range(5)]
    closes = df[df.index <= end]["close"].to_numpy()
    np.testing.assert_array_equal(s.model.closes[0], closes[-s.model.closes.shape[1]:])
    assert s.last_close[0] == closes[-1] and s.prev_close[0] == closes[-2]


def _jumpy_frames() -> dict[str, pd.DataFrame]:
    aaa = random_walk(160, seed=71, symbol="AAA")
    aaa.iloc[100:, :4] *= 1.45  # a takeover jump that holds
    bbb = random_walk(160, seed=72, price=60.0, symbol="BBB")
    bbb.iloc[90:, :4] *= 0.5  # an unadjusted 2:1 split
    bbb.iloc[90:, 4] *= 2.0
    ccc = random_walk(160, seed=73, price=9000.0, symbol="CCC-USD")
    ccc.iloc[120, :4] *= 1.9  # one bad print, reversed
    return {"AAA": aaa, "BBB": bbb, "CCC-USD": ccc}


@pytest.mark.parametrize("model", ["baseline:buy_and_hold", "baseline:sma_cross"])
def test_fast_replay_when_a_jump_is_confirmed_and_a_split_refused_then_same_ledger_as_steps(
        tmp_path, model):
    src = FrameSource(_jumpy_frames())
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 25})
    step, _ = equivalent(tmp_path, symbols=["AAA", "BBB", "CCC-USD"], source=src,
                         start="2021-02-05", model=model, config_dir=cfg,
                         what=f"{model} jump and split")
    run = read_run(step.ledger_path)
    assert len(events(run, "JUMP_CONFIRMED")) == 1
    assert len(events(run, "JUMP_REVERSED")) == 1
    assert "BBB" in step.summary["stale_marks"] or model.endswith("cross")


@pytest.mark.parametrize("after, engines", [(0, ("step", "step")), (1, ("fast", "fast")),
                                            (2, ("step", "fast")), (1, ("fast", "step"))])
def test_resume_when_stopped_while_a_jump_is_pending_then_the_same_ledger(tmp_path, after,
                                                                          engines):
    # stop just before AAA's jump bar, on it or one bar later (pending), then resume
    src = FrameSource(_jumpy_frames())
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 25})
    kw = dict(symbols=["AAA", "BBB", "CCC-USD"], source=src, start="2021-02-05",
              model="baseline:buy_and_hold", config_dir=cfg)
    want = run_session(run_dir=tmp_path / "one" / "runs", run_id="eq",
                       kill_switch=quiet_switch(tmp_path / "one"), log_file=False, **kw)
    run = read_run(want.ledger_path)
    assert len(events(run, "JUMP_CONFIRMED")) == 1
    d = run["decisions"]
    jump = int(d[(d["symbol"] == "AAA") & d["reason"].str.contains("JUMP_PENDING",
                                                                     na=False)]["step"].min())
    resumed_matches(tmp_path, want, jump + after, engines, **kw)


# ------------------------------------------------------------------- config refusals
@pytest.mark.parametrize("key, value, says", [
    ("jump_confirm_bars", 0, "gate.jump_confirm_bars must be in [1, 20], got 0"),
    ("jump_confirm_bars", 2.5, "gate.jump_confirm_bars must be a whole number, got 2.5"),
    ("jump_threshold_xnys", 0, "gate.jump_threshold_xnys must be in (0, 10], got 0"),
    ("jump_threshold_xnys", -0.25, "gate.jump_threshold_xnys must be in (0, 10], got -0.25"),
    ("jump_threshold_24_7", "60%", "gate.jump_threshold_24_7 must be a number, got '60%'"),
    ("jump_threshold_24_7", float("nan"), "gate.jump_threshold_24_7 must be a finite number"),
    ("split_tolerance", 0.5, "gate.split_tolerance must be in [0, 0.1], got 0.5"),
    ("jump_treshold", 0.3, "unknown key gate.jump_treshold; allowed keys: jump_confirm_bars"),
])
def test_gate_config_when_a_key_is_out_of_range_then_refused_naming_key_and_value(
        tmp_path, key, value, says):
    cfg = gate_config(tmp_path / "config", **{key: value})
    with pytest.raises(ConfigError) as e:
        load_session(cfg / "session.yaml")
    assert says in str(e.value) and "session.yaml" in str(e.value)


def test_gate_config_when_invalid_then_paper_exits_2_and_writes_nothing(tmp_path, capsys):
    cfg = gate_config(tmp_path / "config", jump_confirm_bars=-1)
    code = main(["paper", "--symbols", "^GSPC", "--start", START, "--end", END,
                 "--config-dir", str(cfg), "--run-dir", str(tmp_path / "runs"),
                 "--model", "baseline:buy_and_hold"])
    assert code == 2
    assert "gate.jump_confirm_bars must be in [1, 20], got -1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_gate_config_when_not_given_then_defaults_match_the_shipped_file():
    shipped = load_session(Path(__file__).resolve().parents[1] / "config" / "session.yaml")
    g = shipped.gate
    assert (g.jump_threshold_xnys, g.jump_threshold_24_7, g.jump_confirm_bars,
            g.split_tolerance) == (0.25, 0.60, 3, 0.02)
    text = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "session.yaml")
                          .read_text())
    assert set(text["gate"]) == {"jump_threshold_xnys", "jump_threshold_24_7",
                                 "jump_confirm_bars", "split_tolerance"}


# --------------------------------------------------------------- variants (red team)
def test_jump_when_it_happens_in_the_warmup_history_then_confirmed_there_and_the_window_trades(
        tmp_path, spx):
    early = spx.index[spx.index < pd.Timestamp(START, tz="UTC")]
    df = scaled(spx, early[-10], 1.4)  # a held jump ten bars before the window

    res, run = run_frame(tmp_path, df)

    assert res.summary["bad_bars"] == 0
    assert (run["decisions"]["verdict"] != "BAD_BAR").all()
    assert mark_at(run, 0) == pytest.approx(float(df["close"].loc[at(spx, 0)]))
    assert res.summary["fills"] >= 1


def test_jump_when_still_pending_at_the_end_of_the_run_then_the_summary_names_the_stale_mark(
        tmp_path, spx):
    w = window(spx)
    df = scaled(spx, w.index[-2], 1.4)  # the last two bars: no time to confirm

    res, run = run_frame(tmp_path, df)

    stale = res.summary["stale_marks"][SYM]
    assert stale["bars_refused"] == 2 and stale["since"] == w.index[-2].isoformat()
    assert stale["last_good"] == float(w["close"].iloc[-3])
    assert res.summary["final_equity"] == pytest.approx(float(run["equity"]["equity"].iloc[-1]))


def test_jump_when_a_crypto_symbol_moves_beyond_its_24_7_threshold_then_held_and_confirmed(
        tmp_path):
    btc = load(["BTC-USD"], start="2019-01-01", end="2019-06-30")["BTC-USD"]
    k = btc.index[120]
    df = scaled(btc, k, 1.45)  # +45%: inside the default 60%, beyond a 30% setting
    cfg = gate_config(tmp_path / "config", jump_threshold_24_7=0.30, jump_confirm_bars=2)
    res = run_session(symbols=["BTC-USD"], source=FrameSource({"BTC-USD": df}),
                      start="2019-04-01", end="2019-06-30", model="baseline:buy_and_hold",
                      config_dir=cfg, run_dir=tmp_path / "runs",
                      kill_switch=quiet_switch(tmp_path), log_file=False)
    run = read_run(res.ledger_path)
    d = run["decisions"]
    held = d[d["verdict"] == "BAD_BAR"]
    assert list(pd.DatetimeIndex(held["ts"])) == list(btc.index[120:122])
    conf = events(run, "JUMP_CONFIRMED")
    assert list(pd.DatetimeIndex(conf["ts"])) == [btc.index[122]] and "threshold=0.3" in \
        conf["reason"].iloc[0]
    assert res.summary["stale_marks"] == {}


@pytest.mark.parametrize("xnys, exit_code", [(None, 1), (0.5, 0)])
def test_data_check_when_the_gate_threshold_is_configured_then_the_same_jumps_as_a_paper_run(
        tmp_path, monkeypatch, capsys, spx, xnys, exit_code):
    home = tmp_path / "home"
    gate_config(home / "config", **({} if xnys is None else {"jump_threshold_xnys": xnys}))
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    path = write_csv(tmp_path / "data", scaled(spx, at(spx, K), 1.4))

    code = main(["data", "check", "--symbols", SYM, "--source", f"csv:{path}"])

    out = capsys.readouterr().out
    assert code == exit_code, out
    assert bool(re.search(r"ERROR +PRICE_JUMP", out)) is (xnys is None)


def test_report_when_a_position_is_marked_stale_then_the_report_lists_it(tmp_path, spx):
    from research_lib.report import paper_session_report

    res, _ = run_frame(tmp_path, scaled(spx, at(spx, K), 0.5, volume=2.0))

    rep = paper_session_report(res.ledger_path)
    t = rep.stale_marks()
    assert list(t["symbol"]) == [SYM]
    assert int(t["bars_refused"].iloc[0]) == res.summary["stale_marks"][SYM]["bars_refused"]
    assert f"stale={SYM}@" in rep.summary_text()


def test_fast_replay_when_the_onnx_router_sees_a_confirmed_jump_then_same_ledger_as_steps(
        tmp_path):
    aaa = random_walk(260, seed=81, symbol="AAA")
    aaa.iloc[200:, :4] *= 1.4  # held: confirmed, then the router gets the held bars
    btc = random_walk(260, seed=82, price=9000.0, vol=0.04, symbol="BTC-USD")
    btc.iloc[210:, :4] *= 0.5  # an unadjusted 2:1 split in a 24/7 series
    btc.iloc[210:, 4] *= 2.0
    src = FrameSource({"AAA": aaa, "BTC-USD": btc})
    root = Path(__file__).resolve().parents[1]
    step, _ = equivalent(tmp_path, symbols=["AAA", "BTC-USD"], source=src, start="2021-05-15",
                         config_dir=root / "config", what="router + jump and split")
    run = read_run(step.ledger_path)
    assert list(events(run, "JUMP_CONFIRMED")["symbol"]) == ["AAA"]
    d = run["decisions"]
    assert d[(d["symbol"] == "BTC-USD") & (d["verdict"] == "BAD_BAR")]["reason"].str.contains(
        "LIKELY_SPLIT").all()


def test_hot_reload_when_the_gate_is_edited_mid_run_then_the_run_keeps_its_start_thresholds(
        tmp_path):
    aaa = random_walk(140, seed=91, symbol="AAA")
    aaa.iloc[100:, :4] *= 1.4
    cfg = gate_config(tmp_path / "config")

    def hook(call: int) -> None:
        if call == 3:  # a looser threshold would take the +40% as no jump at all
            p = cfg / "session.yaml"
            data = yaml.safe_load(p.read_text())
            data["gate"] = {"jump_threshold_xnys": 0.5}
            p.write_text(yaml.safe_dump(data))

    s = Session(SessionSpec(symbols=["AAA"], source=FrameSource({"AAA": aaa}),
                            start="2021-02-05", router=ScriptedModel(["AAA"], hook=hook),
                            config_dir=cfg, run_dir=tmp_path / "runs",
                            kill_switch=quiet_switch(tmp_path), log_file=False, run_id="r"))
    s.run()
    run = read_run(s.ledger.path)

    d = run["decisions"]
    held = d[d["reason"].str.contains("JUMP_PENDING", na=False)]
    assert len(held) == 3
    assert list(events(run, "JUMP_CONFIRMED")["symbol"]) == ["AAA"]


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-0.25"])
def test_data_check_when_jump_threshold_is_not_a_positive_number_then_exit_2_naming_it(
        tmp_path, capsys, spx, value):
    path = write_csv(tmp_path / "data", scaled(spx, at(spx, K), 1.4))

    code = main(["data", "check", "--symbols", SYM, "--source", f"csv:{path}",
                 "--jump-threshold", value])

    assert code == 2
    err = capsys.readouterr().err
    assert "--jump-threshold must be a number in (0, 10], got" in err and value.lstrip("-") in err
