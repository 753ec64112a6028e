"""The ``csv:PATH`` source: a user's CSV file, folder of files or long file
(:class:`CsvSource`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError, EmptyDataError, UnknownSymbolError
from .source_base import COLUMNS, _trim, finish_frame
from .timestamps import parse_timestamps

_TIME_NAMES = ("timestamp", "datetime", "date", "time", "")
_SYMBOL_NAMES = ("symbol", "ticker")


# what a data file may end with (pandas reads the compressed ones as they are)
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst")


def _csv_suffix(name: str) -> str | None:
    low = name.lower()
    return next((x for x in sorted(CSV_SUFFIXES, key=len, reverse=True) if low.endswith(x)), None)


def _stem(p: Path) -> str:
    """The symbol a file serves: its name without the CSV suffix, dots kept
    (``BRK.B.csv`` -> ``BRK.B``, ``SPX.csv.gz`` -> ``SPX``)."""
    suffix = _csv_suffix(p.name)
    return p.name[: -len(suffix)] if suffix else p.stem


class CsvSource:
    """A user's CSV: a one-symbol file named after the symbol (``SPY.csv``), a folder of
    such files, or one long file with a ``symbol`` (or ``ticker``) column. Column names
    are case-insensitive; timestamps daily or intraday, with or without a UTC offset;
    naive timestamps are taken as UTC. Rows are kept as they are (order, duplicates, NaN):
    the sanity checks report them."""

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            exists = self.path.exists()
        except OSError as exc:  # a folder on the way cannot be read
            raise DataError(f"csv: cannot read {self.path}: {exc.strerror}; check the "
                            "permissions of its folders") from None
        if not exists:
            raise DataError(f"csv: {self.path} does not exist; pass --source csv:PATH to a file or folder")

    def _files(self) -> dict[str, Path]:
        if self.path.is_dir():
            try:  # iterdir on an unreadable folder: a DataError naming it, not a traceback
                entries = sorted(self.path.iterdir())
            except OSError as exc:
                raise DataError(f"csv: cannot read folder {self.path}: {exc.strerror}; check "
                                "its permissions") from None
            # only data files: SPX.csv.bak, SPX.csv~ or .SPX.csv are not bars of SPX
            found = [p for p in entries
                     if _csv_suffix(p.name) and not p.name.startswith(".") and p.is_file()]
            files: dict[str, Path] = {}
            upper: dict[str, str] = {}
            for p in found:
                key = _stem(p)
                twin = upper.setdefault(key.upper(), key)
                if twin != key or key in files:
                    raise DataError(
                        f"csv: folder {self.path} has two files for symbol {key!r}: "
                        f"{files[twin].name} and {p.name}; keep one (move the other out)")
                files[key] = p
            if not files:
                raise DataError(f"csv: folder {self.path} has no *.csv files "
                                f"(accepted: {', '.join(CSV_SUFFIXES)})")
            return files
        return {_stem(self.path): self.path}

    @staticmethod
    def _read(p: Path) -> pd.DataFrame:
        try:
            df = pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"csv: cannot parse {p}: {exc}") from exc
        except OSError as exc:  # unreadable (permissions), a folder named *.csv, ...
            raise DataError(f"csv: cannot read {p}: {exc.strerror or exc}; check the file's "
                            "permissions") from None
        df.columns = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
        if {"date", "time"} <= set(df.columns) and not {"timestamp", "datetime"} & set(df.columns):
            # a date column and a time-of-day column: one bar time (not every bar at midnight)
            df.insert(0, "datetime", df.pop("date").astype(str) + " " + df.pop("time").astype(str))
        tcol = next((c for c in df.columns if c in _TIME_NAMES or c.startswith("unnamed")), None)
        if tcol is None and len(df) and str(df.iloc[0, 0]).strip().lower() == "ticker":
            raise DataError(
                f"csv: {p} has MultiIndex columns (a second header row {list(df.iloc[0])[:3]}"
                "...: a yfinance download saved with to_csv); save one level of column names "
                "(df.columns = df.columns.get_level_values('Price')) or read it with "
                "header=[0, 1] and research_lib.data.yfinance_source.flatten_yf_columns"
            )
        if tcol is None:
            raise DataError(f"csv: {p} has no timestamp column; name one of timestamp/datetime/date "
                            f"(has {list(df.columns)})")
        ts = parse_timestamps(df[tcol], f"csv: {p} column {tcol!r}")
        df = df.drop(columns=[tcol])
        df.index = pd.DatetimeIndex(ts, name="timestamp")
        for c in _SYMBOL_NAMES:
            if c in df.columns:
                df = df.rename(columns={c: "symbol"})
                break
        if "adj_close" in df.columns and "close" not in df.columns:
            df["close"] = df["adj_close"]
        return df

    def _long(self) -> pd.DataFrame | None:
        files = self._files()
        if len(files) == 1:
            df = self._read(next(iter(files.values())))
            if "symbol" in df.columns:
                return df
        return None

    def symbols(self) -> list[str]:
        long = self._long()
        if long is not None:
            return sorted(map(str, long["symbol"].dropna().unique()))
        return sorted(self._files())

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        long = self._long()
        if long is not None:
            df = long[long["symbol"].astype(str) == symbol].drop(columns=["symbol"])
            if df.empty:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", self.symbols())
            where = f"{self.path} (rows of {symbol!r})"
        else:
            files = self._files()
            key = symbol if symbol in files else next(
                (k for k in files if k.upper() == symbol.upper()), None)
            if key is None:
                raise UnknownSymbolError(symbol, f"csv:{self.path}", sorted(files))
            df = self._read(files[key])
            where = str(files[key])
        missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
        if missing:
            raise DataError(f"csv: {where} lacks columns {missing}; has {list(df.columns)} "
                            "(names are case-insensitive; volume is optional)")
        for c in [c for c in COLUMNS if c in df.columns]:
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & df[c].notna()
            if bad.any():
                first = df.index[bad.to_numpy().argmax()]
                raise DataError(f"csv: {where} column {c!r} has non-numeric values, "
                                f"first at {first}: {df[c][bad].iloc[0]!r}")
            df[c] = num
        df = _trim(df, start, end)
        if df.empty:
            raise EmptyDataError(symbol, f"csv:{self.path}", f"no rows between {start} and {end}")
        return finish_frame(df, symbol=symbol, source=f"csv:{self.path}", adjustment="unknown")
