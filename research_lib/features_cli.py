"""``research-lib features``: write the feature matrix of one or more symbols."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .config import parse_symbols
from .data import load
from .data.sanity import refuse_bad_timeline
from .errors import ConfigError, DataError
from .features import build_many


def write_features(symbols: list[str], source: str, start, end, out: str | Path,
                   interval: str = "1d") -> tuple[Path, list[str]]:
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {str(out)!r} must end in .parquet or .csv")
    frames = load(symbols, source=source, start=start, end=end, interval=interval)
    refuse_bad_timeline(frames, interval)  # bars of another interval, or before 1971
    matrix = build_many(frames)
    matrix.insert(2, "served_as", matrix["symbol"].map({s: f.attrs["served_as"] for s, f in frames.items()}))
    # written beside it, then renamed over it: a failed write (a full disk) keeps the old file
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            matrix.to_parquet(tmp, index=False)
        else:
            matrix.to_csv(tmp, index=False, float_format="%.17g",
                          date_format="%Y-%m-%dT%H:%M:%S%z")
        os.replace(tmp, out)
    except OSError as exc:
        raise DataError(f"--out {str(out)!r}: cannot write it ({exc.strerror or exc}); any "
                        "previous file there is kept as it was") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out, [f.attrs.get("label", s) for s, f in frames.items()]


def cli_features(args: argparse.Namespace) -> int:
    syms = parse_symbols(args.symbols)
    path, labels = write_features(syms, args.source, args.start, args.end, args.out, args.interval)
    print(f"wrote features for {', '.join(labels)} to {path}")
    return 0
