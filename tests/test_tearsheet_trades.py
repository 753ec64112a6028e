"""Round-trip trades and attribution: against a hand-built ledger of fills (numbers worked
out by hand below) and, on a real replay, against the ledger's own equity."""

from __future__ import annotations

import pandas as pd
import pytest

from research_lib.tearsheet.trades import attribution, round_trips, trade_stats

T = pd.Timestamp("2021-01-04", tz="UTC")


def day(k: int) -> pd.Timestamp:
    return T + pd.Timedelta(days=k)


def fills(rows):
    """(day, symbol, qty, price, commission) -> the ledger's fills table (slippage 1 cent
    against the observed price, adverse)."""
    out = []
    for k, (d, sym, qty, price, comm) in enumerate(rows):
        base = price - 0.01 if qty > 0 else price + 0.01
        out.append({"client_order_id": f"r-{k}-{sym}", "step": d, "ts": day(d), "symbol": sym,
                    "qty": qty, "price": price, "base_price": base, "commission": comm,
                    "cash_delta": -qty * price - comm})
    return pd.DataFrame(out)


LEDGER = fills([
    # AAA: one long trip with an add and two exits (average cost 105)
    (0, "AAA", 10.0, 100.0, 1.0),
    (1, "AAA", 10.0, 110.0, 1.0),
    (2, "AAA", -5.0, 120.0, 0.5),
    (4, "AAA", -15.0, 90.0, 1.5),
    # BBB: long 10 @ 100, then a flip: sell 20 @ 110 (closes 10, opens a short of 10 @ 110),
    # then buy 10 @ 100 closes the short
    (0, "BBB", 10.0, 100.0, 1.0),
    (3, "BBB", -20.0, 110.0, 2.0),
    (5, "BBB", 10.0, 100.0, 1.0),
    # CCC: still open at the end, marked at 60
    (6, "CCC", 3.0, 50.0, 0.15),
])


def test_round_trips_when_hand_built_ledger_then_entries_exits_pnl_returns_and_holding():
    t = round_trips(LEDGER, {"CCC": 60.0}, day(8))
    assert len(t) == 4
    aaa = t[t["symbol"] == "AAA"].iloc[0]
    # realised: 5 x (120 - 105) + 15 x (90 - 105) = 75 - 225 = -150; fees 4
    assert aaa["pnl"] == pytest.approx(-154.0)
    assert aaa["entry_price"] == pytest.approx(105.0)
    assert aaa["exit_price"] == pytest.approx((5 * 120 + 15 * 90) / 20)
    assert aaa["entry_cost"] == pytest.approx(2100.0)
    assert aaa["return"] == pytest.approx(-154.0 / 2100.0)
    assert aaa["holding_days"] == pytest.approx(4.0)
    assert (aaa["direction"], aaa["status"], aaa["fills"], aaa["max_qty"]) == \
        ("long", "closed", 4, 20.0)
    assert aaa["slippage"] == pytest.approx(40 * 0.01)

    bbb = t[t["symbol"] == "BBB"].reset_index(drop=True)
    long_, short = bbb.iloc[0], bbb.iloc[1]
    # the flip's commission (2.0) split by quantity: 1.0 closes the long, 1.0 opens the short
    assert (long_["direction"], short["direction"]) == ("long", "short")
    assert long_["pnl"] == pytest.approx(10 * (110 - 100) - 1.0 - 1.0)
    assert long_["exit_ts"] == day(3) and short["entry_ts"] == day(3)
    assert short["entry_price"] == pytest.approx(110.0)
    assert short["pnl"] == pytest.approx(10 * (110 - 100) - 1.0 - 1.0)
    assert short["return"] == pytest.approx(98.0 / 1100.0)
    assert short["holding_days"] == pytest.approx(2.0)

    ccc = t[t["symbol"] == "CCC"].iloc[0]
    assert ccc["status"] == "open (marked)" and pd.isna(ccc["exit_ts"])
    assert ccc["pnl"] == pytest.approx(3 * (60 - 50) - 0.15)
    assert ccc["holding_days"] == pytest.approx(2.0)


def test_trade_stats_when_hand_built_ledger_then_win_rate_counts_closed_trips_only():
    s = trade_stats(round_trips(LEDGER, {"CCC": 60.0}, day(8)))
    assert s["round_trips"] == 3 and s["open_trips"] == 1
    assert s["win_rate"] == pytest.approx(2 / 3)  # BBB long and short win, AAA loses
    assert s["profit_factor"] == pytest.approx((98.0 + 98.0) / 154.0)


def test_attribution_when_hand_built_ledger_then_pnl_per_symbol_and_contribution():
    t = round_trips(LEDGER, {"CCC": 60.0}, day(8))
    w = pd.DataFrame({"AAA": [0.1, 0.0], "BBB": [0.0, 0.0], "CCC": [0.0, 0.05]})
    a = attribution(t, w, 10_000.0).set_index("symbol")
    assert a.loc["AAA", "pnl"] == pytest.approx(-154.0)
    assert a.loc["BBB", "pnl"] == pytest.approx(196.0)
    assert a.loc["CCC", "contribution"] == pytest.approx(29.85 / 10_000.0)
    assert a.loc["AAA", "time_in_market"] == pytest.approx(0.5)
    assert list(a.index) == ["BBB", "CCC", "AAA"]  # by P&L, best first


def test_round_trips_when_a_real_replay_then_they_add_up_to_the_change_of_equity(tmp_path):
    from research_lib.paper.session import run_session
    from research_lib.tearsheet import tearsheet

    res = run_session(symbols=["SPY", "BTC-USD"], model="baseline:sma_cross",
                      start="2017-01-01", end="2018-06-30", run_dir=tmp_path / "runs",
                      log_file=False)
    ts = tearsheet(res.ledger_path)
    t = ts.trades
    assert (t["status"] == "closed").sum() >= 5
    change = float(ts.data.equity.iloc[-1]) - ts.data.initial
    assert t["pnl"].sum() == pytest.approx(change, abs=1e-6)
    assert ts.attribution["pnl"].sum() == pytest.approx(change, abs=1e-6)
    # every fill is in exactly one trip (a flip counts in two)
    assert t["fills"].sum() >= len(ts.run["fills"])
