"""The ``csv:PATH`` source: a user's CSV file, folder of files or long file
(:class:`CsvSource`).
"""

from __future__ import annotations

import os
import threading
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
        # a long file is parsed once and split by symbol once (a 524-symbol replay spent
        # ~90% of its time re-reading one file per symbol); kept while the file's size and
        # mtime stay the same, so an edited file is read again
        self._lock = threading.Lock()
        self._long_key: tuple[Any, ...] | None = None
        self._long_df: pd.DataFrame | None = None
        self._long_groups: dict[str, pd.DataFrame] | None = None
        self._files_cache: tuple[tuple[str, ...], dict[str, Path]] | None = None
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
                names = tuple(sorted(os.listdir(self.path)))
            except OSError as exc:
                raise DataError(f"csv: cannot read folder {self.path}: {exc.strerror}; check "
                                "its permissions") from None
            # the folder's files are checked once while its names stay the same (not once
            # per symbol: a stat per file per fetch is quadratic in the universe)
            cached = self._files_cache
            if cached is None or cached[0] != names:
                cached = (names, self._data_files(names))
                self._files_cache = cached
            return dict(cached[1])
        return {_stem(self.path): self.path}

    def _data_files(self, names: tuple[str, ...]) -> dict[str, Path]:
        """The data files among a folder's ``names``, by symbol; two for one symbol (or
        none at all) is an error naming them."""
        # only data files: SPX.csv.bak, SPX.csv~ or .SPX.csv are not bars of SPX
        entries = [self.path / n for n in names]
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

    @property
    def per_symbol_files(self) -> bool:
        """Whether each symbol is read from its own file (a folder of files): loading many
        symbols may then run in threads (:func:`research_lib.data.parallel.fetch_all`); a
        long file is parsed once instead."""
        return self.path.is_dir() and self._long() is None

    def _long(self) -> pd.DataFrame | None:
        files = self._files()
        if len(files) != 1:
            return None
        p = next(iter(files.values()))
        try:
            st = p.stat()
            key: tuple[Any, ...] = (str(p), st.st_size, st.st_mtime_ns)
        except OSError:
            key = (str(p), None, None)
        with self._lock:
            if self._long_key != key:
                df = self._read(p)
                self._long_df = df if "symbol" in df.columns else None
                self._long_groups = None
                self._long_key = key
            return self._long_df

    def _long_rows(self, long: pd.DataFrame, symbol: str) -> pd.DataFrame:
        """The rows of ``symbol`` in the long file, split once for every symbol (rows in
        file order, as a boolean mask would give them)."""
        with self._lock:
            if self._long_groups is None:
                keys = long["symbol"].astype(str)
                self._long_groups = {str(k): g.drop(columns=["symbol"])
                                     for k, g in long.groupby(keys, sort=False)}
            rows = self._long_groups.get(symbol)
        if rows is None:
            return long.iloc[:0].drop(columns=["symbol"])
        return rows.copy()

    def symbols(self) -> list[str]:
        long = self._long()
        if long is not None:
            return sorted(map(str, long["symbol"].dropna().unique()))
        return sorted(self._files())

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        long = self._long()
        if long is not None:
            df = self._long_rows(long, symbol)
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
