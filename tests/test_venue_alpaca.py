"""The Alpaca venue adapter (research_lib/venues/alpaca.py) through the real alpaca-py
client against the local fake venue (tests/kit/venue.py), the venue config, and the
reconciliation rule (research_lib/venues/reconcile.py)."""

from __future__ import annotations

import re

import pytest

from research_lib.broker import Order
from research_lib.errors import ConfigError, VenueError
from research_lib.venues.alpaca import AlpacaVenue, venue_symbol
from research_lib.venues.base import (
    Broker,
    VenueAccount,
    VenueOrder,
    VenueRejected,
    VenueSnapshot,
    VenueUnavailable,
)
from research_lib.venues.config import VenueConfig, load_venue
from research_lib.venues.reconcile import reconcile
from tests.kit.venue import KEY, SECRET, FakeAlpaca

ENV = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}


@pytest.fixture
def fake():
    v = FakeAlpaca(hang_seconds=1.0)
    yield v
    v.close()


def adapter(fake: FakeAlpaca, waits: list[float] | None = None, **cfg) -> AlpacaVenue:
    c = VenueConfig(**{"broker": "alpaca", "alpaca_url": fake.url, "timeout_seconds": 0.3,
                       "backoff_seconds": 0.05, "max_backoff_seconds": 0.2, "max_attempts": 4,
                       **cfg})
    return AlpacaVenue(c, ["SPY", "BTC-USD", "ETHUSDT"], ["BTC-USD", "ETHUSDT"], env=ENV,
                       sleep=(waits if waits is not None else []).append)


def order(sym: str = "SPY", qty: float = 10.0, cid: str = "r-0-SPY") -> Order:
    return Order(cid, 0, "2021-01-04T00:00:00+00:00", sym, qty, 100.0,
                 crypto=sym != "SPY")


def test_submit_when_accepted_then_one_market_order_under_our_client_order_id(fake):
    vo, adopted = adapter(fake).submit(order("BTC-USD", 0.25, "r-0-BTC-USD"))
    assert not adopted and vo.status == "filled" and vo.symbol == "BTC-USD"
    assert vo.qty == 0.25 and vo.venue_order_id == fake.by_cid["r-0-BTC-USD"]
    body = [b for m, p, _, b in fake.requests if m == "POST"][0]
    assert body == {"symbol": "BTC/USD", "qty": 0.25, "side": "buy", "type": "market",
                    "time_in_force": "gtc", "client_order_id": "r-0-BTC-USD"}
    adapter(fake).submit(order("SPY", -3.0))
    body = [b for m, p, _, b in fake.requests if m == "POST"][1]
    assert (body["side"], body["qty"], body["time_in_force"]) == ("sell", 3.0, "day")


@pytest.mark.parametrize("fault", ["timeout", "drop"])
def test_submit_when_the_answer_is_lost_after_the_venue_took_it_then_looked_up_not_resent(
        fake, fault):
    waits: list[float] = []
    fake.script.append(("POST", "/v2/orders", fault))
    vo, adopted = adapter(fake, waits).submit(order())
    assert adopted and fake.orders_for("r-0-SPY") == 1 and fake.count("POST", "/v2/orders") == 1
    assert vo.venue_order_id == fake.by_cid["r-0-SPY"] and len(waits) == 1


def test_submit_when_the_venue_never_got_it_then_sent_again_once(fake):
    fake.script.append(("POST", "/v2/orders", "hang"))  # nothing done, no answer
    vo, adopted = adapter(fake).submit(order())
    assert not adopted and fake.orders_for("r-0-SPY") == 1
    assert fake.count("POST", "/v2/orders") == 2  # looked up (404) before the second send


def test_submit_when_the_id_is_already_at_the_venue_then_adopted_without_a_post(fake):
    adapter(fake).submit(order())
    vo, adopted = adapter(fake).submit(order())
    assert adopted and fake.count("POST", "/v2/orders") == 1 and fake.orders_for("r-0-SPY") == 1


def test_submit_when_the_venue_says_the_id_is_taken_then_adopted(fake):
    a = adapter(fake)
    a.submit(order())
    real = a._lookup
    calls = []

    def miss_once(cid):  # the lookup races the venue: misses the first time
        calls.append(cid)
        return None if len(calls) == 1 else real(cid)

    a._lookup = miss_once
    vo, adopted = a.submit(order())
    assert adopted and fake.orders_for("r-0-SPY") == 1
    assert fake.count("POST", "/v2/orders") == 2  # the second POST got 422, not an order


def test_submit_when_the_venue_refuses_then_venue_rejected_with_its_reason(fake):
    fake.fill_mode["SPY"] = "refuse"
    with pytest.raises(VenueRejected, match="HTTP 403: insufficient buying power"):
        adapter(fake).submit(order())
    assert fake.count("POST", "/v2/orders") == 1  # a refusal is not retried


def test_429_then_backs_off_within_bounds_honouring_retry_after_and_succeeds(fake):
    waits: list[float] = []
    fake.script += [("GET", "/v2/account", "429")] * 3
    acct = adapter(fake, waits).account()
    assert acct.cash == 100_000.0 and acct.blocked is None
    assert waits == [0.05, 0.1, 0.2]  # doubled each time, never above max_backoff_seconds
    assert fake.count("GET", "/v2/account") == 4


def test_retry_after_longer_than_the_cap_then_capped(fake):
    a = adapter(fake)
    assert a._wait(1, "30") == 0.2 and a._wait(1, "0") == 0.05 and a._wait(3, None) == 0.2


def test_rate_limited_on_every_try_then_fails_closed_after_max_attempts(fake):
    waits: list[float] = []
    fake.script += [("GET", "/v2/positions", "429")] * 10
    with pytest.raises(VenueUnavailable, match="failed 4 times, the last with HTTP 429"):
        adapter(fake, waits).positions()
    assert fake.count("GET", "/v2/positions") == 4 and len(waits) == 3


def test_timeouts_on_every_try_then_fails_closed(fake):
    fake.script += [("GET", "/v2/account", "hang")] * 3
    with pytest.raises(VenueUnavailable, match="failed 3 times, the last with ReadTimeout"):
        adapter(fake, max_attempts=3).account()


def test_wrong_keys_then_venue_error_naming_the_variables_not_retried(fake):
    c = VenueConfig(broker="alpaca", alpaca_url=fake.url)
    bad = AlpacaVenue(c, ["SPY"], [], env={"APCA_API_KEY_ID": "nope",
                                           "APCA_API_SECRET_KEY": "nope"})
    with pytest.raises(VenueError, match="HTTP 401: request is not authorized; check "
                                         "APCA_API_KEY_ID"):
        bad.account()
    assert fake.count("GET", "/v2/account") == 1


def test_missing_keys_then_config_error_naming_each_variable():
    c = VenueConfig(broker="alpaca")
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY are not set"):
        AlpacaVenue(c, ["SPY"], [], env={})


def test_positions_orders_and_cancel_in_our_symbols(fake):
    a = adapter(fake)
    fake.fill_mode["ETHUSDT"] = "hold"
    a.submit(order("SPY", 4.0))
    a.submit(order("ETHUSDT", 1.5, "r-0-ETHUSDT"))
    fake.drift("SPY", -10)  # short 6
    assert a.positions() == {"SPY": -6.0}
    (o,) = a.open_orders()
    assert (o.symbol, o.qty, o.filled_qty, o.status, o.open) == ("ETHUSDT", 1.5, 0.0, "new",
                                                                 True)
    a.cancel(o.venue_order_id)
    assert a.order("r-0-ETHUSDT").status == "canceled"
    a.cancel(o.venue_order_id)  # already cancelled: nothing to do, no error
    assert a.order("r-0-missing") is None


@pytest.mark.parametrize("ours, crypto, theirs", [
    ("SPY", False, "SPY"), ("BRK.B", False, "BRK.B"), ("BTC-USD", True, "BTC/USD"),
    ("BTCUSDT", True, "BTC/USDT"), ("ETHUSD", True, "ETH/USD"), ("ETH/BTC", True, "ETH/BTC")])
def test_venue_symbol_maps_our_symbols(ours, crypto, theirs):
    assert venue_symbol(ours, crypto) == theirs


@pytest.mark.parametrize("sym, why", [("^GSPC", "an index"), ("EURUSD=X", "an FX pair")])
def test_venue_symbol_when_untradable_there_then_config_error(sym, why):
    with pytest.raises(ConfigError, match=re.escape(f"{sym}: {why}; Alpaca cannot trade it")):
        venue_symbol(sym, False)


# ----------------------------------------------------------------------- config
def test_venue_config_when_broker_unknown_then_error_names_key_value_and_choices(tmp_path):
    p = tmp_path / "session.yaml"
    p.write_text("venue:\n  broker: ibkr\n")
    with pytest.raises(ConfigError, match=r"venue.broker must be one of paper, alpaca, got 'ibkr'"):
        load_venue(p)


def test_venue_config_when_url_is_a_live_money_endpoint_then_refused(tmp_path):
    p = tmp_path / "session.yaml"
    p.write_text("venue:\n  alpaca_url: https://api.alpaca.markets\n")
    with pytest.raises(ConfigError, match="never trades a live-money account"):
        load_venue(p)


def test_venue_config_when_absent_then_the_internal_paper_broker(tmp_path):
    p = tmp_path / "session.yaml"
    p.write_text("session:\n  seed: 1\n")
    assert load_venue(p).broker == "paper"
    assert VenueConfig().with_broker("alpaca").broker == "alpaca"
    with pytest.raises(ConfigError, match="--broker 'x' must be one of paper, alpaca"):
        VenueConfig().with_broker("x")


def test_paper_broker_speaks_the_broker_protocol():
    from research_lib.broker import PaperBroker
    from research_lib.venues.broker import VenueBroker

    assert isinstance(PaperBroker(1.0), Broker) and isinstance(VenueBroker(1.0), Broker)


# ----------------------------------------------------------------------- reconcile
def _snap(positions, cash=1000.0, open_orders=()):
    return VenueSnapshot(VenueAccount("a", "ACTIVE", cash, cash, cash), dict(positions),
                         list(open_orders))


def test_reconcile_when_everything_agrees_then_nothing():
    assert reconcile({"SPY": 5.0}, 1000.0, {}, _snap({"SPY": 5.0}), {}, 1e-6, 1.0) == []


def test_reconcile_when_a_ledger_open_order_has_filled_at_the_venue_then_explained():
    vo = VenueOrder("c1", "v1", "SPY", 5.0, 5.0, 10.0, "filled")
    found = reconcile({}, 1000.0, {"c1": 5.0}, _snap({"SPY": 5.0}, 950.0), {"c1": vo},
                      1e-6, 1.0)
    assert [(f.kind, f.verdict, f.in_flight) for f in found] == [
        ("position", "EXPLAINED", 5.0), ("cash", "EXPLAINED", -50.0)]


def test_reconcile_when_the_venue_differs_then_each_difference_with_its_numbers():
    stray = VenueOrder("other", "v9", "QQQ", 2.0, 0.0, None, "new")
    found = reconcile({"SPY": 5.0}, 1000.0, {"c1": 3.0}, _snap({"SPY": 4.0}, 990.0, [stray]),
                      {"c1": None}, 1e-6, 1.0)
    assert [f.reason for f in found] == [
        "POSITION_DIFFERENCE: symbol=SPY ledger=5 venue=4 in_flight=0 unexplained=-1 "
        "tolerance=1e-06",
        "UNKNOWN_VENUE_ORDER: client_order_id=other venue_order_id=v9 symbol=QQQ qty=2 "
        "filled=0 status=new",
        "ORDER_MISSING_AT_VENUE: client_order_id=c1 qty=3: the ledger holds it open, the "
        "venue has no order with this id",
        "CASH_DIFFERENCE: ledger=1000.00 venue=990.00 in_flight=0.00 unexplained=-10.00 "
        "tolerance=1"]
    assert {f.verdict for f in found} == {"DIFFERENCE"}


def test_reconcile_within_tolerance_then_agreement():
    assert reconcile({"SPY": 5.0}, 1000.0, {}, _snap({"SPY": 5.0 + 1e-9}, 1000.5), {},
                     1e-6, 1.0) == []


# ------------------------------------------------------------------ crypto fees
def _book_round_trip(fake: FakeAlpaca, a: AlpacaVenue, qty: float = 0.5):
    """A crypto buy, then a sell of what the ledger holds, through the VenueBroker (the
    ledger's side) and the adapter; the findings of a reconciliation after each."""
    from research_lib.venues.broker import VenueBroker
    from research_lib.venues.link import reconcile_broker

    fake.prices["BTCUSD"] = 60_000.0
    b = VenueBroker(initial_cash=fake.cash, venue=a)
    b.submit(Order("r-0-BTC-USD", 0, "t0", "BTC-USD", qty, 60_000.0, crypto=True))
    b.fill_open(1, "t1", {})
    after_buy = reconcile_broker(a, a.cfg, b)[2]
    held = dict(b.book.held())["BTC-USD"]
    b.submit(Order("r-1-BTC-USD", 1, "t1", "BTC-USD", -held, 60_000.0, crypto=True))
    b.fill_open(2, "t2", {})
    after_sell = reconcile_broker(a, a.cfg, b)[2]
    return b, held, after_buy, after_sell


def test_a_crypto_fill_whose_fee_the_venue_takes_from_the_coins_reconciles(fake):
    """Alpaca takes its crypto fee from what a fill credits (a buy's coins, a sell's
    dollars); the order's filled_qty is the gross. Before, the ledger booked the gross
    quantity and the reconciliation latched POSITION_DIFFERENCE (ledger 0.5, venue
    0.49875) on every crypto buy."""
    b, held, after_buy, after_sell = _book_round_trip(fake, adapter(fake))
    assert after_buy == [] and after_sell == []
    assert held == pytest.approx(0.5 * (1 - 0.0025), abs=1e-12)
    assert "BTCUSD" not in fake.positions  # sold what the venue credited, to the last unit
    assert b.cash == pytest.approx(fake.cash, abs=1e-6)
    buy, sell = b.fills
    assert buy.commission == pytest.approx(0.5 * 60_000 * 0.0025)
    assert sell.commission == pytest.approx(held * 60_000 * 0.0025)
    assert buy.cash_delta == pytest.approx(-0.5 * 60_000)  # paid in full, fewer coins


def test_a_crypto_fee_other_than_the_configured_one_is_a_difference_that_names_the_key(fake):
    fake.crypto_fee_bps = 15.0  # another volume tier than venue.crypto_fee_bps (25)
    _, _, after_buy, _ = _book_round_trip(fake, adapter(fake))
    (pos,) = [f for f in after_buy if f.kind == "position"]
    assert pos.verdict == "DIFFERENCE" and pos.symbol == "BTC-USD"
    assert "POSITION_DIFFERENCE: symbol=BTC-USD ledger=0.49875 venue=0.49925" in pos.reason
    assert "booked at 25 bps: is venue.crypto_fee_bps your tier's?" in pos.reason
    other = FakeAlpaca(crypto_fee_bps=15.0)
    try:  # the tier's fee in venue.crypto_fee_bps: they agree again
        _, _, after_buy, after_sell = _book_round_trip(other,
                                                       adapter(other, crypto_fee_bps=15.0))
    finally:
        other.close()
    assert after_buy == [] and after_sell == []


def test_an_equity_fill_pays_no_fee(fake):
    from research_lib.venues.broker import VenueBroker

    a = adapter(fake)
    assert a.fee_rate("SPY") == 0.0 and a.fee_rate("BTC-USD") == 0.0025
    b = VenueBroker(initial_cash=fake.cash, venue=a)
    b.submit(order("SPY", 10.0, "r-0-SPY"))
    b.fill_open(1, "t1", {})
    assert b.fills[0].qty == 10.0 and b.fills[0].commission == 0.0
