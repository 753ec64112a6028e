"""SYNTHETIC option contracts for the ``options`` model: there is no options data offline.

Each contract is an S&P 500 index option (root ``SPX``, OCC symbol such as
``SPX190118C02500000``) priced every session with Black-Scholes from the REAL ``^GSPC``
bars and the REAL ``^VIX`` close (as the implied volatility) of the shipped sample, a
constant rate and no dividends. They are model prices, not market quotes: no smile, no
bid/ask, no volume (volume is 0). Every frame and every card says so.

The chain: on the first session of each month a call and a put are listed at 95%, 100% and
105% of the index close (strikes rounded to 25 points), expiring on the third Friday six
months later. A contract's series ends before expiry, at the end of the data, or at the first
close below ``min_price`` (a quote too small for its returns to mean anything).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..data.source_base import _trim, finish_frame
from ..data.sources import SampleSource
from ..errors import DataError, UnknownSymbolError

SOURCE_NAME = "synthetic-options"
LISTING_DAYS = 120  # a contract is listed only with this many days of data left after it
OCC = re.compile(r"^([A-Z]{1,6})\s*(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")


@dataclass(frozen=True)
class ChainSpec:
    root: str = "SPX"
    underlying: str = "^GSPC"
    vol: str = "^VIX"
    rate: float = 0.02
    tenor_months: int = 6
    moneyness: tuple[float, ...] = (0.95, 1.0, 1.05)
    strike_step: float = 25.0
    min_price: float = 0.5

    def describe(self) -> str:
        return (
            f"SYNTHETIC: Black-Scholes prices of {self.root} options from the real "
            f"{self.underlying} bars and {self.vol} close as implied volatility, rate "
            f"{self.rate:g}, no dividends, no smile, volume 0; not market quotes"
        )


@dataclass(frozen=True)
class Contract:
    symbol: str
    expiry: date
    call: bool
    strike: float


def black_scholes(S: Any, K: float, T: Any, r: float, sigma: Any, call: bool) -> np.ndarray:
    """European option value; ``T`` in years (> 0), ``sigma`` annualised."""
    S, T, sigma = (np.asarray(a, dtype=np.float64) for a in (S, T, sigma))
    sq = sigma * np.sqrt(T)
    d1 = (np.log(S / K) + (r + 0.5 * sigma**2) * T) / sq
    d2 = d1 - sq
    disc = K * np.exp(-r * T)
    if call:
        return S * ndtr(d1) - disc * ndtr(d2)
    return disc * ndtr(-d2) - S * ndtr(-d1)


def occ_symbol(root: str, expiry: date, call: bool, strike: float) -> str:
    return f"{root}{expiry:%y%m%d}{'C' if call else 'P'}{int(round(strike * 1000)):08d}"


def parse_occ(symbol: str) -> Contract:
    m = OCC.match(symbol)
    if not m:
        raise DataError(f"{symbol!r} is not an OCC option symbol (ROOT YYMMDD C|P STRIKEx1000)")
    _, yy, mm, dd, cp, k = m.groups()
    try:
        expiry = date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise DataError(f"{symbol!r}: expiry {yy}{mm}{dd} is not a date") from None
    return Contract(symbol, expiry, cp == "C", int(k) / 1000.0)


def third_friday(year: int, month: int) -> date:
    d15 = date(year, month, 15)
    return d15 + timedelta(days=(4 - d15.weekday()) % 7)


class SyntheticOptionsSource:
    """Data source of SYNTHETIC option bars (see the module docstring)."""

    name = SOURCE_NAME

    def __init__(self, spec: ChainSpec = ChainSpec()) -> None:
        self.spec = spec

    def _base(self) -> pd.DataFrame:
        return _underlying_frame(self.spec.underlying, self.spec.vol)

    def contracts(self) -> list[Contract]:
        return _chain(self.spec)

    def symbols(self) -> list[str]:
        return [c.symbol for c in self.contracts()]

    def expand(self, symbol: str, start: Any = None, end: Any = None) -> list[str]:
        """The chain root (``SPX``) stands for every listed contract (with ``start``/``end``:
        every contract with a bar in that window); others stay as they are."""
        if symbol != self.spec.root:
            return [symbol]
        if start is None and end is None:
            return self.symbols()
        out = []
        for c in self.contracts():
            bars = self._bars(c)
            kept = _trim(bars, start, end)
            # the chain's own rule at the window's end: a contract listed less than
            # LISTING_DAYS before it is not listed (too little history to be worth it)
            if len(kept) and (end is None or (pd.Timestamp(end).date()
                                              - bars.index[0].date()).days >= LISTING_DAYS):
                out.append(c.symbol)
        return out

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        if interval not in ("1d", "1D", "d"):
            raise DataError(f"{self.name}: only daily bars, got interval {interval!r}")
        try:
            c = parse_occ(symbol)
        except DataError:
            raise UnknownSymbolError(symbol, self.name, [self.spec.root, "<OCC symbols>"]) from None
        if not symbol.startswith(self.spec.root):
            raise UnknownSymbolError(symbol, self.name, [f"{self.spec.root} options"])
        bars = self._bars(c)
        bars = _trim(bars, start, end)
        if bars.empty:
            raise DataError(f"{self.name}: no bars for {symbol} in range (expired or not listed)")
        return finish_frame(
            bars,
            symbol=symbol,
            source=self.name,
            note=self.spec.describe(),
            adjustment="synthetic (Black-Scholes)",
            extra={"synthetic": True, "calendar": "XNYS", "close_only": False},
        )

    def _bars(self, c: Contract) -> pd.DataFrame:
        s = self.spec
        base = self._base()
        listing = _add_months(c.expiry, -s.tenor_months).replace(day=1)
        days = base.index.tz_localize(None)
        rows = base[(days >= pd.Timestamp(listing)) & (days < pd.Timestamp(c.expiry))]
        if rows.empty:
            return pd.DataFrame(
                columns=["open", "high", "low", "close", "volume"],
                index=rows.index,
                dtype="float64",
            )
        to_expiry = pd.Timestamp(c.expiry) - rows.index.tz_localize(None)
        T = np.asarray(to_expiry.days, dtype=np.float64) / 365.0
        sigma = rows["vix"].to_numpy() / 100.0
        price = {
            k: black_scholes(rows[k].to_numpy(), c.strike, T, s.rate, sigma, c.call)
            for k in ("open", "high", "low", "close")
        }
        hi, lo = (price["high"], price["low"]) if c.call else (price["low"], price["high"])
        out = pd.DataFrame(
            {
                "open": price["open"],
                "high": np.maximum(hi, price["open"]),
                "low": np.minimum(lo, price["open"]),
                "close": price["close"],
                "volume": 0.0,
            },
            index=rows.index,
        )
        out["high"] = np.maximum(out["high"], out["close"])
        out["low"] = np.minimum(out["low"], out["close"])
        below = np.flatnonzero(out["close"].to_numpy() < s.min_price)
        return out.iloc[: below[0]] if len(below) else out


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


@cache
def _underlying_frame(underlying: str, vol: str) -> pd.DataFrame:
    src = SampleSource()
    u = src.fetch(underlying)
    v = src.fetch(vol)["close"].rename("vix")
    return u[["open", "high", "low", "close"]].join(v, how="inner").dropna()


@cache
def _chain(spec: ChainSpec) -> list[Contract]:
    base = _underlying_frame(spec.underlying, spec.vol)
    month = base.index.tz_localize(None).strftime("%Y-%m")
    first_of_month = base.groupby(month).head(1)
    last_day = base.index[-1].date()
    out = []
    for ts, row in first_of_month.iterrows():
        d = ts.date()
        y, m = divmod(d.month - 1 + spec.tenor_months, 12)
        expiry = third_friday(d.year + y, m + 1)
        if (last_day - d).days < LISTING_DAYS:  # too little history left to be worth listing
            continue
        for mny in spec.moneyness:
            k = round(row["close"] * mny / spec.strike_step) * spec.strike_step
            for call in (True, False):
                out.append(Contract(occ_symbol(spec.root, expiry, call, k), expiry, call, k))
    return out
