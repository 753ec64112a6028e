"""The fast replay engine (``SessionSpec(fast=True)``, ``research-lib paper --fast``) against
the step-by-step loop: for any replay (same data, config, model and seed) the two engines
write the same ledger, table by table and row by row (:func:`deterministic_dump`).

Each test runs the same replay twice, step engine into ``tmp_path/step`` and fast engine
into ``tmp_path/fast``, and compares the dumps; on a difference it names the first
differing table, row and columns. Every scenario also checks, on the step run, that what
it is meant to exercise really happened (an order, a halt, a bad bar ...), so no
comparison is between two empty ledgers. events.jsonl is not compared: in fast mode it
only carries the decisions of the steps that went through the step code (documented).
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.flags import KillSwitch
from research_lib.ledger import COLUMNS, Ledger
from research_lib.ledger_read import WALL_CLOCK_COLUMNS, deterministic_dump
from research_lib.session import SessionResult, SessionSpec, run_session
from tests.kit.paper import (
    NO_COSTS,
    FakeRouter,
    FlipEnv,
    FrameSource,
    ScriptedModel,
    frame,
    ledger_rows,
    make_session,
    quiet_switch,
    random_walk,
    write_config,
)

ROOT = Path(__file__).resolve().parents[1]
HEAVY_COSTS = {"slippage_bps": 10.0, "commission_bps": 5.0, "commission_per_share": 0.01}
# summary keys that may differ between the engines: which engine, where, how fast
_SUMMARY_FREE = {"engine", "ledger", "e2d_p50_ms", "e2d_p99_ms", "e2d_max_ms"}


# ------------------------------------------------------------------ comparing ledgers
def _columns(table: str) -> list[str]:
    if table not in COLUMNS:
        return []
    return [c for c in COLUMNS[table] if c not in WALL_CLOCK_COLUMNS.get(table, ())]


def first_difference(want: Mapping[str, list], got: Mapping[str, list]) -> str | None:
    """``None`` when the dumps are equal, else the first differing table and row."""
    for table in sorted(set(want) | set(got)):
        a, b = want.get(table), got.get(table)
        if a == b:
            continue
        if a is None or b is None:
            return f"table {table!r} only in the {'fast' if a is None else 'step'} dump"
        k = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
        x = a[k] if k < len(a) else "<no row>"
        y = b[k] if k < len(b) else "<no row>"
        cols = _columns(table)
        where = ""
        if cols and isinstance(x, tuple) and isinstance(y, tuple):
            where = " columns " + ", ".join(
                f"{c}: {u!r} != {v!r}" for c, u, v in zip(cols, x, y, strict=False) if u != v)
        return (f"table {table!r}: step run {len(a)} rows, fast run {len(b)} rows; first "
                f"difference at row {k}{where}\n  step: {x}\n  fast: {y}")
    return None


def assert_same_ledger(want: Path, got: Path, what: str = "") -> dict[str, list]:
    a, b = deterministic_dump(want), deterministic_dump(got)
    diff = first_difference(a, b)
    if diff is not None:
        pytest.fail(f"{what}: the ledgers differ: {diff}", pytrace=False)
    return a


def meta_engine(path: Path) -> Any:
    with Ledger.open(path, readonly=True) as led:
        return led.meta().get("engine")


# ------------------------------------------------------------------------- running
def run(base: Path, fast: bool, **kw: Any) -> SessionResult:
    kw.setdefault("run_id", "eq")
    kw.setdefault("kill_switch", quiet_switch(base))
    return make_session(base, fast=fast, **kw).run()


def equivalent(tmp_path: Path, fresh: Callable[[], dict[str, Any]] = dict,
               what: str = "", **kw: Any) -> tuple[SessionResult, SessionResult]:
    """Run the replay with the step engine, then the fast engine (``fresh()`` gives the
    per-run objects: models, kill switches), and require the same ledger and summary."""
    assert "config_dir" in kw, "pass config_dir: both runs must read the same config"
    step = run(tmp_path / "step", False, **kw, **fresh())
    fast = run(tmp_path / "fast", True, **kw, **fresh())
    assert step.exit_code == 0, step.summary
    assert fast.exit_code == 0, fast.summary
    dump = assert_same_ledger(step.ledger_path, fast.ledger_path, what)
    assert dump["steps"], "the replay committed no step"
    assert "engine" not in dict(dump["meta"])  # left out of the dump
    assert meta_engine(step.ledger_path) == "step"
    assert meta_engine(fast.ledger_path) == "fast"
    assert step.summary["engine"] == "step" and fast.summary["engine"] == "fast"
    s = {k: v for k, v in step.summary.items() if k not in _SUMMARY_FREE}
    f = {k: v for k, v in fast.summary.items() if k not in _SUMMARY_FREE}
    assert s == f, {k: (s.get(k), f.get(k)) for k in s.keys() | f.keys() if s.get(k) != f.get(k)}
    return step, fast


def resumed_matches(tmp_path: Path, want: SessionResult, stop: int, engines: tuple[str, str],
                    fresh: Callable[[], dict[str, Any]] = dict, **kw: Any) -> None:
    """Stop the replay after ``stop`` steps in ``engines[0]``, resume it to the end in
    ``engines[1]``: the ledger of ``want`` (one uninterrupted step run)."""
    base = tmp_path / f"resume-{stop}-{'-'.join(engines)}"
    first = run(base, engines[0] == "fast", max_steps=stop, **kw, **fresh())
    assert first.summary["steps"] == stop
    again = {k: v for k, v in kw.items() if k in ("config_dir", "kill_switch")
             or (k == "source" and not isinstance(v, str))}
    rest = run(base, engines[1] == "fast", resume="eq", **again, **fresh())
    assert rest.summary["stopped"] == "end_of_data"
    assert_same_ledger(want.ledger_path, rest.ledger_path,
                       f"stopped at {stop} in {engines[0]}, resumed in {engines[1]}")


def count(res: SessionResult, sql: str, *params: Any) -> int:
    return ledger_rows(res.ledger_path, sql, *params)[0][0]


def _u(*key: Any) -> float:
    """A uniform number in [0, 1) from a seeded hash of ``key`` (stable across processes)."""
    h = hashlib.blake2b(":".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def blocks(seed: int, period: int = 7) -> Callable[[str, int, float], float]:
    """p(up) constant over blocks of ``period`` bars per symbol: quiet stretches (holds)
    between signal changes."""
    return lambda s, n, c: _u(seed, s, n // period)


def sparse(seed: int) -> Callable[[str, int, float], float | None]:
    """Mostly a hold (0.5, between the thresholds), now and then long, flat or short, no
    probability or NaN: random orders between quiet steps."""
    def prob(s: str, n: int, c: float) -> float | None:
        u = _u(seed, s, n)
        if u < 0.12:
            return 0.9
        if u < 0.24:
            return 0.1
        if u < 0.27:
            return None
        if u < 0.29:
            return float("nan")
        return 0.5
    return prob


def scripted(symbols: list[str], prob: Callable[..., Any]) -> Callable[[], dict[str, Any]]:
    return lambda: {"router": ScriptedModel(symbols, prob=prob)}


# ------------------------------------------------- 1. baselines on the shipped sample
@pytest.mark.parametrize("costs", ["default", "no_costs", "heavy_costs"])
@pytest.mark.parametrize("model", ["baseline:sma_cross", "baseline:buy_and_hold"])
def test_baseline_on_the_sample_equity_and_crypto(tmp_path, model, costs):
    session = {"default": {}, "no_costs": NO_COSTS, "heavy_costs": HEAVY_COSTS}[costs]
    cfg = write_config(tmp_path / "config", session=session)
    step, _ = equivalent(tmp_path, symbols=["^GSPC", "BTC-USD"], source="sample",
                         start="2015-01-01", end="2017-12-31", model=model, config_dir=cfg,
                         what=f"{model} {costs}")
    assert step.summary["fills"] > 0 and step.summary["steps"] > 1000


# -------------------------------------------------------------------- 2. the router
@pytest.mark.parametrize("flag, model", [("0", None), ("1", None), ("shadow", None),
                                         ("0", "equities_v1")])
def test_onnx_router_on_the_sample_with_mixed_calendars(tmp_path, monkeypatch, flag, model):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", flag)
    step, _ = equivalent(tmp_path, symbols=["^GSPC", "BTC-USD", "ETH-USD"], source="sample",
                         start="2018-01-01", end="2018-12-31", model=model,
                         config_dir=ROOT / "config", what=f"router flag={flag} model={model}")
    assert step.summary["fills"] > 0
    models = {r[0] for r in ledger_rows(step.ledger_path, "SELECT DISTINCT model FROM decisions")}
    if model is not None:
        assert model in models
    elif flag == "1":
        assert {"crypto_v1", "equities_v1"} <= models
    else:
        assert "universal_v1" in models
    if flag == "shadow":
        assert count(step, "SELECT COUNT(*) FROM decisions WHERE shadow_model IS NOT NULL")


def test_fake_router_on_random_walks_equity_weekdays_and_crypto_daily(tmp_path):
    src = FrameSource({
        "AAA": random_walk(260, seed=11, start="2020-09-01", freq="B", symbol="AAA"),
        "BBB": random_walk(260, seed=12, start="2020-09-01", freq="B", price=40.0,
                           symbol="BBB"),
        "XYZ-USD": random_walk(360, seed=13, start="2020-09-01", price=5000.0, vol=0.04,
                               symbol="XYZ-USD"),
    })
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 55})
    step, _ = equivalent(tmp_path, lambda: {"router": FakeRouter()},
                         symbols=["AAA", "BBB", "XYZ-USD"], source=src, start="2020-12-01",
                         end="2021-08-20", config_dir=cfg, what="fake router")
    assert step.summary["fills"] > 10


@pytest.mark.parametrize("model", ["baseline:sma_cross", "baseline:buy_and_hold"])
def test_baselines_on_five_symbols_with_late_starts_and_flat_stretches(tmp_path, model):
    # five symbols (the 2-D path of the SMA signals), two of them starting inside the window
    # (the SMA warms up there), flat stretches at a price with no exact binary form (SMA10
    # against SMA20 of equal closes: a tie decided by rounding)
    frames = {}
    for k, s in enumerate(["AAA", "BBB", "CCC", "DDD-USD", "EEE-USD"]):
        df = random_walk(150, seed=50 + k, start=f"2021-01-{4 + 9 * (k % 3):02d}",
                         price=101.37 + k, vol=0.015, symbol=s)
        c = df.columns.get_loc
        df.iloc[30:75, [c("open"), c("high"), c("low"), c("close")]] = 101.37 + k
        frames[s] = df
    frames["CCC"] = frames["CCC"].iloc[40:]
    frames["EEE-USD"] = frames["EEE-USD"].iloc[60:]
    for f in frames.values():
        f.attrs = {"symbol": "", "label": "synthetic", "proxy_note": "synthetic"}
    src = FrameSource(frames)
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 8})
    step, _ = equivalent(tmp_path, symbols=list(frames), source=src, start="2021-01-25",
                         model=model, config_dir=cfg, what=f"{model} synthetic")
    assert step.summary["fills"] > 0
    assert count(step, "SELECT COUNT(*) FROM decisions "
                       "WHERE fallback_reason='BASELINE_WARMUP'") > 0 or model.endswith("hold")


@pytest.mark.parametrize("model", ["baseline:sma_cross", "baseline:buy_and_hold"])
def test_baselines_with_bad_bars(tmp_path, model):
    aaa = _with_bad_bars(random_walk(160, seed=61, symbol="AAA"), 60, 72, 95, 110)
    src = FrameSource({"AAA": aaa,
                       "BBB-USD": random_walk(160, seed=62, price=80.0, symbol="BBB-USD")})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 25})
    step, _ = equivalent(tmp_path, symbols=["AAA", "BBB-USD"], source=src, start="2021-02-05",
                         model=model, config_dir=cfg, what=f"{model} bad bars")
    assert step.summary["bad_bars"] >= 3 and step.summary["fills"] > 0


def test_a_long_replay_over_several_ledger_batches(tmp_path):
    # ~4,900 steps of one index, mostly holds inside a wide rebalance band: quiet blocks
    # of thousands of steps, several batch commits, a few trims between them
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 0.12},
                       session={"rebalance_band": 0.5}, signal={"target_weight": 0.10})
    kw = dict(symbols=["^GSPC"], source="sample", start="1999-06-01", end="2018-12-31",
              model="baseline:buy_and_hold", config_dir=cfg)
    step, fast = equivalent(tmp_path, what="long replay", **kw)
    assert step.summary["steps"] > 4500 and step.summary["orders"] >= 3
    assert count(step, "SELECT COUNT(*) FROM orders WHERE step > 2100") > 0
    # stopped inside a quiet block past the first batch, resumed in the fast engine
    part = run(tmp_path / "parts", True, max_steps=2100, **kw)
    assert part.summary["steps"] == 2100
    rest = run(tmp_path / "parts", True, resume="eq", config_dir=cfg)
    assert rest.summary["steps_this_session"] == step.summary["steps"] - 2100
    assert_same_ledger(step.ledger_path, rest.ledger_path, "long replay 2100 + rest")


# ------------------------------------------------------- 3. limits, events, bad bars
def _walks(n: int = 160, vol: float = 0.02, freq: str = "D", start: str = "2021-01-01",
           **names: float) -> FrameSource:
    return FrameSource({s: random_walk(n, seed=k + 1, start=start, freq=freq, price=p,
                                       vol=vol, symbol=s)
                        for k, (s, p) in enumerate(names.items())})


def test_daily_loss_stop_latches_reducing_then_clears_the_next_day(tmp_path):
    syms = ["BTC-USD", "ETH-USD"]
    src = _walks(24 * 14, vol=0.012, freq="h", **{"BTC-USD": 9000.0, "ETH-USD": 300.0})
    cfg = write_config(tmp_path / "config",
                       risk={"daily_loss_stop_pct": 0.004, "max_position_pct": 0.6},
                       session={"warmup_bars": 12}, signal={"target_weight": 0.45})
    kw = dict(symbols=syms, source=src, start="2021-01-02", interval="1h", config_dir=cfg)
    fresh = scripted(syms, blocks(1, period=5))
    step, _ = equivalent(tmp_path, fresh, what="daily loss stop", **kw)
    assert count(step, "SELECT COUNT(*) FROM equity WHERE state='REDUCING'") > 0
    assert count(step, "SELECT COUNT(*) FROM state_changes WHERE scope='account' "
                       "AND to_state='ACTIVE' AND reason LIKE 'NEW_SESSION_DAY%'") > 0
    assert step.summary["fills"] > 0
    # stopped while REDUCING (the same day resumes REDUCING), resumed in either engine
    first = count(step, "SELECT MIN(step) FROM equity WHERE state='REDUCING'")
    for engines in (("fast", "fast"), ("step", "fast"), ("fast", "step")):
        resumed_matches(tmp_path, step, first + 2, engines, fresh, **kw)


def test_drawdown_halts_flattens_and_stays_halted(tmp_path):
    syms = ["AAA", "BBB"]
    src = _walks(200, vol=0.03, AAA=100.0, BBB=50.0)
    cfg = write_config(tmp_path / "config",
                       risk={"max_drawdown_pct": 0.04, "daily_loss_stop_pct": 0.5,
                             "max_position_pct": 0.6},
                       session={"warmup_bars": 10}, signal={"target_weight": 0.5})
    kw = dict(symbols=syms, source=src, start="2021-01-20", config_dir=cfg)
    fresh = scripted(syms, blocks(2))
    step, _ = equivalent(tmp_path, fresh, what="drawdown halt", **kw)
    assert step.summary["state"] == "HALTED"
    assert count(step, "SELECT COUNT(*) FROM orders WHERE kind='flatten'") > 0
    assert count(step, "SELECT COUNT(*) FROM decisions WHERE verdict='HALTED'") > 0
    # stopped before the halt and while halted, resumed in either engine
    halt = count(step, "SELECT MIN(step) FROM equity WHERE state='HALTED'")
    assert halt > 3
    for stop, engines in ((halt - 3, ("fast", "fast")), (halt + 1, ("fast", "step")),
                          (halt + 2, ("step", "fast"))):
        resumed_matches(tmp_path, step, stop, engines, fresh, **kw)


def test_price_band_breaker_halts_symbols_and_denies_orders(tmp_path):
    syms = ["AAA", "BBB-USD"]
    src = _walks(150, vol=0.02, AAA=100.0, **{"BBB-USD": 20.0})
    cfg = write_config(tmp_path / "config", risk={"price_band_pct": 0.02},
                       session={"warmup_bars": 10})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(3, period=3)), symbols=syms,
                         source=src, start="2021-01-20", config_dir=cfg, what="price band")
    assert count(step, "SELECT COUNT(*) FROM state_changes WHERE scope IN ('AAA', 'BBB-USD') "
                       "AND to_state='HALTED'") > 0
    assert count(step, "SELECT COUNT(*) FROM risk_events WHERE code='PRICE_BAND_BREACHED'") > 0
    assert step.summary["fills"] > 0


def test_target_clipped_to_the_position_limit_and_holds_within_the_rebalance_band(tmp_path):
    syms = ["AAA", "BBB", "CCC-USD"]
    src = _walks(180, vol=0.015, AAA=100.0, BBB=25.0, **{"CCC-USD": 600.0})
    cfg = write_config(tmp_path / "config", risk={"max_position_pct": 0.08},
                       session={"warmup_bars": 10, "rebalance_band": 0.03},
                       signal={"target_weight": 0.10})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(4, period=11)), symbols=syms,
                         source=src, start="2021-01-20", config_dir=cfg,
                         what="clip and rebalance band")
    assert count(step, "SELECT COUNT(*) FROM risk_events WHERE code='TARGET_CLIPPED'") > 0
    assert count(step, "SELECT COUNT(*) FROM decisions "
                       "WHERE reason LIKE 'WITHIN_REBALANCE_BAND%'") > 0


def test_position_drift_above_the_limit_is_trimmed_also_while_its_market_is_closed(tmp_path):
    # long at the limit, then holds: AAA (weekdays) rises, BBB-USD (every day) falls, so
    # AAA is trimmed at steps no signal changes, on weekends too (no new AAA bar)
    syms = ["AAA", "BBB-USD"]
    src = FrameSource({
        "AAA": frame(list(np.geomspace(100, 160, 110)), start="2021-01-04", freq="B",
                     symbol="AAA"),
        "BBB-USD": frame(list(np.geomspace(50, 20, 150)), symbol="BBB-USD")})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 10},
                       risk={"daily_loss_stop_pct": 0.5, "max_drawdown_pct": 0.9})
    step, _ = equivalent(tmp_path, scripted(syms, lambda s, n, c: 0.9 if n <= 12 else 0.5),
                         symbols=syms, source=src, start="2021-01-18",
                         end=src.frames["BBB-USD"].index[-1].isoformat(), config_dir=cfg,
                         what="trims")
    trims = ledger_rows(step.ledger_path, "SELECT ts FROM orders WHERE kind='trim' "
                                          "AND symbol='AAA'")
    assert len(trims) > 3
    assert any(pd.Timestamp(t).day_of_week >= 5 for (t,) in trims)


def _with_bad_bars(df: pd.DataFrame, nan_close: int, negative: int, spike: int,
                   nan_open: int) -> pd.DataFrame:
    out = df.copy()
    out.attrs = dict(df.attrs)
    c = out.columns.get_loc
    out.iloc[nan_close, c("close")] = np.nan
    out.iloc[negative, [c("open"), c("low"), c("close")]] = -abs(out.iloc[negative, c("close")])
    out.iloc[spike, c("close")] *= 10.0
    out.iloc[spike, c("high")] = out.iloc[spike, c("close")] * 1.001
    out.iloc[nan_open, c("open")] = np.nan
    return out


def test_bad_bars_mid_window_nan_negative_spike_are_refused_the_same_way(tmp_path):
    syms = ["AAA", "BBB-USD"]
    aaa = _with_bad_bars(random_walk(140, seed=21, symbol="AAA"), 50, 63, 77, 90)
    bbb = _with_bad_bars(random_walk(140, seed=22, price=30.0, symbol="BBB-USD"),
                         55, 70, 71, 91)
    src = FrameSource({"AAA": aaa, "BBB-USD": bbb})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 10})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(5, period=3)), symbols=syms,
                         source=src, start="2021-01-20", config_dir=cfg, what="bad bars")
    assert count(step, "SELECT COUNT(*) FROM risk_events WHERE code='BAD_BAR' "
                       "AND step > 0") >= 6
    assert count(step, "SELECT COUNT(*) FROM decisions WHERE verdict='BAD_BAR'") >= 6
    assert step.summary["fills"] > 0


def test_bad_bars_with_the_onnx_router(tmp_path):
    aaa = _with_bad_bars(random_walk(200, seed=23, symbol="AAA"), 120, 131, 150, 160)
    src = FrameSource({"AAA": aaa, "BTC-USD": random_walk(200, seed=24, price=9000.0,
                                                          vol=0.04, symbol="BTC-USD")})
    step, _ = equivalent(tmp_path, symbols=["AAA", "BTC-USD"], source=src, start="2021-03-15",
                         config_dir=ROOT / "config", what="router + bad bars")
    assert count(step, "SELECT COUNT(*) FROM decisions WHERE verdict='BAD_BAR'") >= 4


def test_a_symbol_whose_frame_ends_early(tmp_path):
    syms = ["AAA", "BBB-USD", "CCC"]
    src = FrameSource({"AAA": random_walk(160, seed=31, symbol="AAA"),
                       "BBB-USD": random_walk(110, seed=32, price=70.0, symbol="BBB-USD"),
                       "CCC": random_walk(160, seed=33, price=15.0, symbol="CCC")})
    end = src.frames["AAA"].index[-1].isoformat()
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 10})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(6, period=4)), symbols=syms,
                         source=src, start="2021-01-20", end=end, config_dir=cfg,
                         what="frame ends early")
    assert count(step, "SELECT COUNT(*) FROM risk_events WHERE code='STALE_LAST_BAR'") == 1
    last_bbb = ledger_rows(step.ledger_path,
                           "SELECT MAX(step) FROM decisions WHERE symbol='BBB-USD' "
                           "AND probability IS NOT NULL")[0][0]
    assert last_bbb < step.summary["steps"] - 40


@pytest.mark.parametrize("lot", [0.0001, 0.01])
def test_crypto_lots(tmp_path, lot):
    syms = ["BTC-USD", "ETH-USD", "AAA"]
    src = _walks(150, vol=0.03, **{"BTC-USD": 7777.77, "ETH-USD": 333.3}, AAA=333.3)
    cfg = write_config(tmp_path / "config",
                       session={"warmup_bars": 10, "crypto_lot_size": lot})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(7, period=6)), symbols=syms,
                         source=src, start="2021-01-20", config_dir=cfg, what=f"lot {lot}")
    qtys = [r[0] for r in ledger_rows(step.ledger_path,
                                      "SELECT qty FROM fills WHERE symbol='BTC-USD'")]
    assert qtys and any(q != math.floor(q) for q in qtys)


def test_allow_short_with_probabilities_below_the_short_threshold(tmp_path):
    syms = ["AAA", "BBB-USD"]
    src = _walks(160, vol=0.02, AAA=80.0, **{"BBB-USD": 1200.0})
    cfg = write_config(tmp_path / "config", risk={"allow_short": True},
                       session={"warmup_bars": 10})
    step, _ = equivalent(tmp_path, scripted(syms, blocks(8, period=9)), symbols=syms,
                         source=src, start="2021-01-20", config_dir=cfg, what="short")
    assert count(step, "SELECT COUNT(*) FROM positions WHERE qty < 0") > 0
    assert count(step, "SELECT COUNT(*) FROM fills WHERE qty > 0") > 0  # covers and longs


# ------------------------------------------------------------------------ 4. dry run
def test_dry_run_on_the_sample(tmp_path):
    cfg = write_config(tmp_path / "config")
    step, _ = equivalent(tmp_path, symbols=["^GSPC", "BTC-USD"], source="sample",
                         start="2016-01-01", end="2017-12-31", model="baseline:sma_cross",
                         dry_run=True, config_dir=cfg, what="dry run")
    assert step.summary["orders"] > 0 and step.summary["fills"] == 0


def test_dry_run_through_run_session_with_a_scripted_model(tmp_path):
    syms = ["AAA", "BBB-USD"]
    src = _walks(120, AAA=100.0, **{"BBB-USD": 40.0})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 10})
    res = {}
    for name, fast in (("step", False), ("fast", True)):
        spec = SessionSpec(symbols=syms, source=src, start="2021-01-20", dry_run=True,
                           router=ScriptedModel(syms, prob=sparse(9)), config_dir=cfg,
                           run_dir=tmp_path / name, run_id="dry",
                           kill_switch=quiet_switch(tmp_path / name), log_file=False)
        res[name] = run_session(spec, fast=fast)
    assert res["fast"].summary["engine"] == "fast"
    assert_same_ledger(res["step"].ledger_path, res["fast"].ledger_path, "run_session dry run")
    assert res["step"].summary["orders"] > 0


# ------------------------------------------------------------------- 5. kill switch
def test_kill_file_present_at_start(tmp_path):
    kill = tmp_path / "kill.flag"
    kill.touch()
    cfg = write_config(tmp_path / "config")
    step, _ = equivalent(tmp_path, lambda: {"kill_switch": KillSwitch(kill, env={})},
                         symbols=["^GSPC", "BTC-USD"], source="sample", start="2017-01-01",
                         end="2017-12-31", model="baseline:sma_cross", config_dir=cfg,
                         what="kill file at start")
    assert step.summary["fills"] == 0 and step.summary["denied"] > 0
    assert count(step, "SELECT COUNT(*) FROM state_changes WHERE scope='kill_switch'") == 1


class WindowEnv(dict):
    """``FLAG_TRADING_HALTED`` on for reads ``on`` .. ``off - 1`` (read 1 is at start)."""

    def __init__(self, on: int, off: int) -> None:
        super().__init__()
        self.on, self.off, self.reads = on, off, 0

    def get(self, key: str, default: Any = None) -> Any:
        if key == "FLAG_TRADING_HALTED":
            self.reads += 1
            return "1" if self.on <= self.reads < self.off else "0"
        return super().get(key, default)


@pytest.mark.parametrize("env_kind", ["flip_on", "window"])
def test_trading_halted_flag_turning_on_mid_run(tmp_path, env_kind):
    envs: list[dict] = []

    def fresh() -> dict[str, Any]:
        env = FlipEnv(after=12) if env_kind == "flip_on" else WindowEnv(8, 20)
        envs.append(env)
        return {"kill_switch": quiet_switch(tmp_path, env)}

    cfg = write_config(tmp_path / "config")
    step, _ = equivalent(tmp_path, fresh, symbols=["^GSPC", "BTC-USD"], source="sample",
                         start="2016-01-01", end="2017-12-31", model="baseline:sma_cross",
                         config_dir=cfg, what=f"FLAG_TRADING_HALTED {env_kind}")
    assert step.summary["fills"] > 0
    assert step.summary["denials_by_reason"].get("KILL_SWITCH", 0) > 0
    assert envs[0].reads == envs[1].reads  # asked at the same orders, once at start


# --------------------------------------------------------- 6. max_steps and resume
SAMPLE_2018 = dict(symbols=["SPY", "BTC-USD"], source="sample", start="2018-01-01",
                   end="2018-12-31")


def _router() -> dict[str, Any]:
    return {"router": FakeRouter()}


@pytest.mark.parametrize("k", [1, 2, 50, 217, 364, 365, 366, 10_000])
def test_max_steps_is_honoured_exactly(tmp_path, k):
    cfg = write_config(tmp_path / "config")
    step, fast = equivalent(tmp_path, _router, max_steps=k, config_dir=cfg,
                            what=f"max_steps={k}", **SAMPLE_2018)
    n = min(k, 365)  # 2018 has 365 steps (BTC-USD trades every day)
    assert fast.summary["steps"] == n and fast.summary["steps_this_session"] == n
    assert fast.summary["stopped"] == ("max_steps" if k <= 365 else "end_of_data")
    assert count(fast, "SELECT COUNT(*) FROM steps") == n
    assert count(fast, "SELECT MAX(step) FROM steps") == n - 1


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory) -> tuple[Path, Path]:
    """The reference: one uninterrupted step-engine run over SAMPLE_2018 (FakeRouter)."""
    base = tmp_path_factory.mktemp("uninterrupted")
    cfg = write_config(base / "config")
    res = run(base, False, config_dir=cfg, run_id="same", **_router(), **SAMPLE_2018)
    assert res.summary["stopped"] == "end_of_data" and res.summary["fills"] > 0
    return cfg, res.ledger_path


@pytest.mark.parametrize("engines", [("fast", "fast", "fast"), ("fast", "step", "step"),
                                     ("step", "fast", "fast"), ("fast", "step", "fast"),
                                     ("step", "fast", "step")], ids="-".join)
def test_stop_and_resume_in_either_engine_gives_the_uninterrupted_ledger(
        tmp_path, one_step_run, engines):
    cfg, want = one_step_run
    kw = dict(config_dir=cfg, run_id="same", kill_switch=quiet_switch(tmp_path))
    first = run(tmp_path, engines[0] == "fast", max_steps=100, **kw, **_router(),
                **SAMPLE_2018)
    assert first.summary["steps"] == 100 and first.summary["stopped"] == "max_steps"
    second = run(tmp_path, engines[1] == "fast", max_steps=77, resume="same", **kw,
                 **_router())
    assert second.summary["steps"] == 177 and second.summary["steps_this_session"] == 77
    rest = run(tmp_path, engines[2] == "fast", resume="same", **kw, **_router())
    assert rest.summary["stopped"] == "end_of_data"
    assert rest.summary["engine"] == engines[2]
    assert_same_ledger(want, rest.ledger_path, f"resume {'->'.join(engines)}")
    again = run(tmp_path, engines[0] == "fast", resume="same", **kw, **_router())
    assert again.summary["steps_this_session"] == 0
    assert again.summary["stopped"] == "end_of_data"
    assert_same_ledger(want, again.ledger_path, f"resume after the end {engines[0]}")


@pytest.mark.parametrize("engines", [("fast", "fast"), ("fast", "step"), ("step", "fast")],
                         ids="-".join)
def test_resume_of_a_scripted_run_with_halts_and_bad_bars(tmp_path, engines):
    syms = ["AAA", "BBB-USD"]
    aaa = _with_bad_bars(random_walk(200, seed=41, symbol="AAA"), 60, 75, 90, 100)
    src = FrameSource({"AAA": aaa, "BBB-USD": random_walk(200, seed=42, price=30.0,
                                                          symbol="BBB-USD")})
    cfg = write_config(tmp_path / "config", risk={"price_band_pct": 0.03},
                       session={"warmup_bars": 10})
    kw = dict(config_dir=cfg, run_id="r", kill_switch=quiet_switch(tmp_path))
    new = dict(symbols=syms, start="2021-01-20")
    want = run(tmp_path / "one", False, source=src, router=ScriptedModel(syms, sparse(43)),
               **kw, **new)
    first = run(tmp_path / "two", engines[0] == "fast", max_steps=61, source=src,
                router=ScriptedModel(syms, sparse(43)), **kw, **new)
    assert first.summary["steps"] == 61
    rest = run(tmp_path / "two", engines[1] == "fast", resume="r", source=src,
               router=ScriptedModel(syms, sparse(43)), **kw)
    assert rest.summary["stopped"] == "end_of_data"
    assert_same_ledger(want.ledger_path, rest.ledger_path, f"resume {'->'.join(engines)}")
    assert want.summary["fills"] > 0 and want.summary["bad_bars"] > 0


# ---------------------------------------------------------- 7. live refusal and CLI
def test_fast_in_live_mode_is_refused_with_a_config_error(tmp_path):
    bars = frame(list(np.linspace(100, 130, 80)), start="2021-01-04 00:00", freq="h",
                 symbol="AAA")
    now = {"t": bars.index[59].timestamp()}

    def sleep(dt: float) -> None:
        now["t"] += dt

    cfg = write_config(tmp_path / "config", session={"warmup_bars": 55})
    with pytest.raises(ConfigError, match="--fast"):
        make_session(tmp_path, symbols=["AAA"], source=FrameSource({"AAA": bars}),
                     mode="live", interval="1h", poll_seconds=3600, clock=lambda: now["t"],
                     sleep=sleep, max_steps=2, model="baseline:buy_and_hold", fast=True,
                     config_dir=cfg).run()


def test_cli_paper_fast_in_live_mode_exits_2_naming_fast(tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    code = main(["paper", "--fast", "--symbols", "SPY", "--source", "yfinance",
                 "--run-dir", str(tmp_path / "runs"), "--config-dir", str(cfg),
                 "--duration", "1s"])
    assert code == 2
    assert "--fast" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.fixture
def keep_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_cli_paper_fast_prints_the_summary_and_writes_the_step_ledger(
        tmp_path, capsys, keep_signal_handlers):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    args = ["paper", "--symbols", "SPY,BTC-USD", "--model", "baseline:sma_cross",
            "--start", "2017-01-01", "--end", "2017-12-31", "--config-dir", str(cfg)]
    out = {}
    for name, extra in (("step", []), ("fast", ["--fast"])):
        code = main([*args, *extra, "--run-dir", str(tmp_path / name), "--run-id", "cli",
                     "--json"])
        text = capsys.readouterr().out
        assert code == 0, text
        out[name] = json.loads(text)
    assert out["fast"]["engine"] == "fast" and out["step"]["engine"] == "step"
    assert out["fast"]["stopped"] == "end_of_data" and out["fast"]["fills"] > 0
    assert_same_ledger(Path(out["step"]["ledger"]), Path(out["fast"]["ledger"]), "CLI --fast")

    code = main([*args, "--fast", "--run-dir", str(tmp_path / "text"), "--run-id", "cli"])
    text = capsys.readouterr().out
    assert code == 0 and "stopped: end_of_data" in text and "run        cli" in text


# ----------------------------------------------------------------- 8. property-style
@pytest.mark.parametrize("seed", range(12))
def test_random_markets_signals_and_limits_give_the_same_ledger(tmp_path, seed):
    """Seeded random markets: 2-4 symbols (weekday equities and daily crypto, or hourly
    crypto for every third seed: several steps per session day), different first and last
    bars (the clock has holes; a symbol may start after the window opens or end before it
    closes), an occasional NaN close; random limits and costs; signals from a seeded hash."""
    rng = np.random.default_rng(1000 + seed)
    hourly = seed % 3 == 2
    unit = pd.Timedelta(hours=1) if hourly else pd.Timedelta(days=1)
    n_sym = 2 + seed % 3
    frames, syms = {}, []
    base = pd.Timestamp("2021-01-04", tz="UTC")
    last = []
    for k in range(n_sym):
        crypto = hourly or (bool(rng.integers(0, 2)) if k else False)
        s = f"C{k}-USD" if crypto else f"S{k}"
        first = base + unit * int(rng.integers(0, 60))
        n = int(rng.integers(120, 220)) * (2 if hourly else 1)
        df = random_walk(n, seed=int(rng.integers(0, 2**31)), start=first.isoformat(),
                         freq="h" if hourly else ("D" if crypto else "B"),
                         price=float(rng.uniform(5, 3000)),
                         vol=float(rng.uniform(0.005, 0.04)) / (3 if hourly else 1),
                         symbol=s)
        if rng.random() < 0.5:  # a bad bar somewhere
            j = int(rng.integers(30, n - 5))
            df.iloc[j, df.columns.get_loc("close")] = np.nan
        frames[s] = df
        syms.append(s)
        last.append(df.index[-1])
    src = FrameSource(frames)
    risk = {"max_position_pct": float(rng.uniform(0.05, 0.5)),
            "daily_loss_stop_pct": float(rng.uniform(0.005, 0.05)),
            "max_drawdown_pct": float(rng.uniform(0.08, 0.45)),
            "price_band_pct": float(rng.uniform(0.02, 0.3)),
            "allow_short": bool(rng.integers(0, 2))}
    session = {"warmup_bars": int(rng.integers(5, 30)),
               "rebalance_band": float(rng.uniform(0.0, 0.05)),
               "slippage_bps": float(rng.uniform(0, 20)),
               "commission_bps": float(rng.uniform(0, 10)),
               "commission_per_share": float(rng.uniform(0, 0.02)),
               "crypto_lot_size": float(rng.choice([0.0001, 0.001, 0.1]))}
    signal_ = {"target_weight": float(rng.uniform(0.05, 0.4))}
    cfg = write_config(tmp_path / "config", risk=risk, session=session, signal=signal_)
    prob = sparse(seed) if seed % 2 else blocks(seed, period=int(rng.integers(2, 12)))
    start = (base + unit * 40).isoformat()
    end = max(last).isoformat()
    step, _ = equivalent(tmp_path, scripted(syms, prob), symbols=syms, source=src,
                         start=start, end=end, interval="1h" if hourly else "1d",
                         config_dir=cfg,
                         what=f"seed={seed} symbols={syms} risk={risk} session={session}")
    assert step.summary["orders"] > 0
