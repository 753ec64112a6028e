"""The data-sanity suite's report side: load symbols from a source and check each
(:func:`check_symbols`), and the findings as a frame, a per-symbol summary and a text table
(what ``research-lib data check`` prints and the data-sanity report shows). The checks
themselves are in :mod:`research_lib.data.sanity`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .calendars import half_days
from .sanity import ERROR, WARNING, Finding, SanityConfig, check_frame, jump_threshold_for


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    rows = [f.as_dict() for f in findings]
    cols = ["severity", "code", "symbol", "timestamp", "row", "message"]
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


def parse_stale_after(value: Any) -> pd.Timedelta | None:
    """``--stale-after``: ``5D``, ``36h``, ``90min`` -> a positive Timedelta; empty -> None;
    anything else a ConfigError naming the value and the fix."""
    from ..errors import ConfigError

    if value is None or value == "":
        return None
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"--stale-after {value!r} is not a duration ({exc}); use e.g. 5D, "
                          "36h or 90min") from None
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ConfigError(f"--stale-after {value!r} must be a positive duration, e.g. 5D")
    return td


def check_symbols(
    symbols: Iterable[str],
    source: str = "sample",
    start: Any = None,
    end: Any = None,
    interval: str = "1d",
    jump_threshold: float | None = None,
    stale_after: Any = None,
    assets: Any = None,
    now: pd.Timestamp | None = None,
) -> tuple[dict[str, pd.DataFrame], list[Finding]]:
    """Load each symbol and check it. A load failure becomes an error finding (the other
    symbols are still checked)."""
    from ..config import DEFAULT_ASSETS, GateConfig, config_dir, load_assets, load_session
    from ..errors import ConfigError, DataError
    from .sources import get_source

    stale_td = parse_stale_after(stale_after)
    if jump_threshold is not None and not (math.isfinite(jump_threshold)
                                           and 0 < jump_threshold <= 10):
        # NaN would flag no jump at all (every comparison with it is false): fail closed
        raise ConfigError(f"--jump-threshold must be a number in (0, 10], got {jump_threshold!r}; "
                          "e.g. --jump-threshold 0.25 for 25% (or leave it out for "
                          "config/session.yaml's gate thresholds)")
    if assets is None:
        assets = load_assets() if (config_dir() / "assets.yaml").is_file() else DEFAULT_ASSETS
    # the session's gate thresholds (config/session.yaml, gate): the same jumps as a paper run
    gate = (load_session().gate if (config_dir() / "session.yaml").is_file() else GateConfig())
    src = get_source(source)
    frames: dict[str, pd.DataFrame] = {}
    findings: list[Finding] = []
    for sym in symbols:
        try:
            df = src.fetch(sym, start=start, end=end, interval=interval)
        except DataError as exc:
            findings.append(Finding("LOAD_FAILED", ERROR, sym, None, None, str(exc)))
            continue
        frames[sym] = df
        cal = df.attrs.get("calendar") or assets.calendar_for(sym)
        thr = jump_threshold_for(str(df.attrs.get("served_as", sym)), cal, jump_threshold,
                                 gate.thresholds())
        cfg = SanityConfig(
            calendar=cal, jump_threshold=thr,
            stale_after=stale_td,
            now=now, interval=interval,
        )
        findings += check_frame(df, sym, cfg)
    return frames, findings


def summary_table(frames: Mapping[str, pd.DataFrame], findings: list[Finding]) -> pd.DataFrame:
    """One row per symbol: what was served, span, bars, half days, and counts by severity."""
    rows = []
    for sym, df in frames.items():
        fs = [f for f in findings if f.symbol == sym]
        cal = df.attrs.get("calendar", "")
        rows.append({
            "symbol": sym,
            "served as": df.attrs.get("label", sym),
            "source": df.attrs.get("source", ""),
            "first": df.index.min().date().isoformat() if len(df) else "",
            "last": df.index.max().date().isoformat() if len(df) else "",
            "bars": len(df),
            "half days": len(half_days(cal, df.index.min(), df.index.max())) if cal and len(df) else 0,
            "errors": sum(f.severity == ERROR for f in fs),
            "warnings": sum(f.severity == WARNING for f in fs),
        })
    return pd.DataFrame(rows)


def format_table(findings: list[Finding], max_message: int = 110) -> str:
    if not findings:
        return "no findings"
    head = ("SEVERITY", "CODE", "SYMBOL", "TIMESTAMP", "ROW", "MESSAGE")
    rows = [
        (f.severity.upper(), f.code, f.symbol,
         "" if f.timestamp is None else f.timestamp.isoformat(),
         "" if f.row is None else str(f.row),
         f.message if len(f.message) <= max_message else f.message[: max_message - 1] + "…")
        for f in findings
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(5)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:5], widths, strict=True)) + "  " + head[5]]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return "\n".join(lines)
