"""Big universes, data side (issue 15): a long CSV is parsed once for every symbol, and a
folder of per-symbol files loads in threads with the same frames as a serial loop."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from research_lib.data import CsvSource, load
from research_lib.data import csv_source as csv_mod
from research_lib.data.parallel import MIN_PARALLEL, fetch_all, parallel_jobs
from research_lib.errors import DataError
from tests.kit.paper import random_walk

SYMS = [f"S{k:02d}" for k in range(12)]


def _long_csv(path: Path, symbols: list[str], n: int = 40) -> Path:
    parts = []
    for k, s in enumerate(symbols):
        df = random_walk(n, seed=k, symbol=s)[["open", "high", "low", "close", "volume"]]
        parts.append(df.assign(symbol=s).reset_index())
    # rows interleaved by date, as a long export is (not one block per symbol)
    long = pd.concat(parts).sort_values(["timestamp", "symbol"], kind="stable")
    long.to_csv(path, index=False)
    return path


def _folder(path: Path, symbols: list[str], n: int = 40) -> Path:
    path.mkdir()
    for k, s in enumerate(symbols):
        df = random_walk(n, seed=k, symbol=s)[["open", "high", "low", "close", "volume"]]
        df.to_csv(path / f"{s}.csv", index_label="timestamp")
    return path


def _counting_read_csv() -> tuple[mock._patch, list[int]]:
    calls = [0]
    real = pd.read_csv

    def counted(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    return mock.patch.object(csv_mod.pd, "read_csv", counted), calls


def test_long_file_is_parsed_once_for_every_symbol(tmp_path: Path) -> None:
    path = _long_csv(tmp_path / "long.csv", SYMS)
    patch, calls = _counting_read_csv()
    with patch:
        src = CsvSource(path)
        assert src.symbols() == SYMS
        frames = {s: src.fetch(s) for s in SYMS}
    assert calls[0] == 1  # before: once per symbol (and once more for symbols())
    # the same rows as selecting each symbol from the parsed file
    raw = pd.read_csv(path)
    for s in SYMS:
        want = raw[raw["symbol"] == s]
        assert frames[s]["close"].tolist() == want["close"].tolist()
        assert frames[s].attrs["symbol"] == s
        assert len(frames[s]) == 40
    # the cache hands out copies: changing one frame changes nothing read later
    frames["S00"]["close"] = 0.0
    assert (src.fetch("S00")["close"] > 0).all()


def test_long_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = _long_csv(tmp_path / "long.csv", SYMS[:3])
    src = CsvSource(path)
    assert src.symbols() == SYMS[:3]
    _long_csv(path, SYMS[:5], n=41)  # another size: parsed again
    assert src.symbols() == SYMS[:5]
    assert len(src.fetch("S04")) == 41


def test_session_set_up_parses_a_long_file_once(tmp_path: Path) -> None:
    from tests.kit.paper import make_session

    path = _long_csv(tmp_path / "long.csv", SYMS, n=90)
    patch, calls = _counting_read_csv()
    with patch:
        s = make_session(tmp_path, symbols=SYMS, source=f"csv:{path}",
                         model="baseline:buy_and_hold", start="2021-03-20", replicas=True)
        s.prepare()
        s.ledger.close()
    assert calls[0] == 1


def test_folder_loads_in_threads_with_the_frames_of_a_serial_loop(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "bars", SYMS)
    src = CsvSource(folder)
    assert src.per_symbol_files
    assert parallel_jobs(src, len(SYMS), 4) == 4
    threads: set[int] = set()
    lock = threading.Lock()

    def fetch(sym: str) -> pd.DataFrame:
        with lock:
            threads.add(threading.get_ident())
        return src.fetch(sym)

    parallel = fetch_all(src, SYMS, fetch, jobs=4)
    serial = fetch_all(src, SYMS, src.fetch, jobs=1)
    assert len(threads) > 1  # it did run in more than one thread
    assert list(parallel) == SYMS  # in the order given
    for s in SYMS:
        pd.testing.assert_frame_equal(parallel[s], serial[s])
        assert parallel[s].attrs == serial[s].attrs
    # load() goes the same way
    loaded = load(SYMS, source=f"csv:{folder}")
    for s in SYMS:
        pd.testing.assert_frame_equal(loaded[s], serial[s])


def test_parallel_load_raises_the_first_symbols_error_as_serial_does(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "bars", SYMS)
    for s in ("S03", "S07"):  # two broken files: the first in symbol order is named
        (folder / f"{s}.csv").write_text("timestamp,open,high,low,close\n2021-01-04,a,1,1,1\n")
    src = CsvSource(folder)
    with pytest.raises(DataError, match="S03.csv"):
        fetch_all(src, SYMS, src.fetch, jobs=4)
    with pytest.raises(DataError, match="S07.csv"):
        fetch_all(src, list(reversed(SYMS)), src.fetch, jobs=4)


def test_small_universes_and_long_files_stay_serial(tmp_path: Path) -> None:
    long = CsvSource(_long_csv(tmp_path / "long.csv", SYMS))
    assert not long.per_symbol_files
    assert parallel_jobs(long, 500, 8) == 1
    folder = CsvSource(_folder(tmp_path / "bars", SYMS))
    assert parallel_jobs(folder, MIN_PARALLEL - 1, 8) == 1
    assert parallel_jobs(folder, 500, 64) == 8  # bounded
    with pytest.raises(ValueError, match="jobs=0"):
        parallel_jobs(folder, 500, 0)
