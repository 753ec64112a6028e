"""Synthetic option contracts (Black-Scholes from real ^GSPC and ^VIX) and the options model."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from research_lib.config import load_assets
from research_lib.errors import DataError, UnknownSymbolError
from research_lib.models.card import read_card
from research_lib.models.options import (
    SyntheticOptionsSource,
    black_scholes,
    occ_symbol,
    parse_occ,
    third_friday,
)

ROOT = Path(__file__).resolve().parents[1]


def test_black_scholes_when_call_and_put_then_put_call_parity_holds():
    S, K, T, r, sigma = 2500.0, 2400.0, 0.5, 0.02, 0.18
    c = black_scholes(S, K, T, r, sigma, call=True)
    p = black_scholes(S, K, T, r, sigma, call=False)
    assert float(c - p) == pytest.approx(S - K * math.exp(-r * T), rel=1e-12)


def test_black_scholes_when_textbook_case_then_known_value():
    # Hull: S=42, K=40, r=10%, sigma=20%, T=0.5 -> call 4.76, put 0.81
    assert float(black_scholes(42, 40, 0.5, 0.1, 0.2, call=True)) == pytest.approx(4.76, abs=0.005)
    assert float(black_scholes(42, 40, 0.5, 0.1, 0.2, call=False)) == pytest.approx(0.81, abs=0.005)


def test_occ_symbol_when_built_then_parses_back_and_classifies_as_options():
    sym = occ_symbol("SPX", date(2019, 1, 18), True, 2475.0)
    assert sym == "SPX190118C02475000"
    c = parse_occ(sym)
    assert (c.expiry, c.call, c.strike) == (date(2019, 1, 18), True, 2475.0)
    assert load_assets(ROOT / "config" / "assets.yaml").classify(sym) == "options"


def test_third_friday_when_computed_then_a_friday_between_15_and_21():
    for m in range(1, 13):
        d = third_friday(2018, m)
        assert d.weekday() == 4 and 15 <= d.day <= 21


def test_chain_when_listed_then_calls_and_puts_at_three_strikes_each_month():
    src = SyntheticOptionsSource()
    contracts = src.contracts()
    assert len(contracts) % 6 == 0 and len(contracts) > 200
    assert src.expand("SPX") == [c.symbol for c in contracts]
    assert src.expand("SPX190118C02475000") == ["SPX190118C02475000"]


def test_fetch_when_contract_then_bars_are_labelled_synthetic_and_consistent():
    src = SyntheticOptionsSource()
    sym = src.symbols()[0]
    f = src.fetch(sym)
    assert f.attrs["synthetic"] is True and "SYNTHETIC" in f.attrs["label"]
    assert (f["high"] >= f[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (f["low"] <= f[["open", "close"]].min(axis=1) + 1e-9).all()
    assert (f["close"] >= 0.5).all() and (f["volume"] == 0).all()
    assert f.index.max().date() < parse_occ(sym).expiry


def test_fetch_when_unknown_root_or_not_occ_then_error():
    src = SyntheticOptionsSource()
    with pytest.raises(UnknownSymbolError):
        src.fetch("AAPL190118C00150000")
    with pytest.raises(UnknownSymbolError):
        src.fetch("SPY")
    with pytest.raises(DataError, match="interval"):
        src.fetch(src.symbols()[0], interval="1h")


def test_options_card_when_read_then_says_synthetic_everywhere_a_reader_looks():
    card = read_card(ROOT / "models" / "options_v1.json")
    assert card["asset_class"] == "options"
    assert card["data"]["synthetic"] is True
    assert card["data"]["source"] == "synthetic-options"
    assert card["verdict"].startswith("Trained and evaluated on SYNTHETIC prices")
    assert any("SYNTHETIC: Black-Scholes" in n for n in card["data"]["notes"])
    assert card["data"]["symbols"]["count"] == len(card["data"]["symbols"]["names"])
    assert card["parity"]["passed"] is True
    assert np.isfinite(card["walk_forward"]["out_of_sample"]["auc"])


def test_real_market_cards_when_read_then_not_synthetic():
    for name in ("universal_v1", "equities_v1", "crypto_v1"):
        card = read_card(ROOT / "models" / f"{name}.json")
        assert card["data"]["synthetic"] is False
        assert "SYNTHETIC" not in card["verdict"]
