"""Big universes, the account side (issue 15): buys that the cash or the gross room cannot
all fund are scaled pro rata, whatever the order the symbols are given in; the summary
says how many orders were cut; a full position shrinks when many symbols share the account.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from research_lib.config import RiskLimits
from research_lib.paper.allocation import long_budget, universe_weight
from research_lib.paper.summary import format_summary
from tests.kit.paper import (
    FrameSource,
    ScriptedModel,
    ledger_rows,
    make_session,
    random_walk,
    write_config,
)

PRICES = {"AAA": 10.0, "BBB": 23.0, "CCC": 37.0, "DDD": 51.0, "EEE": 64.0, "FFF": 88.0}


def _source() -> FrameSource:
    return FrameSource({s: random_walk(40, seed=k, price=p, vol=0.01, symbol=s)
                        for k, (s, p) in enumerate(PRICES.items())})


def _fills(ledger: Path) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for step, sym, qty, price in ledger_rows(
            ledger, "SELECT step, symbol, qty, price FROM fills ORDER BY step, symbol"):
        out.setdefault(sym, []).append((step, qty, price))
    return out


def _run(tmp_path: Path, symbols: list[str], cfg: Path, fast: bool = False):
    res = make_session(tmp_path, symbols=symbols, source=_source(), config_dir=cfg,
                       start="2021-01-20", router=ScriptedModel(symbols, prob=lambda s, n, c: 0.9),
                       fast=fast, run_id="alloc").run()
    assert res.exit_code == 0, res.summary
    return res


def _short_of_cash(tmp_path: Path) -> Path:
    # a per-share commission of 0.40 is 4% of a 10.00 share: the six entries of the first
    # step want more cash than the account has (the size rule leaves room for bps costs
    # only), so every buy of that step competes for it
    return write_config(tmp_path / "config",
                        risk={"max_position_pct": 0.6},
                        session={"warmup_bars": 5, "commission_per_share": 0.4},
                        signal={"target_weight": 0.5})


def test_permuted_symbols_get_the_same_fills_per_symbol(tmp_path: Path) -> None:
    cfg = _short_of_cash(tmp_path)
    order = list(PRICES)
    runs = {}
    for name, syms in (("given", order), ("reversed", order[::-1]),
                       ("shuffled", [order[k] for k in (3, 0, 5, 1, 4, 2)])):
        runs[name] = _run(tmp_path / name, syms, cfg)
    fills = {k: _fills(r.ledger_path) for k, r in runs.items()}
    assert fills["given"] == fills["reversed"] == fills["shuffled"]
    # every symbol bought at the first step, none starved (before: the last in order were
    # clipped, so which symbol got less depended on where it stood in --symbols)
    first = {s: f[0] for s, f in fills["given"].items()}
    assert sorted(first) == sorted(PRICES)
    assert len({step for step, _, _ in first.values()}) == 1
    # one summary row for the step, with the count; each scaled decision says what it wanted
    events = ledger_rows(runs["given"].ledger_path,
                         "SELECT symbol, code, reason FROM risk_events WHERE kind='clip'")
    scaled = [e for e in events if e[1] == "CASH_SCALED"]
    assert len(scaled) == 1 and scaled[0][0] is None
    assert "orders=6 " in scaled[0][2]
    assert not [e for e in events if e[1] == "CASH_CLIPPED"]
    notes = ledger_rows(runs["given"].ledger_path,
                        "SELECT symbol, reason FROM decisions WHERE reason LIKE 'CASH_SCALED%'")
    assert sorted(s for s, _ in notes) == sorted(PRICES)
    # and the summary says so: 6 orders cut, not hidden behind "denied: 0"
    s = runs["given"].summary
    assert s["denied"] == 0
    assert s["clipped"] == 6
    assert s["clips_by_reason"]["CASH_SCALED"] == 6
    assert s["symbols_traded"] == 6
    text = format_summary(s)
    assert "clips      6 order(s) cut by cash or gross room" in text
    assert "traded     6 of 6 symbol(s) ever filled" in text


def test_scaled_buys_fit_the_cash_and_keep_the_buffer(tmp_path: Path) -> None:
    cfg = _short_of_cash(tmp_path)
    res = _run(tmp_path / "r", list(PRICES), cfg)
    rows = ledger_rows(res.ledger_path, "SELECT MIN(cash), MIN(cash / equity) FROM equity")
    assert rows[0][0] > 0
    assert rows[0][1] >= 0.02 - 1e-3  # the buffer, up to the open-price gap of the fills


def test_fast_replay_allocates_the_same(tmp_path: Path) -> None:
    from research_lib.ledger_read import deterministic_dump

    cfg = _short_of_cash(tmp_path)
    step = _run(tmp_path / "step", list(PRICES), cfg)
    fast = _run(tmp_path / "fast", list(PRICES), cfg, fast=True)
    a, b = deterministic_dump(step.ledger_path), deterministic_dump(fast.ledger_path)
    assert a.pop("meta") is not None and b.pop("meta") is not None
    assert a == b


def test_a_lone_order_keeps_the_per_order_clip(tmp_path: Path) -> None:
    # one symbol wanting more than the cash: nothing to share, the old CASH_CLIPPED rule
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 1.0},
                       session={"warmup_bars": 5, "commission_per_share": 0.4},
                       signal={"target_weight": 1.0})
    res = make_session(tmp_path, symbols=["AAA"], source=_source(), config_dir=cfg,
                       start="2021-01-20", router=ScriptedModel(["AAA"], prob=lambda s, n, c: 0.9),
                       run_id="lone").run()
    codes = [r[0] for r in ledger_rows(res.ledger_path, "SELECT code FROM risk_events")]
    assert "CASH_CLIPPED" in codes and "CASH_SCALED" not in codes
    assert res.summary["clipped"] == codes.count("CASH_CLIPPED") + codes.count("GROSS_CLIPPED")


def test_position_size_shrinks_with_the_universe() -> None:
    lim = RiskLimits()  # gross 2.0, cash buffer 0.02
    assert long_budget(lim) == pytest.approx(0.98)
    assert universe_weight(0.10, lim, 9) == 0.10  # few symbols: as configured
    assert universe_weight(0.10, lim, 300) == pytest.approx(0.98 / 300)
    assert universe_weight(0.10, lim, 300, cost_rate=3e-4) == pytest.approx(0.98 / 1.0003 / 300)
    lev = RiskLimits(max_gross_leverage=0.5)
    assert universe_weight(0.10, lev, 10) == pytest.approx(0.05)  # the gross limit binds
    # N full positions always fit the budget together
    for n in (1, 7, 10, 300, 3000):
        assert n * universe_weight(0.10, lim, n) <= long_budget(lim) + 1e-12


def test_many_symbols_all_trade_at_the_default_size(tmp_path: Path) -> None:
    # 24 symbols at the shipped 0.10 target want 2.4x the equity: before, cash ran out
    # after ~9 positions and the symbols listed last never traded
    syms = [f"S{k:02d}" for k in range(24)]
    src = FrameSource({s: random_walk(40, seed=k, price=20.0 + k, vol=0.01, symbol=s)
                       for k, s in enumerate(syms)})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 5},
                       signal={"target_weight": 0.10})
    res = make_session(tmp_path, symbols=syms, source=src, config_dir=cfg, start="2021-01-20",
                       router=ScriptedModel(syms, prob=lambda s, n, c: 0.9), run_id="many").run()
    assert res.exit_code == 0
    s = res.summary
    assert s["symbols_traded"] == 24
    assert s["position_size"]["per_symbol"] == pytest.approx(0.98 / 1.0003 / 24)
    assert "sizing     full position 0.04082 of equity" in format_summary(s)
    w = ledger_rows(res.ledger_path, "SELECT symbol, MAX(target) FROM decisions GROUP BY symbol")
    assert np.allclose([t for _, t in w], 0.98 / 1.0003 / 24)
