"""Write the yfinance-shaped test fixtures in ``tests/fixtures/yfinance/``.

Dev-time only: ``python tools/record_yfinance_fixtures.py [--check]``.

The frames copy the *layout* yfinance 1.7.0 returns (column names and order, index name,
index timezone, dtypes, MultiIndex ``(Price, Ticker)`` levels), read from its source
(``yfinance/scrapers/history.py``, ``yfinance/multi.py``, ``yfinance/utils.py``) and from
an offline ``yf.download`` run. The *prices* are real: ^GSPC (and BTC-USD) daily bars from
the package's shipped sample. Nothing was fetched from Yahoo; see the README next to the
fixtures. The hourly frame is derived from real daily bars, not recorded hourly prices.

Deterministic: no randomness, no clock; the same sample gives the same frames.
``--check`` rebuilds in memory and compares with the files on disk (exit 1 on a mismatch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "yfinance"
NY = "America/New_York"
OHLC = ["Open", "High", "Low", "Close"]


def _sample(symbol: str, start: str, end: str) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT))
    from research_lib.data import load

    df = load([symbol], source="sample", start=start, end=end)[symbol]
    return df.rename(columns=str.capitalize)  # open -> Open, ...


def _exchange_midnight(utc_dates: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    """Session dates (00:00 UTC in the sample) as ``history()`` gives daily bars:
    midnight in the exchange's timezone."""
    return pd.DatetimeIndex(utc_dates.tz_convert(None)).tz_localize(tz)


def history_daily(bars: pd.DataFrame, tz: str = NY, auto_adjust: bool = True) -> pd.DataFrame:
    """``yf.Ticker(s).history(interval="1d", actions=False, auto_adjust=...)``:
    Open High Low Close [Adj Close] Volume, Volume int64, index "Date" at local midnight."""
    out = bars[OHLC].astype("float64").copy()
    if not auto_adjust:
        # ^GSPC is a price index: no dividends, so Yahoo's Adj Close equals Close
        out["Adj Close"] = out["Close"]
    out["Volume"] = bars["Volume"].round().astype("int64")
    out.index = _exchange_midnight(pd.DatetimeIndex(bars.index), tz).rename("Date")
    return out


def history_hourly(bars: pd.DataFrame) -> pd.DataFrame:
    """``history(interval="1h")`` layout: index "Datetime" in America/New_York, bars
    starting 09:30, 10:30, ... 15:30. Values are spread from each real daily bar
    (open -> close in 7 linear steps; the day's high in the 3rd bar, its low in the 5th,
    volume split evenly), so every hourly bar is consistent with the real daily bar."""
    rows, stamps = [], []
    for ts, d in bars.iterrows():
        day = pd.Timestamp(ts).tz_convert(None)
        path = np.linspace(d["Open"], d["Close"], 8)
        vol = int(round(d["Volume"]))
        for k in range(7):
            o, c = float(path[k]), float(path[k + 1])
            h, lo = max(o, c), min(o, c)
            if k == 2:
                h = float(d["High"])
            if k == 4:
                lo = float(d["Low"])
            v = vol // 7 + (vol % 7 if k == 6 else 0)
            rows.append((o, h, lo, c, v))
            stamps.append(day + pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(hours=k))
    out = pd.DataFrame(rows, columns=[*OHLC, "Volume"])
    out["Volume"] = out["Volume"].astype("int64")
    out.index = pd.DatetimeIndex(stamps).tz_localize(NY).rename("Datetime")
    return out


def history_empty() -> pd.DataFrame:
    """What ``history()`` returns when Yahoo has nothing (``yfinance.utils.empty_df``):
    no rows, six float columns including Adj Close, an object index named "Date"."""
    cols = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
    out = pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols},
                       index=pd.Index([], dtype="object", name="Date"))
    return out


def download_layout(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``yf.download(tickers, interval="1d")`` with the defaults group_by="column",
    multi_level_index=True, ignore_tz=True (daily): each ticker's history with its tz
    dropped, reindexed on the union of dates (NaN where a ticker has no bar), concatenated
    as (Ticker, Price), swapped to (Price, Ticker) and sorted."""
    naive = {}
    for tkr, df in frames.items():
        d = df.copy()
        if len(d):
            d.index = pd.DatetimeIndex(d.index).tz_localize(None)
        naive[tkr] = d
    nonempty = [d.index for d in naive.values() if len(d)]
    if nonempty:
        idx = nonempty[0]
        for other in nonempty[1:]:
            idx = idx.union(other)
        idx = pd.DatetimeIndex(idx, freq=None)  # union may infer a freq; parquet drops it
    else:
        # yfinance builds DatetimeIndex([]) (datetime64[s]); parquet has no seconds unit
        # and stores it as milliseconds, so record it that way
        idx = pd.DatetimeIndex([], dtype="datetime64[ms]")
    data = pd.concat({k: d.reindex(idx) for k, d in naive.items()}, axis=1, sort=True,
                     names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(axis=1, level=0)


def build() -> dict[str, pd.DataFrame]:
    spy = _sample("SPY", "2018-11-15", "2018-12-31")           # ^GSPC prices, 31 sessions
    btc = _sample("BTC-USD", "2018-12-10", "2018-12-31")        # 24/7
    hourly_days = _sample("SPY", "2018-11-01", "2018-11-06")    # spans the 4 Nov DST change

    good = history_daily(spy)
    frames: dict[str, pd.DataFrame] = {
        "spy_1d_history": good,
        "spy_1d_history_raw": history_daily(spy, auto_adjust=False),
        "spy_1h_history": history_hourly(hourly_days),
        "empty_history": history_empty(),
    }

    dup = pd.concat([good, good.iloc[[-1]]])                    # last bar twice, same stamp
    frames["spy_1d_dup_last"] = dup

    nan = good.copy()
    nan.iloc[10, nan.columns.get_loc("Close")] = np.nan          # a NaN close
    nan.iloc[11, [nan.columns.get_loc(c) for c in OHLC]] = np.nan  # prices gone, volume kept
    frames["spy_1d_nan_rows"] = nan

    split = good.copy()
    split.iloc[20:, [split.columns.get_loc(c) for c in OHLC]] /= 10.0  # unadjusted 10:1 split
    split.iloc[20:, split.columns.get_loc("Volume")] *= 10
    frames["spy_1d_bad_split"] = split

    spy_dec = good[good.index >= pd.Timestamp("2018-12-10", tz=NY)]
    frames["spy_1d_download"] = download_layout({"SPY": good})
    frames["spy_btc_1d_download"] = download_layout(
        {"SPY": spy_dec, "BTC-USD": history_daily(btc, tz="UTC")})
    frames["empty_download"] = download_layout({"SPY": history_empty()})
    return frames


def path_of(name: str) -> Path:
    return OUT / f"{name}.parquet"


def main(argv: list[str]) -> int:
    frames = build()
    if "--check" in argv:
        bad = []
        for name, df in frames.items():
            p = path_of(name)
            if not p.exists():
                bad.append(f"{p} missing")
                continue
            try:
                pd.testing.assert_frame_equal(pd.read_parquet(p), df)
            except AssertionError as exc:
                bad.append(f"{p}: {exc}")
        for line in bad:
            print(line, file=sys.stderr)
        return 1 if bad else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_parquet(path_of(name), compression="zstd")
        print(f"wrote {path_of(name).relative_to(ROOT)}  {df.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
