"""Data-sanity suite: each check returns findings with a coded reason, a severity, the
symbol and where (timestamp and row). Nothing is fixed or filled here: a bad bar is
reported, and the trading loop refuses to act on a symbol with an error finding.

``check_frame(df, symbol)`` runs every check on one frame;
``research-lib data check --symbols SYMS`` prints them and exits 1 on any error.

The paper session asks :func:`bar_faults` about every new bar before it uses it: the same
rules (and thresholds) as the whole-frame checks, on numpy arrays, for the hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .calendars import CRYPTO, is_open, is_session, sessions

ERROR, WARNING, INFO = "error", "warning", "info"
_RANK = {ERROR: 0, WARNING: 1, INFO: 2}
PRICE_COLS = ("open", "high", "low", "close")
REQUIRED = (*PRICE_COLS, "volume")

# |close/prev close - 1| above this is flagged as a jump (bad split, 100x error).
# The sample's largest real moves: S&P 500 11.6% (2008-10-13), NASDAQ 14.2% (2001-01-03),
# BTC 27% and ETH/LTC ~30-40% days; thresholds sit above those.
DEFAULT_JUMP = {"XNYS": 0.25, CRYPTO: 0.60}
# Volatility indices move far more: ^VIX rose 115.6% on 2018-02-05 (real).
SYMBOL_JUMP = {"^VIX": 1.5, "^VXN": 1.5, "^VVIX": 1.5}


def jump_threshold_for(symbol: str, calendar: str, override: float | None = None,
                       per_calendar: Mapping[str, float] | None = None) -> float:
    """``override``, else the symbol's own (volatility indices), else the calendar's from
    ``per_calendar`` (the session's ``gate`` config), else :data:`DEFAULT_JUMP`."""
    if override is not None:
        return override
    cal = {**DEFAULT_JUMP, **(per_calendar or {})}
    return SYMBOL_JUMP.get(symbol, cal.get(calendar, cal["XNYS"]))


@dataclass(frozen=True)
class Finding:
    """One problem: ``code`` is stable (e.g. ``DUPLICATE_TIMESTAMP``); ``row`` is the
    0-based position in the frame as loaded."""

    code: str
    severity: str
    symbol: str
    timestamp: pd.Timestamp | None
    row: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timestamp"] = None if self.timestamp is None else self.timestamp.isoformat()
        return d


@dataclass(frozen=True)
class SanityConfig:
    calendar: str = "XNYS"
    jump_threshold: float | None = None  # None: DEFAULT_JUMP[calendar]
    stale_after: pd.Timedelta | None = None  # None: staleness of the last bar not checked
    stale_run: int = 5  # this many identical consecutive bars (with volume) is stale
    now: pd.Timestamp | None = None  # None: the wall clock (UTC)
    interval: str = "1d"


def _f(code, sev, sym, df, i, msg) -> Finding:
    ts = None
    if i is not None and isinstance(df.index, pd.DatetimeIndex) and 0 <= i < len(df):
        ts = df.index[i]
    return Finding(code, sev, sym, ts, None if i is None else int(i), msg)


def check_schema(df: pd.DataFrame, sym: str) -> list[Finding]:
    out = []
    if isinstance(df.columns, pd.MultiIndex):
        levels = [list(map(str, lv))[:6] for lv in df.columns.levels]
        return [Finding("MULTIINDEX_COLUMNS", ERROR, sym, None, None,
                        f"columns are a {df.columns.nlevels}-level MultiIndex {levels}; flatten "
                        "them to open, high, low, close, volume (for a yfinance frame: "
                        "research_lib.data.yfinance_source.flatten_yf_columns)")]
    for c in REQUIRED:
        if c not in df.columns:
            out.append(Finding("MISSING_COLUMN", ERROR, sym, None, None,
                               f"column {c!r} is missing; expected {list(REQUIRED)}"))
        elif not pd.api.types.is_float_dtype(df[c]) and not pd.api.types.is_integer_dtype(df[c]):
            out.append(Finding("BAD_DTYPE", ERROR, sym, None, None,
                               f"column {c!r} has dtype {df[c].dtype}; expected a number (float64)"))
    if not isinstance(df.index, pd.DatetimeIndex):
        out.append(Finding("INDEX_NOT_DATETIME", ERROR, sym, None, None,
                           f"index is {type(df.index).__name__}; expected a DatetimeIndex"))
    elif df.index.tz is None:
        out.append(Finding("INDEX_NOT_TZ_AWARE", ERROR, sym, None, None,
                           "index has no timezone; localise it (tz_localize('UTC'))"))
    return out


def check_order(df: pd.DataFrame, sym: str) -> list[Finding]:
    out = []
    if not isinstance(df.index, pd.DatetimeIndex) or len(df) < 2:
        return out
    ns = df.index.asi8
    diff = np.diff(ns)
    for i in np.flatnonzero(diff == 0) + 1:
        out.append(_f("DUPLICATE_TIMESTAMP", ERROR, sym, df, i,
                      f"timestamp repeats row {i - 1}; keep one bar per timestamp"))
    for i in np.flatnonzero(diff < 0) + 1:
        out.append(_f("NOT_INCREASING", ERROR, sym, df, i,
                      f"timestamp is earlier than row {i - 1}'s ({df.index[i - 1]}); sort the index"))
    return out


def _numeric(df: pd.DataFrame, cols: Iterable[str]) -> dict[str, np.ndarray]:
    return {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
            for c in cols if c in df.columns}


def check_values(df: pd.DataFrame, sym: str) -> list[Finding]:
    out = []
    v = _numeric(df, REQUIRED)
    if not v:
        return out
    # per-row messages only for the rows that have something to say (numpy finds them)
    flagged = np.zeros(len(df), dtype=bool)
    for c, a in v.items():
        flagged |= np.isinf(a) if c == "volume" else ~np.isfinite(a)
    for i in np.flatnonzero(flagged).tolist():
        nan_cols = [c for c in v if np.isnan(v[c][i]) and not (c == "volume")]
        inf_cols = [c for c in v if np.isinf(v[c][i])]
        if nan_cols:
            out.append(_f("NAN_VALUE", ERROR, sym, df, i, f"NaN in {', '.join(nan_cols)}"))
        if inf_cols:
            out.append(_f("INF_VALUE", ERROR, sym, df, i, f"inf in {', '.join(inf_cols)}"))
    if "volume" in v:
        vol_nan = np.isnan(v["volume"])
        if vol_nan.any() and not vol_nan.all():
            for i in np.flatnonzero(vol_nan):
                out.append(_f("NAN_VALUE", WARNING, sym, df, i, "NaN volume"))
        elif vol_nan.all():
            out.append(Finding("NO_VOLUME", WARNING, sym, None, None,
                               "volume is missing for every bar; volume features are NaN"))
    price = [c for c in PRICE_COLS if c in v]
    with np.errstate(invalid="ignore"):
        flagged = np.zeros(len(df), dtype=bool)
        for c in price:
            flagged |= v[c] <= 0
        for i in np.flatnonzero(flagged).tolist():
            bad = [c for c in price if v[c][i] <= 0]
            if bad:
                vals = ", ".join(f"{c}={v[c][i]:g}" for c in bad)
                out.append(_f("NON_POSITIVE_PRICE", ERROR, sym, df, i, f"non-positive price: {vals}"))
        if all(c in v for c in PRICE_COLS):
            o, h, lo, c = v["open"], v["high"], v["low"], v["close"]
            valid = _valid_rows(df)  # rows already reported (NaN, <= 0) are not re-reported
            bad_rows = valid & ohlc_inconsistent(o, h, lo, c)
            for i in np.flatnonzero(bad_rows):
                out.append(_f("OHLC_INCONSISTENT", ERROR, sym, df, i,
                              f"need low <= open, close <= high; got open={o[i]:g} high={h[i]:g} "
                              f"low={lo[i]:g} close={c[i]:g}"))
        if "volume" in v:
            for i in np.flatnonzero(v["volume"] < 0):
                out.append(_f("NEGATIVE_VOLUME", ERROR, sym, df, i, f"volume={v['volume'][i]:g}"))
    return out


def ohlc_inconsistent(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Rows breaking ``low <= open, close <= high`` (NaN compares as consistent)."""
    return (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (h < lo)


def jump_exceeds(close: np.ndarray, reference: np.ndarray, threshold: Any) -> np.ndarray:
    """``|close / reference - 1| > threshold`` (False where the reference is NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(close / reference - 1.0) > threshold


def split_hint(ratio: float) -> str:
    """A hint when a jump looks like an unadjusted split or a unit error (1:m or m:1)."""
    for m in (2, 3, 4, 5, 10, 20, 100):
        if abs(ratio * m - 1) < 0.05 or abs(ratio / m - 1) < 0.05:
            return f" (ratio {ratio:.4g} ~ 1:{m} or {m}:1: an unadjusted split or a unit error?)"
    return ""


def _valid_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows whose prices are all finite and positive."""
    v = _numeric(df, [c for c in PRICE_COLS if c in df.columns])
    ok = np.ones(len(df), dtype=bool)
    for a in v.values():
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(a) & (a > 0)
    return ok


def check_jumps(df: pd.DataFrame, sym: str, threshold: float) -> list[Finding]:
    """Close-to-close moves between consecutive valid rows (a NaN or negative row is its
    own finding and does not also count as a jump)."""
    out = []
    if "close" not in df.columns or len(df) < 2:
        return out
    rows = np.flatnonzero(_valid_rows(df))
    c = _numeric(df, ["close"])["close"][rows]
    if len(c) < 2:
        return out
    r = c[1:] / c[:-1] - 1.0
    for k in np.flatnonzero(jump_exceeds(c[1:], c[:-1], threshold)) + 1:
        i = int(rows[k])
        hint = split_hint(c[k] / c[k - 1])
        out.append(_f("PRICE_JUMP", ERROR, sym, df, i,
                      f"close moved {r[k - 1]:+.1%} since row {rows[k - 1]} "
                      f"(threshold {threshold:.0%}){hint}"))
    return out


def check_stale_run(df: pd.DataFrame, sym: str, run: int) -> list[Finding]:
    """Identical OHLC for ``run`` consecutive bars: a frozen feed, not a market."""
    out = []
    if len(df) < run or not all(c in df.columns for c in PRICE_COLS):
        return out
    a = df[list(PRICE_COLS)].to_numpy(np.float64)
    same = np.all(a[1:] == a[:-1], axis=1)
    count = 0
    for i, s in enumerate(same, start=1):
        count = count + 1 if s else 0
        if count == run - 1:
            out.append(_f("STALE_BARS", WARNING, sym, df, i,
                          f"{run} consecutive bars with identical OHLC ending here; the feed may be frozen"))
    return out


def check_time(df: pd.DataFrame, sym: str, cfg: SanityConfig) -> list[Finding]:
    out = []
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None or len(df) == 0:
        return out
    now = cfg.now if cfg.now is not None else pd.Timestamp.now(tz="UTC")
    for i in np.flatnonzero(df.index > now):
        out.append(_f("FUTURE_TIMESTAMP", ERROR, sym, df, i,
                      f"bar is stamped after now ({now.isoformat()}): lookahead or a clock error"))
    if cfg.stale_after is not None:
        age = now - df.index.max()
        if age > cfg.stale_after:
            out.append(_f("STALE_LAST_BAR", WARNING, sym, df, len(df) - 1,
                          f"last bar is {age} old (limit {cfg.stale_after}); the feed may have stopped"))
    return out


# ------------------------------------------------------------------- bar spacing
# Bars before this are not market data this package can have: an integer date read as
# nanoseconds since 1970 lands here (20200102 -> 1970-01-01 00:00:00.020200102).
PLAUSIBLE_FROM = pd.Timestamp("1971-01-01", tz="UTC")
# The median gap between bars over the interval's length must lie in this band: weekends
# and overnight gaps leave the median of real daily or hourly bars at one interval. Intraday
# bars of a thin market skip empty minutes, so their upper bound is wider (daily bars
# checked as 1h are still 24x).
SPACING_BAND = (0.5, 3.0)
SPACING_MAX_INTRADAY = 10.0
_INTERVAL_RE = re.compile(r"^(\d*)(m|min|h|d|wk|mo)$")
_INTERVAL_UNIT_S = {"m": 60, "min": 60, "h": 3600, "d": 86400, "wk": 7 * 86400, "mo": 30 * 86400}


def interval_length(interval: str) -> pd.Timedelta | None:
    """``1d`` -> 1 day, ``1h``, ``5m``, ``1wk``, ``1mo`` (30 days); None if not a bar interval."""
    m = _INTERVAL_RE.match(str(interval).strip().lower())
    if not m or m.group(1) in ("0", "00"):
        return None
    n = int(m.group(1) or 1)
    return pd.Timedelta(seconds=n * _INTERVAL_UNIT_S[m.group(2)]) if n else None


def check_spacing(df: pd.DataFrame, sym: str, cfg: SanityConfig) -> list[Finding]:
    """Bars stamped before 1971 (IMPLAUSIBLE_TIMESTAMP), and a median spacing that does not
    match the interval (BAR_SPACING: hourly bars under ``--interval 1d``, daily bars as
    ``1h``, bars packed into a millisecond): both errors, the bars would be replayed,
    featured and annualised as something they are not."""
    out: list[Finding] = []
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None or len(df) == 0:
        return out
    early = np.flatnonzero(df.index < PLAUSIBLE_FROM)
    if len(early):
        i = int(early[0])
        out.append(_f("IMPLAUSIBLE_TIMESTAMP", ERROR, sym, df, i,
                      f"{len(early)} bar(s) stamped before {PLAUSIBLE_FROM.date()} (first "
                      f"{df.index[i].isoformat()}): integer dates read as nanoseconds? write "
                      "dates as text (2020-01-02) or YYYYMMDD"))
    want = interval_length(cfg.interval)
    if want is None or len(df) < 3:
        return out
    gaps = np.diff(df.index.as_unit("ns").asi8)
    gaps = gaps[gaps > 0]
    if not len(gaps):
        return out
    median = pd.Timedelta(int(np.median(gaps)), unit="ns")
    ratio = median / want
    hi = SPACING_BAND[1] if want >= pd.Timedelta(days=1) else SPACING_MAX_INTRADAY
    if not SPACING_BAND[0] <= ratio <= hi:
        out.append(Finding(
            "BAR_SPACING", ERROR, sym, None, None,
            f"the median gap between bars is {median} but the interval is {cfg.interval!r} "
            f"({want}); the bars are not {cfg.interval} bars: pass the --interval they have, "
            "or resample them"))
    return out


# ------------------------------------------------------------------- per-bar gate
# What a single new bar can fail with, in the order the rules are tried (the first wins).
# The codes and rules are those of the whole-frame checks above.
BAR_FAULTS = ("", "NAN_VALUE", "INF_VALUE", "NON_POSITIVE_PRICE", "NEGATIVE_VOLUME",
              "OHLC_INCONSISTENT", "FUTURE_TIMESTAMP", "STALE_LAST_BAR", "PRICE_JUMP")
_FUTURE, _STALE, _JUMP = 6, 7, 8


def bar_faults(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
               volume: np.ndarray, reference: np.ndarray, threshold: np.ndarray | float,
               bar_ns: np.ndarray | None = None, now_ns: int | None = None,
               stale: np.ndarray | None = None) -> np.ndarray:
    """One index into :data:`BAR_FAULTS` per bar; 0 means the bar may be used.

    A bar is usable when its prices are finite and positive, its volume is not negative
    (NaN volume is a warning, not a fault), ``low <= open, close <= high``, it is not
    stamped after ``now_ns``, it is not ``stale`` (a mask the caller computed, see
    :func:`stale_bar`), and its close is within ``threshold`` of ``reference`` (the last
    usable close; NaN: no check), as :func:`check_jumps` measures a jump. Cheap: numpy on
    the step's few bars, the detail is worked out only for bars that fail.
    """
    o, h, lo, c, v = open_, high, low, close, volume
    if len(c) <= _SCALAR_MAX and _all_usable(o, h, lo, c, v, reference, threshold, bar_ns,
                                             now_ns, stale):
        return np.zeros(len(c), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        good = ((lo > 0) & (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c)) & (h < np.inf)
                & ~((v < 0) | (v == np.inf)) & ~jump_exceeds(c, reference, threshold))
        if bar_ns is not None and now_ns is not None:
            good &= bar_ns <= now_ns
        if stale is not None:
            good &= ~stale
        code = np.zeros(len(c), dtype=np.int64)
        if good.all():
            return code
        bad = np.flatnonzero(~good)
        o, h, lo, c, v = o[bad], h[bad], lo[bad], c[bad], v[bad]
        thr = threshold[bad] if isinstance(threshold, np.ndarray) else threshold
        rules = [
            np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c),
            np.isinf(o) | np.isinf(h) | np.isinf(lo) | np.isinf(c) | np.isinf(v),
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            v < 0,
            ohlc_inconsistent(o, h, lo, c),
            (bar_ns[bad] > now_ns) if bar_ns is not None and now_ns is not None
            else np.zeros(len(bad), bool),
            stale[bad] if stale is not None else np.zeros(len(bad), bool),
            jump_exceeds(c, reference[bad], thr),
        ]
        sub = np.zeros(len(bad), dtype=np.int64)
        for k, mask in enumerate(rules, start=1):
            sub[(sub == 0) & mask] = k
        code[bad] = sub
    return code


_SCALAR_MAX = 32  # up to this many bars, plain floats beat a dozen numpy calls (measured:
# 10 bars ~6 vs ~16 us, 20 bars ~10 vs ~18 us, 40 bars ~19 vs ~16 us; python -m benchmarks)


def _all_usable(o, h, lo, c, v, ref, thr, bar_ns, now_ns, stale) -> bool:
    """The usable-bar mask of :func:`bar_faults` on plain floats, for a step's few bars:
    True only if every bar passes (any doubt goes to the numpy path)."""
    thr_l = thr.tolist() if isinstance(thr, np.ndarray) else [thr] * len(c)
    ns_l = bar_ns.tolist() if bar_ns is not None and now_ns is not None else None
    st_l = stale.tolist() if stale is not None else None
    for k, (oi, hi, li, ci, vi, ri, ti) in enumerate(zip(
            o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist(), ref.tolist(), thr_l,
            strict=True)):
        if not (li > 0 and li <= oi and li <= ci and hi >= oi and hi >= ci and hi < math.inf):
            return False
        if vi < 0 or vi == math.inf:
            return False
        if ri == ri and (ri <= 0 or abs(ci / ri - 1.0) > ti):  # ri == ri: not NaN
            return False
        if ns_l is not None and ns_l[k] > now_ns:
            return False
        if st_l is not None and st_l[k]:
            return False
    return True


def describe_bar_fault(code: int, o: float, h: float, lo: float, c: float, v: float,
                       reference: float, threshold: float, bar_ts: str = "",
                       now: str = "") -> str:
    """``NAN_VALUE: close=nan ...``: the fault's code and the numbers behind it."""
    name = BAR_FAULTS[code]
    ohlcv = f"open={o:.10g} high={h:.10g} low={lo:.10g} close={c:.10g} volume={v:.10g}"
    if code == _JUMP:
        move = c / reference - 1.0
        return (f"{name}: close={c:.10g} last_good_close={reference:.10g} move={move:+.4f} "
                f"threshold={threshold:g}{split_hint(c / reference)}")
    if code == _FUTURE:
        return f"{name}: bar stamped {bar_ts}, after the session clock: lookahead or a clock error"
    if code == _STALE:
        return f"{name}: newest bar stamped {bar_ts}, a full session or more before {now}"
    if code == 5:
        return f"{name}: need low <= open, close <= high; {ohlcv}"
    return f"{name}: {ohlcv}"


def stale_bar(calendar: str, interval_s: float, bar_ts: pd.Timestamp,
              now: pd.Timestamp) -> bool:
    """Whether the newest bar (of ``interval_s`` seconds) is too old to decide on at
    ``now``, a live poll.

    Daily bars: a whole session of the calendar (a whole day for 24/7) passed after the
    bar's own and before today's, with no newer bar. Intraday bars: a whole session was
    missed, or the bar is older than three intervals while the market is open.
    """
    day, today = bar_ts.normalize(), now.normalize()
    daily = interval_s >= 86400
    if calendar == CRYPTO:
        if daily:
            return (today - day) > pd.Timedelta(days=1)
    else:
        between = sessions(calendar, day + pd.Timedelta(days=1), today - pd.Timedelta(days=1))
        if len(between):
            return True
        if daily:
            return False
    if now - bar_ts <= pd.Timedelta(seconds=3 * interval_s):
        return False
    return is_open(calendar, now)


def _is_daily(interval: str) -> bool:
    return interval.lower() in ("1d", "d", "1day")


def check_calendar(df: pd.DataFrame, sym: str, cfg: SanityConfig) -> list[Finding]:
    """Missing sessions (flagged, never filled) and bars on non-session days (daily bars)."""
    out: list[Finding] = []
    if not _is_daily(cfg.interval) or not isinstance(df.index, pd.DatetimeIndex):
        return out
    if df.index.tz is None or len(df) < 2:
        return out
    now = cfg.now if cfg.now is not None else pd.Timestamp.now(tz="UTC")
    days = df.index.tz_convert("UTC").normalize()
    days = days[days <= now]  # future bars are FUTURE_TIMESTAMP findings, not gaps
    if len(days) < 2:
        return out
    first, last = days.min(), days.max()
    expected = sessions(cfg.calendar, first, last)
    have = pd.DatetimeIndex(days.unique())
    missing = expected.difference(have)
    if len(missing):
        # one finding per run of consecutive missing sessions
        pos = expected.get_indexer(missing)
        start = 0
        for k in range(1, len(pos) + 1):
            if k == len(pos) or pos[k] != pos[k - 1] + 1:
                run = missing[start:k]
                after = int(days.searchsorted(run[0]))
                what = run[0].date().isoformat() if len(run) == 1 else (
                    f"{len(run)} sessions {run[0].date()} .. {run[-1].date()}")
                out.append(Finding("MISSING_SESSION", WARNING, sym, run[0], after,
                                   f"no bar for {what} ({cfg.calendar} session); gaps are flagged, "
                                   "not filled"))
                start = k
    if cfg.calendar != CRYPTO:
        extra = have.difference(expected)
        for d in extra:
            if d < first or d > last:
                continue
            if not is_session(cfg.calendar, d):
                i = int(days.searchsorted(d))
                out.append(_f("NON_SESSION_BAR", WARNING, sym, df, i,
                              f"bar on {d.date()}, which is not a {cfg.calendar} session"))
    return out


def check_intraday(df: pd.DataFrame, sym: str, cfg: SanityConfig) -> list[Finding]:
    """Intraday bars against the calendar's hours: ``NON_SESSION_BAR`` and ``MISSING_BARS``
    warnings (:mod:`.intraday_sanity`); nothing for daily bars."""
    from .intraday_sanity import intraday_problems

    step = interval_length(cfg.interval)
    if step is None or not isinstance(df.index, pd.DatetimeIndex):
        return []
    return [_f(code, WARNING, sym, df, i, msg)
            for code, i, msg in intraday_problems(df.index, cfg.calendar, step, cfg.interval)]


def check_frame(df: pd.DataFrame, symbol: str | None = None,
                config: SanityConfig | None = None) -> list[Finding]:
    """Run every check on one symbol's frame; findings sorted by severity then row."""
    cfg = config or SanityConfig()
    sym = symbol or str(df.attrs.get("symbol", "?"))
    out = check_schema(df, sym)
    if any(f.code == "MISSING_COLUMN" for f in out) and "close" not in df.columns:
        return out
    out += check_order(df, sym)
    out += check_values(df, sym)
    served = str(df.attrs.get("served_as", sym))
    thr = jump_threshold_for(served, cfg.calendar, cfg.jump_threshold)
    out += check_jumps(df, sym, thr)
    out += check_stale_run(df, sym, cfg.stale_run)
    out += check_time(df, sym, cfg)
    out += check_spacing(df, sym, cfg)
    out += check_calendar(df, sym, cfg)
    out += check_intraday(df, sym, cfg)
    attrs = df.attrs
    if attrs.get("proxy"):
        out.append(Finding("PROXY_SERIES", INFO, sym, None, None,
                           f"{sym} is served as {attrs.get('served_as')}: {attrs.get('proxy_note')}"))
    if attrs.get("close_only"):
        out.append(Finding("CLOSE_ONLY_SERIES", INFO, sym, None, None,
                           "source has the close only: open/high/low equal close, volume 0"))
    adj = attrs.get("adjustment")
    if adj is None or adj == "unknown":
        out.append(Finding("ADJUSTMENT_UNKNOWN", WARNING, sym, None, None,
                           "adjustment state is unknown (split/dividend adjusted or raw?); "
                           "a split will show as a PRICE_JUMP. Prefer adjusted data"))
    return sorted(out, key=lambda f: (_RANK[f.severity], -1 if f.row is None else f.row, f.code))


def refuse_bad_timeline(frames: Mapping[str, pd.DataFrame], interval: str) -> None:
    """Raise :class:`~research_lib.errors.DataError` when a frame's bars are not bars of
    ``interval`` or are stamped before 1971 (:func:`check_spacing`): a session or a
    training run never steps through them."""
    from ..errors import DataError

    bad = [f for s, df in frames.items()
           for f in check_spacing(df, s, SanityConfig(interval=interval))]
    if bad:
        raise DataError("; ".join(f"{f.symbol}: {f.code}: {f.message}" for f in bad)
                        + "; refusing to use these bars")


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
