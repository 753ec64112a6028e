"""Issue 10, red team of the merged round 2: interactions between the classes' fixes.

Each test failed on the merged code before its fix (see the commit that added it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import yaml

from tests.kit.paper import make_session, write_config


def _bump(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_resume_after_an_assets_reload_that_remaps_a_model_then_it_continues(tmp_path):
    """A hot reload of assets.yaml that maps the run's class to another model (allowed: no
    symbol changes class) recorded the digests of the models mapped at the start, so the
    resume with that very file was refused ('model file equities_v1 sha256: ... ->
    <absent>')."""
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    calls = {"n": 0}

    def clock() -> float:  # asked once per step by the bar gate: edit mid-run
        calls["n"] += 1
        if calls["n"] == 80:
            p = cfg / "assets.yaml"
            d = yaml.safe_load(p.read_text())
            d["classes"]["equities"]["model"] = "universal_v1"
            p.write_text(yaml.safe_dump(d))
            _bump(p)
        return time.time()

    first = make_session(tmp_path, symbols=["SPY"], source="sample", start="2017-01-01",
                         end="2017-12-31", run_id="a1", max_steps=40, clock=clock).run()
    with sqlite3.connect(first.ledger_path) as c:
        assert c.execute("SELECT to_state FROM state_changes WHERE scope='config'"
                         ).fetchall() == [("RELOADED",)]
        [(inputs,)] = c.execute("SELECT inputs FROM config_history").fetchall()
    import json

    assert sorted(json.loads(inputs)["models"]) == ["universal_v1"]  # what it decides with
    again = make_session(tmp_path, resume="a1", max_steps=3).run()
    assert again.exit_code == 0 and again.summary["steps"] == 43


def test_live_when_the_symbols_latest_bar_is_stale_then_an_open_order_does_not_fill_at_it(
        tmp_path):
    """A live order filled at the newest close of the next poll even when that bar was days
    old (the feed stopped updating the symbol: a halt, a dead source), a price no market
    offered any more. The bar gate refused stale bars to decide on, not to fill at: a stale
    fill price is now no price, and the order waits."""
    import pandas as pd

    from research_lib.ledger_read import read_run
    from tests.kit.paper import random_walk

    bars = random_walk(81, start="2021-02-12", freq="B", symbol="AAA")  # to 2021-06-04 (Fri)
    assert bars.index[-1] == pd.Timestamp("2021-06-04", tz="UTC")

    class Frozen:  # the same frame at every poll: no newer bar ever comes
        name = "frozen"

        def symbols(self) -> list[str]:
            return ["AAA"]

        def fetch(self, symbol, start=None, end=None, interval="1d"):
            return bars

    now = {"t": pd.Timestamp("2021-06-04 20:30", tz="UTC").timestamp()}

    def sleep(dt: float) -> None:
        now["t"] += dt

    res = make_session(tmp_path, symbols=["AAA"], source=Frozen(), mode="live", run_id="lv",
                       poll_seconds=4 * 86400, clock=lambda: now["t"], sleep=sleep,
                       duration=3, model="baseline:buy_and_hold").run()
    run = read_run(res.ledger_path)
    assert len(run["orders"]) == 1  # decided on Friday's fresh bar
    assert run["fills"].empty  # never filled at Friday's close days later


def test_live_resume_when_a_held_symbols_feed_fails_then_marked_at_its_recorded_mark(tmp_path):
    """A live resume whose first poll could not fetch a symbol the account holds marked it
    at NaN (no price since the restart): the equity was NaN, the ledger refused the row and
    the session latched HALTED as a *ledger write failure* ('free disk space', exit 3, a
    reset-halt needed). Now the held symbol keeps the mark the ledger recorded until its
    feed returns, and a feed that stays down stops the session as a feed failure.
    (Issue 13: a step is a closed bar, so the held symbol's feed here serves no new bar
    after the restart (frozen) while the other's goes on: its bars are decided without
    it, then the dead feed stops the session.)"""
    import pandas as pd
    import pytest

    from research_lib.errors import FeedError
    from research_lib.ledger_read import read_run
    from tests.kit.paper import random_walk

    frames = {s: random_walk(230, seed=k, start="2021-01-01", symbol=s)
              for k, s in enumerate(["AAA-USD", "BBB-USD"])}
    now = {"t": pd.Timestamp("2021-07-19 12:00", tz="UTC").timestamp()}

    class Src:
        name = "src"

        def __init__(self, frozen: set[str]) -> None:
            self.frozen = frozen

        def symbols(self) -> list[str]:
            return sorted(frames)

        def fetch(self, symbol, start=None, end=None, interval="1d"):
            df = frames[symbol]
            until = (pd.Timestamp("2021-07-19", tz="UTC") if symbol in self.frozen
                     else pd.Timestamp(now["t"], unit="s", tz="UTC"))
            return df[df.index <= until]

    def sleep(dt: float) -> None:
        now["t"] += dt

    kw = dict(poll_seconds=3600, clock=lambda: now["t"], sleep=sleep)
    first = make_session(tmp_path, symbols=sorted(frames), source=Src(set()), mode="live",
                         run_id="lv", max_steps=2, model="baseline:buy_and_hold", **kw).run()
    assert first.summary["fills"] == 2
    with pytest.raises(FeedError, match="BBB-USD.*a dead source"):
        make_session(tmp_path, resume="lv", source=Src({"BBB-USD"}), duration="10d",
                     **kw).run()
    run = read_run(first.ledger_path)
    eq = run["equity"]
    assert len(eq) > 2 and eq["equity"].notna().all()
    assert (eq["state"] != "HALTED").all()
    pos = run["positions"]
    bbb = pos[(pos["symbol"] == "BBB-USD") & (pos["step"] >= 2)]
    assert len(bbb) and (bbb["mark"] == pos[(pos["symbol"] == "BBB-USD")
                                            & (pos["step"] == 1)]["mark"].iloc[0]).all()

def test_cli_main_in_process_when_a_paper_session_ran_then_the_callers_signal_handlers_are_back(
        tmp_path, capsys):
    # found after the red team: cli_paper leaves SIGINT/SIGTERM ignored (so the program's
    # own exit is never turned into a kill), and an in-process caller (a notebook, a test,
    # a worker) stayed deaf to Ctrl+C for the rest of its life
    import signal

    from research_lib.cli import main

    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})

    def mine(signum, frame):  # the caller's own handler
        return None

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["paper", "--symbols", "SPY", "--start", "2017-01-01", "--end",
                     "2017-02-01", "--model", "baseline:buy_and_hold", "--config-dir", str(cfg),
                     "--run-dir", str(tmp_path / "runs")])
        assert code == 0, capsys.readouterr().err
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_live_when_one_series_is_served_under_two_names_then_refused_at_the_first_poll(
        tmp_path):
    # the identical-series refusal ran only in a replay's set-up: live (a csv:PATH another
    # process appends to) gave AAA and a copy AAA2 two position caps on one series
    import pandas as pd
    import pytest

    from research_lib.errors import ConfigError
    from tests.kit.paper import random_walk

    bars = random_walk(81, start="2021-02-12", freq="B", symbol="AAA")

    class Copies:  # the same bars under both names
        name = "copies"

        def symbols(self) -> list[str]:
            return ["AAA", "AAA2"]

        def fetch(self, symbol, start=None, end=None, interval="1d"):
            df = bars.copy()
            df.attrs = {"symbol": symbol, "served_as": symbol}
            return df

    now = {"t": pd.Timestamp("2021-06-04 20:30", tz="UTC").timestamp()}

    def sleep(dt: float) -> None:
        now["t"] += dt

    s = make_session(tmp_path, symbols=["AAA", "AAA2"], source=Copies(), mode="live",
                     run_id="lv2", poll_seconds=86400, clock=lambda: now["t"], sleep=sleep,
                     duration=3, model="baseline:buy_and_hold")
    with pytest.raises(ConfigError, match="AAA and AAA2 have identical bars"):
        s.run()
