"""Shared pieces of the benchmarks: data sets, config dirs, a timed session, statistics.

Data: the offline sample holds 7 real daily series (^GSPC, ^IXIC, GOOG, ^VIX, BTC-USD,
ETH-USD, LTC-USD; 1999-2020). Runs over 10 or 100 symbols use **replicated real series**:
the same real bars written to a ``csv:`` folder under new names (``GSPC_012``,
``BTC_012-USD``), never invented prices. Replica names keep their asset class (crypto
replicas end in ``-USD``), so routing, calendars and the bar gate treat them as the
originals.
"""

from __future__ import annotations

import atexit
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPO_CONFIG = ROOT / "config"

REAL = ("^GSPC", "^IXIC", "GOOG", "^VIX", "BTC-USD", "ETH-USD", "LTC-USD")
EQUITY_OVERLAP = ("^GSPC", "^IXIC", "GOOG")  # all three trade 2004-08-19 .. 2013-03-01 (XNYS)
FULL_START, FULL_END = "1999-01-04", "2020-01-17"  # the whole sample
LATENCY_START, LATENCY_END = "2010-01-04", "2012-12-31"  # every symbol has a bar at every step

# limits relaxed and costs off: sessions that must trade exactly like a plain reference
RELAXED_RISK = {"max_position_pct": 1.0, "max_gross_leverage": 10.0,
                "daily_loss_stop_pct": 0.99, "max_drawdown_pct": 0.99,
                "price_band_pct": 10.0, "cash_buffer_pct": 0.0}
NO_COSTS = {"slippage_bps": 0.0, "commission_bps": 0.0, "commission_per_share": 0.0}


# ------------------------------------------------------------------------------ data
def replica_name(base: str, k: int) -> str:
    """``^GSPC`` copy 3 -> ``GSPC_003``; ``BTC-USD`` copy 3 -> ``BTC_003-USD`` (still crypto)."""
    stem = base.lstrip("^")
    if stem.endswith("-USD"):
        return f"{stem[:-4]}_{k:03d}-USD"
    return f"{stem}_{k:03d}"


def universe(n: int, bases: Sequence[str] = REAL) -> list[tuple[str, str]]:
    """``n`` (name, real series) pairs: the real series first under their own names, then
    replicas cycling through ``bases``."""
    out = []
    for j in range(n):
        base = bases[j % len(bases)]
        k = j // len(bases)
        out.append((base if k == 0 else replica_name(base, k), base))
    return out


def write_replicated_csv(folder: Path, pairs: Sequence[tuple[str, str]]) -> str:
    """One CSV per name in ``folder`` holding its real series' bars; returns ``csv:PATH``."""
    from research_lib.data import load

    folder.mkdir(parents=True, exist_ok=True)
    real = load(sorted({b for _, b in pairs}), source="sample")
    for name, base in pairs:
        df = real[base][["open", "high", "low", "close", "volume"]]
        df.to_csv(folder / f"{name}.csv", index_label="timestamp")
    return f"csv:{folder}"


def frames_for(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """In-memory frames (name -> real series' bars), for an in-memory source."""
    from research_lib.data import load

    real = load(sorted({b for _, b in pairs}), source="sample")
    out = {}
    for name, base in pairs:
        df = real[base].copy()
        # a replica is its own instrument here (sessions refuse two names for one served
        # series: one position cap per underlying)
        df.attrs = {**real[base].attrs, "symbol": name, "served_as": name}
        out[name] = df
    return out


def MemorySource(frames: dict[str, Any]) -> Any:  # noqa: N802 (a class before)
    """A data source over frames already in memory: a backtest timed without file I/O
    (the library's :class:`research_lib.data.frames.FramesSource`, named "memory")."""
    from research_lib.data.frames import FramesSource  # lazy, like the imports above

    return FramesSource(frames, name="memory")


def write_config(folder: Path, risk: dict | None = None, session: dict | None = None,
                 signal: dict | None = None, gate: dict | None = None) -> Path:
    """A copy of the repository's config/ with some keys changed; the kill file lives in
    ``folder`` (so a stray kill.flag in the working directory cannot stop a benchmark)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_CONFIG / "assets.yaml", folder / "assets.yaml")
    r = yaml.safe_load((REPO_CONFIG / "risk.yaml").read_text())
    r["risk"].update(risk or {})
    (folder / "risk.yaml").write_text(yaml.safe_dump(r))
    s = yaml.safe_load((REPO_CONFIG / "session.yaml").read_text())
    s["session"].update({"kill_file": str(folder / "kill.flag"), **(session or {})})
    s["signal"].update(signal or {})
    if gate:
        s.setdefault("gate", {}).update(gate)
    (folder / "session.yaml").write_text(yaml.safe_dump(s))
    return folder


# the other libraries have no bar gate: a comparison of trades relaxes the jump rule as it
# relaxes the limits (a replica of ^VIX is an equity symbol to the gate, and ^VIX's real
# 30-100% days would be held as jumps there, where ^VIX itself gets its own threshold)
NO_JUMP_GATE = {"jump_threshold_xnys": 10.0, "jump_threshold_24_7": 10.0}


_BASE: list[Path] = []


def tempdir(prefix: str) -> Path:
    """A new folder under this process's benchmark scratch folder (removed at exit)."""
    if not _BASE:
        _BASE.append(Path(tempfile.mkdtemp(prefix="research_lib-bench-")))
        atexit.register(shutil.rmtree, _BASE[0], True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=_BASE[0]))


# --------------------------------------------------------------------- timed session
@dataclass
class RunTimes:
    setup_s: float
    loop_s: float
    total_s: float
    steps: int
    symbol_bars: int  # (symbol, bar) pairs decided on in the loop (warm-up bars excluded)
    warmup_bars: int
    e2d_ms: list[float]
    summary: dict[str, Any]
    ledger: Path

    @property
    def throughput(self) -> float:
        return self.symbol_bars / self.loop_s if self.loop_s > 0 else math.nan

    @property
    def throughput_total(self) -> float:
        return self.symbol_bars / self.total_s if self.total_s > 0 else math.nan


def run_timed(on_ledger: Callable[[Path], None] | None = None, **spec_kw: Any) -> RunTimes:
    """Run one session and time its parts: set-up (data, sanity suite, models, ledger),
    the loop (every step: gate, features, predict, plan, risk, commit, decision log) and
    the whole ``run()``. ``on_ledger`` reads the ledger before the run folder is removed."""
    from research_lib.flags import KillSwitch
    from research_lib.session import Session, SessionSpec

    marks: dict[str, float] = {}

    class TimedSession(Session):
        def prepare(self) -> None:
            t = time.perf_counter()
            super().prepare()
            marks["setup"] = time.perf_counter() - t
            marks["loop0"] = time.perf_counter()

        def finish(self, *a: Any) -> dict[str, Any]:
            marks["loop"] = time.perf_counter() - marks["loop0"]
            return super().finish(*a)

    run_dir = Path(spec_kw.pop("run_dir"))
    spec_kw.setdefault("kill_switch", KillSwitch(run_dir / "kill.flag", env={}))
    spec_kw.setdefault("replicas", True)  # replicated real series: each its own instrument
    s = TimedSession(SessionSpec(run_dir=run_dir, **spec_kw))
    t0 = time.perf_counter()
    res = s.run()
    total = time.perf_counter() - t0
    if res.exit_code != 0:
        raise RuntimeError(f"benchmark session failed: {res.summary.get('error')}")
    feed = s.feed
    warm = int(feed.has[: feed.n_warmup].sum())
    out = RunTimes(marks["setup"], marks["loop"], total, int(res.summary["steps"]),
                   int(feed.has.sum()) - warm, warm,
                   [x * 1e3 for x in s.latency.samples], res.summary, res.ledger_path)
    if on_ledger is not None:
        on_ledger(res.ledger_path)
    shutil.rmtree(run_dir, ignore_errors=True)  # ledgers of 100 symbols are large
    return out


# ------------------------------------------------------------------------ statistics
@dataclass
class Figure:
    """One measured quantity over repeated runs."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, v: float) -> None:
        self.values.append(float(v))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else math.nan


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-th percentile by nearest rank (as ``LatencyRecorder``)."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(1, math.ceil(q / 100.0 * len(s))) - 1]


def fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(rows: Iterable[Figure], title: str) -> str:
    rows = list(rows)
    head = ("figure", "unit", "median", "min", "max", "runs")
    body = [(r.name, r.unit, fmt(r.median), fmt(r.lo), fmt(r.hi), str(len(r.values)))
            for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    lines = [title, "-" * len(title)]
    lines.append("  ".join(h.ljust(w) if i < 2 else h.rjust(w)
                           for i, (h, w) in enumerate(zip(head, widths, strict=True))))
    for b, r in zip(body, rows, strict=True):
        line = "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(b, widths, strict=True)))
        lines.append(line + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)


def child_json(module: str, args: list[str]) -> dict[str, Any]:
    """Run ``python -m MODULE ARGS`` in a fresh process (from the checkout) and return the
    JSON object on the last line of its output; its stderr on failure."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", module, *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])

