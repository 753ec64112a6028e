"""The live feed (research_lib.paper.live) on a fake clock and a scripted source: closed bars
only, each exactly once through late polls, repeats, gaps, lagging and revised bars and
fetch errors; market hours; failures that stop the session loudly; and the soak: a
60-minute live session whose ledger equals the same bars replayed.

Bars: the real 1-minute S&P 500 bars of the shipped intraday sample (``^GSPC``, XNYS hours)
and, where a second symbol is needed, a synthetic random walk on the same minutes
(labelled ``SYN``: synthetic), and real 1-minute XRP/ETH bars for a 24/7 weekend.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.data import FramesSource, load
from research_lib.errors import FeedError
from research_lib.ledger_read import deterministic_dump, read_run
from research_lib.paper.live import LIVE_MAX_FAILED_POLLS
from tests.kit.live import FakeClock, ScriptedSource, served
from tests.kit.paper import make_session, write_config

T = pd.Timestamp
ROOT = Path(__file__).resolve().parents[1]
FEED_CODES = {"FEED_ERROR", "MISSING_BARS", "LATE_BAR", "BAR_REVISED", "SYMBOL_ALIAS"}


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load(["^GSPC"], "sample", interval="1m")["^GSPC"]


def synthetic_minutes(like: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """SYNTHETIC: a random walk on the same minutes as ``like`` (never shipped)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.0008, len(like))))
    opens = np.concatenate([[50.0], close[:-1]])
    df = pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.0003,
                       "low": np.minimum(opens, close) * 0.9997, "close": close,
                       "volume": rng.integers(100, 1000, len(like)).astype(float)},
                      index=like.index)
    df.attrs["calendar"] = "XNYS"
    return df


def live_session(tmp: Path, src: ScriptedSource, clock: FakeClock, symbols: list[str],
                 **kw):
    if not (tmp / "config").exists():
        write_config(tmp / "config", session={"warmup_bars": 30})
    kw.setdefault("model", "baseline:sma_cross")
    return make_session(tmp, symbols=symbols, source=src, mode="live", interval="1m",
                        clock=clock, sleep=clock.sleep, run_id="live", **kw)


def steps_ts(path: Path) -> list[str]:
    return [t.isoformat() for t in read_run(path)["steps"]["ts"]]


def feed_events(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT code, symbol, reason FROM risk_events WHERE kind='data' "
                            "ORDER BY seq").fetchall()


# ------------------------------------------------------------------ closed bars only
def test_live_never_decides_a_forming_bar_and_decides_each_closed_bar_on_its_final_values(
        tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:30", tz="UTC").timestamp())
    src = ScriptedSource({"^GSPC": spx}, clock)
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="10min").run()
    run = read_run(res.ledger_path)
    ts = run["steps"]["ts"]
    # every step is a bar closed before the poll that decided it: 15:59 .. 16:09
    assert ts.iloc[0] == T("2019-11-06 15:59", tz="UTC")
    assert list(ts) == list(pd.date_range("2019-11-06 15:59", periods=len(ts), freq="min",
                                          tz="UTC"))
    assert ts.iloc[-1] <= T("2019-11-06 16:10:30", tz="UTC") - pd.Timedelta(minutes=1)
    # each step marks the closed bar's close, never the forming partial one (open x 1.001)
    marks = run["positions"].set_index("step")["mark"]
    for step, t in zip(run["steps"]["step"], ts, strict=True):
        assert marks.loc[step] == spx.loc[t, "close"]
    assert src.polls >= 10


def test_each_closed_bar_is_decided_exactly_once_through_late_polls_repeats_and_a_gap(
        tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:30", tz="UTC").timestamp())
    gap = T("2019-11-06 16:05", tz="UTC")
    src = ScriptedSource({"^GSPC": spx}, clock, missing={("^GSPC", gap)},
                         late={3: 75.0, 6: 100.0})  # two polls late by more than a bar
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="12min").run()
    ts = steps_ts(res.ledger_path)
    assert len(ts) == len(set(ts))  # never twice
    want = [t.isoformat() for t in pd.date_range(T("2019-11-06 15:59", tz="UTC"), T(ts[-1]),
                                                 freq="min") if t != gap]
    assert ts == want  # every closed bar in order, the missing one not filled
    events = feed_events(res.ledger_path)
    gaps = [e for e in events if e[0] == "MISSING_BARS"]
    assert len(gaps) == 1 and "1 1m bar(s) missing between 2019-11-06T16:04:00" in gaps[0][2]


# ------------------------------------------------------------------ the soak
@pytest.mark.parametrize("model", ["baseline:sma_cross", None])
def test_live_soak_sixty_minutes_equals_the_same_bars_replayed(tmp_path, spx, model):
    """A 60-minute live session on a fake clock: two symbols of one-minute bars, forming
    bars at every poll, repeated bars (every poll re-reads the last five), polls up to 100 s
    late, bars the source never has, a bar published a poll late, and fetch errors of one
    symbol and of both. Its ledger equals a replay of the bars the source served, from its
    first decided bar to its last, compared with ``deterministic_dump``. What may differ,
    and is left out of the comparison: the meta's ``spec`` (mode live/replay, the source,
    the window) and the data risk events only one side records: the live feed's
    FEED_ERROR / MISSING_BARS / LATE_BAR / BAR_REVISED (at the step that learned them) and
    the replay's start-up sanity findings (step 0, 'severity=' in the reason). ``model``
    None: the router deciding with the shipped 1m models (config/assets.yaml)."""
    write_config(tmp_path / "live" / "config", session={"warmup_bars": 30})
    if model is None:
        shutil.copy(ROOT / "config" / "assets.yaml", tmp_path / "live" / "config" / "assets.yaml")
    day = spx[spx.index.normalize() <= T("2019-11-06", tz="UTC")]
    syn = synthetic_minutes(day)
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    src = ScriptedSource(
        {"^GSPC": day, "SYN": syn}, clock,
        missing={("SYN", T("2019-11-06 16:12", tz="UTC")),
                 ("SYN", T("2019-11-06 16:13", tz="UTC")),
                 ("^GSPC", T("2019-11-06 16:31", tz="UTC"))},
        lag={("^GSPC", T("2019-11-06 16:20", tz="UTC")): 50.0},
        errors={8: {"SYN"}, 9: {"SYN"}, 21: {"^GSPC", "SYN"}, 33: {"^GSPC"}},
        late={5: 40.0, 14: 100.0, 27: 65.0, 40: 30.0})
    res = live_session(tmp_path / "live", src, clock, ["^GSPC", "SYN"],
                       duration="60min", model=model).run()
    assert res.exit_code == 0 and res.summary["stopped"] == "duration"
    live = read_run(res.ledger_path)
    first, last = live["steps"]["ts"].iloc[0], live["steps"]["ts"].iloc[-1]
    assert len(live["steps"]) >= 55 and live["orders"].shape[0] >= 4  # it traded
    if model is None:  # the 1m models decided (not the daily ones, refused on 1m bars)
        d = live["decisions"]
        assert set(d[d["probability"].notna()]["model"]) == {"universal_1m_v1"}
    codes = {e[0] for e in feed_events(res.ledger_path)}
    assert {"FEED_ERROR", "MISSING_BARS"} <= codes

    rep = make_session(tmp_path / "replay", symbols=["^GSPC", "SYN"],
                       source=FramesSource(served(src, last)), interval="1m",
                       start=first.isoformat(), end=last.isoformat(), run_id="replay",
                       config_dir=tmp_path / "live" / "config", model=model).run()

    def comparable(path: Path) -> dict:
        dump = deterministic_dump(path)
        cols = ["step", "ts", "symbol", "kind", "code", "reason", "client_order_id"]
        keep = []
        for row in dump["risk_events"]:
            r = dict(zip(cols, row[-len(cols):], strict=True))
            if r["kind"] == "data" and (r["code"] in FEED_CODES or "severity=" in r["reason"]):
                continue
            keep.append(row)
        dump["risk_events"] = keep
        dump["meta"] = [m for m in dump["meta"] if m[0] != "spec"]
        return dump

    a, b = comparable(res.ledger_path), comparable(rep.ledger_path)
    assert a.keys() == b.keys()
    for table in a:
        assert a[table] == b[table], table


# ------------------------------------------------------------------ more feed rules
def test_a_bar_arriving_after_its_time_was_decided_is_recorded_late_and_used_for_nothing(
        tmp_path, spx):
    day = spx[spx.index.normalize() <= T("2019-11-06", tz="UTC")]
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    t = T("2019-11-06 16:03", tz="UTC")
    src = ScriptedSource({"^GSPC": day, "SYN": synthetic_minutes(day)}, clock,
                         lag={("SYN", t): 150.0})  # beyond one interval of patience
    res = live_session(tmp_path, src, clock, ["^GSPC", "SYN"], duration="8min").run()
    d = read_run(res.ledger_path)["decisions"]
    at = d[d["ts"] == t]
    assert list(at["symbol"]) == ["^GSPC"]  # decided without SYN, which never filled it in
    late = [e for e in feed_events(res.ledger_path) if e[0] == "LATE_BAR"]
    assert len(late) == 1 and late[0][1] == "SYN" and "2019-11-06T16:03:00" in late[0][2]
    assert len(d[d["symbol"] == "SYN"]["ts"]) == len(set(d[d["symbol"] == "SYN"]["ts"]))


def test_a_closed_bar_the_source_changes_later_is_recorded_revised_and_the_first_kept(
        tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    t = T("2019-11-06 16:01", tz="UTC")
    src = ScriptedSource({"^GSPC": spx}, clock, revise={("^GSPC", t): 3100.0})
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="5min").run()
    run = read_run(res.ledger_path)
    step = int(run["steps"].set_index("ts").loc[t, "step"])
    assert run["positions"].set_index("step").loc[step, "mark"] == spx.loc[t, "close"]
    revised = [e for e in feed_events(res.ledger_path) if e[0] == "BAR_REVISED"]
    assert len(revised) == 1 and "c=3100" in revised[0][2] and "first is kept" in revised[0][2]


def test_a_fetch_error_is_recorded_and_the_session_goes_on(tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    src = ScriptedSource({"^GSPC": spx}, clock, errors={3: {"^GSPC"}, 4: {"^GSPC"}})
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="6min").run()
    assert res.exit_code == 0
    errors = [e for e in feed_events(res.ledger_path) if e[0] == "FEED_ERROR"]
    assert len(errors) == 2 and "connection reset by peer" in errors[0][2]
    ts = steps_ts(res.ledger_path)
    assert ts == [t.isoformat() for t in pd.date_range(ts[0], ts[-1], freq="min")]


def test_a_live_resume_decides_only_the_bars_after_its_ledgers_last_step(tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    src = ScriptedSource({"^GSPC": spx}, clock)
    live_session(tmp_path, src, clock, ["^GSPC"], duration="5min").run()
    before = steps_ts(tmp_path / "runs" / "live" / "ledger.sqlite")
    clock.t += 180  # down for three minutes
    write_config(tmp_path / "config", session={"warmup_bars": 30})
    make_session(tmp_path, resume="live", source=src, clock=clock, sleep=clock.sleep,
                 duration="4min").run()
    after = steps_ts(tmp_path / "runs" / "live" / "ledger.sqlite")
    assert after[: len(before)] == before
    assert after == [t.isoformat() for t in pd.date_range(after[0], after[-1], freq="min")]


# ------------------------------------------------------------------ market hours
def test_equities_session_outside_hours_says_so_waits_and_ends_when_duration_runs_out(
        tmp_path, spx, caplog):
    clock = FakeClock(T("2019-11-09 15:00", tz="UTC").timestamp())  # a Saturday
    src = ScriptedSource({"^GSPC": spx}, clock)
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="2h").run()
    assert res.exit_code == 0 and res.summary["stopped"] == "duration"
    # the first poll warms up on Friday's bars and decides Friday's last; nothing after
    assert steps_ts(res.ledger_path) == ["2019-11-08T20:59:00+00:00"]
    note = [n for n in res.summary["notes"] if n.startswith("market closed")]
    assert note and "XNYS closed at 2019-11-09T15:00:00" in note[0]
    assert "next open 2019-11-11T14:30:00+00:00" in note[0]
    assert src.polls <= 3  # it waited; it did not poll a closed market every minute


def test_equities_session_before_the_open_waits_for_it_then_trades_the_first_bars(
        tmp_path, spx):
    clock = FakeClock(T("2019-11-07 13:50", tz="UTC").timestamp())  # 08:50 New York
    src = ScriptedSource({"^GSPC": spx}, clock)
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="55min").run()
    ts = steps_ts(res.ledger_path)
    assert ts[0] == "2019-11-06T21:00:00+00:00"  # the last closed bar at start (a 16:00 print)
    assert ts[1] == "2019-11-07T14:30:00+00:00" and len(ts) > 5  # then the open's bars
    assert any("XNYS closed" in n for n in res.summary["notes"])


def test_crypto_session_runs_through_the_weekend(tmp_path):
    """XRP-ETH is crypto by the shipped assets.yaml (a coin pair without a dollar quote)."""
    xrp = load(["XRP-ETH"], "sample", interval="1m")["XRP-ETH"]
    clock = FakeClock(T("2019-10-12 12:00:20", tz="UTC").timestamp())  # a Saturday
    src = ScriptedSource({"XRP-ETH": xrp}, clock)
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 30})
    shutil.copy(ROOT / "config" / "assets.yaml", cfg / "assets.yaml")
    res = live_session(tmp_path, src, clock, ["XRP-ETH"], duration="10min").run()
    assert res.summary["steps"] >= 8 and not any("closed" in n for n in res.summary["notes"])


# ------------------------------------------------------------------ failures
def test_a_dead_source_that_answers_with_no_new_bar_stops_non_zero_saying_so(tmp_path, spx):
    """Fetches succeed but the newest bar never moves on while XNYS is open (a frozen
    feed). Before issue 13 the session polled on, decided nothing and ended with exit 0."""
    frozen = spx[spx.index <= T("2019-11-06 16:00", tz="UTC")]
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    src = ScriptedSource({"^GSPC": frozen}, clock, forming=False)
    with pytest.raises(FeedError, match=r"\^GSPC could not be fetched at 3 polls in a row "
                                        r"\(\^GSPC: no new bar since 2019-11-06T16:00:00"):
        live_session(tmp_path, src, clock, ["^GSPC"], duration="30min").run()
    with sqlite3.connect(tmp_path / "runs" / "live" / "ledger.sqlite") as conn:
        ev = conn.execute("SELECT reason FROM risk_events WHERE code='FEED_FAILED'").fetchall()
    assert len(ev) == 1 and "a dead source" in ev[0][0]
    # two polls bring bars, three minutes of open market without one make it dead, then
    # LIVE_MAX_FAILED_POLLS failed polls stop it
    assert src.polls <= 2 + 2 + LIVE_MAX_FAILED_POLLS


def test_cli_live_with_no_network_exits_non_zero_and_says_why_in_words(
        tmp_path, capsys, monkeypatch):
    """Alpaca's data host on a closed local port: every fetch is refused (no network)."""
    monkeypatch.setenv("APCA_API_KEY_ID", "test-key-id")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "test-secret")
    monkeypatch.setenv("APCA_API_DATA_URL", "http://127.0.0.1:9")
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill")})
    code = main(["paper", "--symbols", "SPY,QQQ", "--duration", "5min", "--interval", "1m",
                 "--source", "alpaca", "--run-dir", str(tmp_path / "runs"),
                 "--config-dir", str(cfg), "--model", "baseline:sma_cross"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no symbol could be fetched at the first poll" in err
    assert "no network, or Alpaca is down?" in err
    ledgers = list((tmp_path / "runs").glob("*/ledger.sqlite"))
    assert len(ledgers) == 1
    with sqlite3.connect(ledgers[0]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM risk_events WHERE code='FEED_FAILED'"
                            ).fetchone()[0] == 1
    assert "test-secret" not in err and "test-key-id" not in err


# ------------------------------------------------------------------ --duration
def test_duration_is_wall_clock_time_in_a_live_session(tmp_path, spx):
    clock = FakeClock(T("2019-11-06 16:00:20", tz="UTC").timestamp())
    start = clock.t
    src = ScriptedSource({"^GSPC": spx}, clock)
    res = live_session(tmp_path, src, clock, ["^GSPC"], duration="7min").run()
    assert res.summary["stopped"] == "duration"
    assert 7 * 60 <= clock.t - start < 7 * 60 + 5
    assert 7 <= res.summary["steps"] <= 8


def test_duration_in_a_replay_is_market_time_and_says_so(tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill"),
                                                      "warmup_bars": 30})
    code = main(["paper", "--symbols", "SPY", "--interval", "1m", "--duration", "30min",
                 "--start", "2019-11-06T15:00:00Z", "--run-dir", str(tmp_path / "runs"),
                 "--config-dir", str(cfg), "--model", "baseline:sma_cross", "--json"])
    import json

    s = json.loads(capsys.readouterr().out)
    assert code == 0 and s["stopped"] == "duration" and s["steps"] == 30
    assert any("in a replay is market time" in n for n in s["notes"])
    run = read_run(s["ledger"])
    assert run["steps"]["ts"].iloc[-1] == T("2019-11-06 15:29", tz="UTC")


def test_cli_help_says_what_duration_means_live_and_in_a_replay():
    from research_lib.cli import build_parser

    parser = build_parser()
    paper = next(a for a in parser._subparsers._group_actions[0].choices.items()
                 if a[0] == "paper")[1]
    text = " ".join(paper.format_help().split())
    assert "live: wall-clock time the session runs" in text
    assert "replay: market time" in text and "not a cap on run time" in text
    assert "1m, 5m, 15m, 1h or 1d" in text and "ccxt:EXCHANGE" in text and "alpaca" in text
