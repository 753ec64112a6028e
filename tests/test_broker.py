"""Paper broker: fill prices and costs, quantities, positions as a fold of fills, rejections."""

from __future__ import annotations

import logging

import pytest

from research_lib.broker import (
    Fill,
    Order,
    OrderFilled,
    OrderRejected,
    PaperBroker,
    Position,
    client_order_id,
    round_qty,
)
from research_lib.config import SessionConfig

COSTS = SessionConfig(slippage_bps=10.0, commission_bps=5.0, commission_per_share=0.01)


def order(qty: float, symbol: str = "SPY", price: float = 100.0, step: int = 0,
          crypto: bool = False) -> Order:
    return Order(client_order_id("r", step, symbol), step, "t0", symbol, qty, price,
                 crypto=crypto)


def test_buy_fills_at_given_open_plus_adverse_slippage_and_commission():
    b = PaperBroker(100_000.0, COSTS)
    b.submit(order(10))
    [ev] = b.fill_open(1, "t1", {"SPY": 101.0})
    assert isinstance(ev, OrderFilled)
    f = ev.fill
    assert f.base_price == 101.0
    assert f.price == pytest.approx(101.0 * 1.001)
    assert f.commission == pytest.approx(10 * 101.101 * 5e-4 + 10 * 0.01)
    assert b.cash == pytest.approx(100_000.0 - 10 * 101.101 - f.commission)
    assert b.position("SPY").qty == 10


def test_sell_slippage_is_adverse_and_crypto_pays_no_per_share_fee():
    b = PaperBroker(100_000.0, COSTS)
    b.submit(order(0.5, "BTC-USD", 10_000.0, crypto=True))
    b.fill_open(1, "t1", {"BTC-USD": 10_000.0})
    b.submit(order(-0.5, "BTC-USD", 10_000.0, step=1, crypto=True))
    [ev] = b.fill_open(2, "t2", {"BTC-USD": 10_000.0})
    assert ev.fill.price == pytest.approx(10_000.0 * 0.999)
    assert ev.fill.commission == pytest.approx(0.5 * 9_990.0 * 5e-4)


def test_order_without_a_price_stays_open_until_one_arrives():
    b = PaperBroker(100_000.0, COSTS)
    b.submit(order(10))
    assert b.fill_open(1, "t1", {"SPY": float("nan")}) == []
    assert b.fill_open(1, "t1", {}) == []
    assert len(b.open_orders) == 1
    assert isinstance(b.fill_open(2, "t2", {"SPY": 100.0})[0], OrderFilled)


def test_position_is_the_fold_of_its_fills_with_realized_pnl():
    fills = [
        Fill("a", 0, "t", "SPY", 10, 100.0, 100.0, 1.0, -1001.0),
        Fill("b", 1, "t", "SPY", 10, 110.0, 110.0, 1.0, -1101.0),
        Fill("c", 2, "t", "SPY", -15, 120.0, 120.0, 1.0, 1799.0),
    ]
    p = Position.from_fills("SPY", fills)
    assert p.qty == 5
    assert p.avg_price == pytest.approx(105.0)
    assert p.realized == pytest.approx(15 * (120.0 - 105.0))
    assert p.fees == 3.0
    assert p.unrealized(130.0) == pytest.approx(5 * 25.0)


def test_position_flip_opens_the_rest_at_the_fill_price():
    fills = [Fill("a", 0, "t", "X", 10, 100.0, 100.0, 0.0, -1000.0),
             Fill("b", 1, "t", "X", -15, 90.0, 90.0, 0.0, 1350.0)]
    p = Position.from_fills("X", fills)
    assert p.qty == -5 and p.avg_price == 90.0 and p.realized == pytest.approx(-100.0)


def test_broker_positions_equal_fold_of_its_fills_and_are_read_only():
    b = PaperBroker(100_000.0, COSTS)
    for step, (q, px) in enumerate([(10, 100.0), (5, 102.0), (-12, 99.0)]):
        b.submit(order(q, step=step, price=px))
        b.fill_open(step + 1, "t", {"SPY": px})
    assert b.position("SPY") == Position.from_fills("SPY", b.fills)
    with pytest.raises(TypeError):
        b.positions["SPY"] = Position("SPY")  # type: ignore[index]


@pytest.mark.parametrize("qty, lot, expected", [
    (7.9, None, 7.0), (-7.9, None, -7.0), (0.99, None, 0.0),
    (0.123456, 0.0001, 0.1234), (-0.123456, 0.0001, -0.1234), (0.3, 0.1, 0.3),
    (float("nan"), None, 0.0),
])
def test_round_qty_whole_shares_and_crypto_lots_toward_zero(qty, lot, expected):
    assert round_qty(qty, lot) == expected


def test_buy_the_cash_cannot_pay_at_fill_is_rejected_loudly_and_recorded(caplog):
    b = PaperBroker(1_000.0, COSTS)
    b.submit(order(10, price=99.0))  # sized at 99, the open gaps to 100.1
    pkg = logging.getLogger("research_lib")  # may not propagate (telemetry.configure)
    pkg.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR, logger="research_lib"):
            [ev] = b.fill_open(1, "t1", {"SPY": 100.1})
    finally:
        pkg.removeHandler(caplog.handler)
    assert isinstance(ev, OrderRejected)
    assert ev.reason.startswith("INSUFFICIENT_CASH: need=")
    assert b.cash == 1_000.0 and b.position("SPY").qty == 0 and not b.open_orders
    assert any(r.getMessage() == "order_rejected" for r in caplog.records)


def test_fill_price_outside_band_around_decision_price_is_rejected():
    b = PaperBroker(100_000.0, COSTS, price_band_pct=0.25)
    b.submit(order(10, price=100.0))
    [ev] = b.fill_open(1, "t1", {"SPY": 1000.0})  # a 10x bad print at the open
    assert isinstance(ev, OrderRejected) and ev.reason.startswith("PRICE_BAND_AT_FILL")
    assert not b.fills


def test_same_client_order_id_is_never_submitted_twice():
    b = PaperBroker(100_000.0, COSTS)
    assert b.submit(order(10)) is not None
    assert b.submit(order(10)) is None
    b.fill_open(1, "t1", {"SPY": 100.0})
    assert len(b.fills) == 1 and b.position("SPY").qty == 10


def test_dry_run_records_the_order_and_fills_nothing():
    b = PaperBroker(100_000.0, COSTS, dry_run=True)
    ev = b.submit(order(10))
    assert ev is not None and ev.dry_run
    assert b.fill_open(1, "t1", {"SPY": 100.0}) == []
    assert b.cash == 100_000.0 and not b.fills


def test_restore_folds_fills_to_the_same_cash_and_positions():
    b = PaperBroker(50_000.0, COSTS)
    for step, (q, px) in enumerate([(10, 100.0), (-4, 105.0)]):
        b.submit(order(q, step=step, price=px))
        b.fill_open(step + 1, "t", {"SPY": px})
    r = PaperBroker(50_000.0, COSTS).restore(b.fills, [], b.known_ids)
    assert r.cash == b.cash and dict(r.positions) == dict(b.positions)
