"""Data claims: the shipped sample loads as recorded, the cache is readable and fresh, a live
source answers (or WARNs offline), the data-sanity suite passes on the configured symbols."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, EmptyDataError, RateLimitError
from .context import Context
from .verdict import Verdict, all_passed, failed, passed, skipped, warned

LIVE_HOST = ("query2.finance.yahoo.com", 443)  # what yfinance asks


def data_source(ctx: Context) -> str:
    """The configured source for the data claims; ``yfinance`` reads what it wrote to the
    cache (the network is the live-source claim's)."""
    src = ctx.session_settings.session.source
    return "cache" if src == "yfinance" else src


# ------------------------------------------------------------------- the sample
def sample_loads(ctx: Context) -> Verdict:
    from ..data import sources

    src = sources.SampleSource()
    meta = sources.sample_meta()
    problems: dict[str, str | None] = {}
    rows: dict[str, int] = {}
    names = sorted(set(sources.sample_symbols()) | {
        s for s in ctx.symbols if s in meta or s in sources.SAMPLE_PROXIES})
    for sym in names:
        served = src.resolve(sym)[0]
        want = meta[served]
        try:
            df = src.fetch(sym)
        except DataError as exc:
            problems[sym] = f"does not load: {exc}"
            continue
        rows[sym] = len(df)
        first, last = df.index[0].date().isoformat(), df.index[-1].date().isoformat()
        bad = []
        if len(df) != want["rows"]:
            bad.append(f"{len(df)} rows, its provenance records {want['rows']}")
        if (first, last) != (want["first"], want["last"]):
            bad.append(f"spans {first} .. {last}, recorded {want['first']} .. {want['last']}")
        closes = df["close"].to_numpy(dtype=np.float64)
        n_bad = int((~np.isfinite(closes) | (closes <= 0)).sum())
        if n_bad:
            bad.append(f"{n_bad} closes not finite and positive")
        problems[sym] = "; ".join(bad) or None
    return all_passed(problems, f"{len(rows)} series load with their recorded rows and spans",
                      series=len(rows), rows=rows)


# -------------------------------------------------------------------- the cache
def cache_fresh(ctx: Context) -> Verdict:
    from ..data.cache import CacheSource

    cache = CacheSource()
    interval = ctx.session_settings.session.interval
    max_age = pd.Timedelta(ctx.settings.cache_max_age)
    used = data_source(ctx) == "cache"
    present = {s: cache.path(s, interval).exists() for s in ctx.symbols}
    if not any(present.values()) and not used:
        return skipped(
            f"no cache file for {', '.join(ctx.symbols)} in {cache.directory} and "
            f"session.source is {ctx.session_settings.session.source}, so the cache is not "
            "used here; `research-lib data check --source yfinance --symbols ...` fills it",
            cache_dir=str(cache.directory), files=0)
    now = pd.Timestamp.now(tz="UTC")
    problems: dict[str, str | None] = {}
    ages: dict[str, float] = {}
    for sym in ctx.symbols:
        if not present[sym]:
            problems[sym] = (f"no cache file {cache.path(sym, interval)}" if used else None)
            continue
        try:
            df = cache.fetch(sym, interval=interval)
        except DataError as exc:
            problems[sym] = f"unreadable: {exc}"
            continue
        age = now - df.index[-1]
        ages[sym] = round(age / pd.Timedelta(days=1), 2)
        problems[sym] = (None if age <= max_age else
                         f"last bar {df.index[-1].isoformat()} is {ages[sym]:g} days old, older "
                         f"than ready.cache_max_age {ctx.settings.cache_max_age}")
    return all_passed(problems, f"{len(ages)} cached series readable, last bars within "
                                f"{ctx.settings.cache_max_age}",
                      cache_dir=str(cache.directory), age_days=ages,
                      max_age=ctx.settings.cache_max_age)


# ------------------------------------------------------------------ live source
def reachable(host: tuple[str, int], timeout: float) -> str | None:
    """None when a TCP connection to ``host`` opens within ``timeout``, else why not."""
    try:
        with socket.create_connection(host, timeout=timeout):
            return None
    except OSError as exc:
        return f"{host[0]}:{host[1]} not reachable ({exc.strerror or exc})"


def probe_live(symbol: str, timeout: float, cache_dir: Any) -> pd.DataFrame:
    """The last ten days of ``symbol`` from yfinance, one attempt, written to a scratch
    cache (never the user's)."""
    from ..data.cache import CacheSource
    from ..data.yfinance_source import RetryPolicy, YFinanceSource

    src = YFinanceSource(cache=CacheSource(cache_dir), retry=RetryPolicy(attempts=1),
                         timeout=timeout)
    start = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=10)).date().isoformat()
    return src.fetch(symbol, start=start)


def in_daemon(fn: Any, timeout: float, *args: Any) -> Any:
    """``fn(*args)`` in a daemon thread, waiting at most ``timeout`` s (a ``TimeoutError``
    then): a resolver that hangs, with no timeout of its own, can hold neither the gate nor
    the process's exit (a pool's worker thread would be joined at exit)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, name="research-lib-ready-live-probe", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class _Offline(Exception):
    """The live source's host could not be reached."""


def _ask(symbol: str, timeout: float, cache_dir: Any) -> pd.DataFrame:
    why = reachable(LIVE_HOST, min(timeout, 5.0))
    if why is not None:
        raise _Offline(why)
    return probe_live(symbol, timeout, cache_dir)


def live_source(ctx: Context) -> Verdict:
    sym, timeout = ctx.settings.live_probe_symbol, ctx.settings.live_timeout_s
    if ctx.offline:
        return warned("offline: not asked (--offline); no live source was shown to answer",
                      probed=False)
    try:
        df = in_daemon(_ask, timeout + 5, sym, timeout, ctx.scratch("live-cache"))
    except _Offline as exc:
        return warned(f"offline: {exc}", probed=True, answered=False)
    except TimeoutError:
        return warned(f"offline: no answer for {sym} within {timeout + 5:g} s", probed=True,
                      answered=False)
    except RateLimitError as exc:
        return warned(f"rate limited: {exc}", probed=True, answered=False)
    except EmptyDataError as exc:
        return failed(f"yfinance answered without bars for {sym}: {exc}", probed=True,
                      answered=True, bars=0)
    except Exception as exc:  # reachable, yet the source failed: shown broken
        return failed(f"yfinance failed for {sym}: {type(exc).__name__}: {exc}", probed=True,
                      answered=False)
    age = pd.Timestamp.now(tz="UTC") - df.index[-1]
    age_days = round(age / pd.Timedelta(days=1), 2)
    if age > pd.Timedelta(ctx.settings.cache_max_age):
        return failed(f"yfinance answered for {sym} with a last bar {age_days:g} days old "
                      f"(older than ready.cache_max_age {ctx.settings.cache_max_age})",
                      probed=True, answered=True, bars=len(df), age_days=age_days)
    return passed(f"yfinance answered for {sym}: {len(df)} bars, the last "
                  f"{df.index[-1].isoformat()}", probed=True, answered=True, bars=len(df),
                  age_days=age_days)


# ------------------------------------------------------------------ data sanity
def sanity(ctx: Context) -> Verdict:
    from ..data.sanity import ERROR, WARNING
    from ..data.sanity_report import check_symbols

    source = data_source(ctx)
    frames, findings = check_symbols(ctx.symbols, source=source,
                                     interval=ctx.session_settings.session.interval)
    errors = [f for f in findings if f.severity == ERROR]
    warnings = [f for f in findings if f.severity == WARNING]
    evidence = {"source": source, "symbols": len(ctx.symbols),
                "bars": {s: len(df) for s, df in frames.items()}, "errors": len(errors),
                "warnings": len(warnings),
                "codes": dict(sorted(Counter(f.code for f in findings).items()))}
    if errors:
        shown = "; ".join(f"{f.code} {f.symbol}"
                          f"{' at ' + f.timestamp.isoformat() if f.timestamp is not None else ''}"
                          f": {f.message}" for f in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return failed(f"{len(errors)} error(s) from {source}: {shown}{more}", **evidence)
    return passed(f"no error on {len(frames)} symbols from {source} "
                  f"({len(warnings)} warning(s))", **evidence)
