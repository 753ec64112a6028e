"""Build the small intraday sample shipped inside the package from four real raw files.

Dev-time only: ``python tools/build_intraday_sample.py RAW_DIR``, where RAW_DIR holds the
files below exactly as their projects publish them (their sha256 is checked, so a changed
file is refused, never silently shipped). The package reads only
``research_lib/data/sample/intraday.parquet`` and ``intraday.json`` written here; provenance
is in ``research_lib/data/PROVENANCE.md``. Deterministic output (sorted rows, fixed parquet
settings).

| file | project, path, commit |
| --- | --- |
| SP500_NOV2019_IDay.csv | matplotlib/mplfinance examples/data/ @ f87b30b8 |
| EURUSD.csv | kernc/backtesting.py backtesting/test/ @ b1066f16 (unchanged at 9c2b8e1c) |
| ETH_BTC-5m.feather | freqtrade/freqtrade tests/testdata/ @ 15aa1fd8 |
| XRP_ETH-1m.feather | freqtrade/freqtrade tests/testdata/ @ ec2960a1 |
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "research_lib" / "data" / "sample"
COLS = ["open", "high", "low", "close", "volume"]

RAW = {
    "SP500_NOV2019_IDay.csv":
        "dcdb743b3d3448bbc091a7a69280bdb2df2659885e3652ac4e844304cf1973bc",
    "EURUSD.csv": "81e977905a006cc8fbc034ebdb83c999a8ed6ba00191dc7ea5ef5b386fb74a82",
    "ETH_BTC-5m.feather": "f9c807156e870d73d57fa48493ebe38a1a9afc0cc379893888eb7dd07c0c5667",
    "XRP_ETH-1m.feather": "729ecb8fae85dfcc0a5c65a7fa07e4f30f686657f1c7f5a7f2d89a4c9456e1b1",
}


def _checked(raw: Path, name: str) -> Path:
    path = raw / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != RAW[name]:
        raise SystemExit(f"{path}: sha256 {digest} is not the recorded {RAW[name]}; refusing "
                         "to build the sample from another file")
    return path


def _sp500(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y %H:%M"))
    out = pd.DataFrame({c: raw[c.capitalize()].astype("float64").to_numpy() for c in COLS},
                       index=idx.tz_localize("America/New_York").tz_convert("UTC"))
    return out


def _eurusd(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, index_col=0)
    idx = pd.DatetimeIndex(pd.to_datetime(raw.index, format="%Y-%m-%d %H:%M:%S"))
    out = pd.DataFrame({c: raw[c.capitalize()].astype("float64").to_numpy() for c in COLS},
                       index=idx.tz_localize("UTC"))  # the FX week opens Sunday 21:00/22:00: UTC stamps
    return out


def _freqtrade(path: Path) -> pd.DataFrame:
    raw = pd.read_feather(path)
    out = raw[COLS].astype("float64")
    out.index = pd.DatetimeIndex(raw["date"]).tz_convert("UTC")
    return out


def build(raw: Path) -> dict[str, dict]:
    spec = [
        ("^GSPC", "1m", _sp500(_checked(raw, "SP500_NOV2019_IDay.csv")), {
            "name": "S&P 500 index, 1-minute bars 09:30-16:00 New York",
            "asset_class": "equities", "calendar": "XNYS",
            "adjustment": "price index (no dividends, nothing to adjust)",
            "no_volume": True,
            "origin": "matplotlib/mplfinance examples/data/SP500_NOV2019_IDay.csv @ f87b30b8"}),
        ("EURUSD=X", "1h", _eurusd(_checked(raw, "EURUSD.csv")), {
            "name": "EUR/USD spot, hourly bars (UTC)", "asset_class": "fx",
            "calendar": "FX", "adjustment": "FX spot (nothing to adjust)",
            "origin": "kernc/backtesting.py backtesting/test/EURUSD.csv @ b1066f16"}),
        ("ETH-BTC", "5m", _freqtrade(_checked(raw, "ETH_BTC-5m.feather")), {
            "name": "ETH/BTC on Binance, 5-minute bars (UTC)", "asset_class": "crypto",
            "calendar": "24/7", "adjustment": "spot pair (nothing to adjust)",
            "origin": "freqtrade/freqtrade tests/testdata/ETH_BTC-5m.feather @ 15aa1fd8"}),
        ("XRP-ETH", "1m", _freqtrade(_checked(raw, "XRP_ETH-1m.feather")), {
            "name": "XRP/ETH on Binance, 1-minute bars (UTC)", "asset_class": "crypto",
            "calendar": "24/7", "adjustment": "spot pair (nothing to adjust)",
            "origin": "freqtrade/freqtrade tests/testdata/XRP_ETH-1m.feather @ ec2960a1"}),
    ]
    parts, meta = [], {}
    for sym, interval, df, info in spec:
        df = df.sort_index()
        part = df.reset_index(names="timestamp")
        part.insert(1, "symbol", sym)
        part.insert(2, "interval", interval)
        parts.append(part)
        meta[sym] = {**info, "interval": interval, "bars": len(df),
                     "first": df.index[0].isoformat(), "last": df.index[-1].isoformat()}
    long = pd.concat(parts, ignore_index=True)
    long["timestamp"] = pd.DatetimeIndex(long["timestamp"]).as_unit("ns")
    OUT.mkdir(parents=True, exist_ok=True)
    long.to_parquet(OUT / "intraday.parquet", index=False, compression="zstd")
    (OUT / "intraday.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for sym, m in build(Path(sys.argv[1])).items():
        print(sym, m["interval"], m["bars"], m["first"], "..", m["last"])
    print("size", (OUT / "intraday.parquet").stat().st_size, "bytes")
