"""Shared stubs for the paper-trading tests: configs, synthetic sources, stand-in models.

Synthetic prices here are for tests only (labelled synthetic; never shipped as data).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from research_lib.baselines import Prediction
from research_lib.data.frames import FramesSource
from research_lib.flags import KillSwitch
from research_lib.session import Session, SessionSpec
from research_lib.signal_model import ModelBase

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_CONFIG = GOLDEN / "config"

# limits relaxed and costs off: for sessions that must trade exactly as a reference says
RELAXED_RISK = {"max_position_pct": 1.0, "max_gross_leverage": 10.0, "daily_loss_stop_pct": 0.99,
                "max_drawdown_pct": 0.99, "price_band_pct": 10.0, "cash_buffer_pct": 0.0}
NO_COSTS = {"slippage_bps": 0.0, "commission_bps": 0.0, "commission_per_share": 0.0}


def write_config(directory: Path, risk: Mapping[str, Any] | None = None,
                 session: Mapping[str, Any] | None = None,
                 signal: Mapping[str, Any] | None = None) -> Path:
    """Copy tests/golden/config into ``directory`` and override some keys."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(GOLDEN_CONFIG / "assets.yaml", directory / "assets.yaml")
    r = yaml.safe_load((GOLDEN_CONFIG / "risk.yaml").read_text())
    r["risk"].update(risk or {})
    (directory / "risk.yaml").write_text(yaml.safe_dump(r))
    s = yaml.safe_load((GOLDEN_CONFIG / "session.yaml").read_text())
    s["session"].update(session or {})
    s["signal"].update(signal or {})
    (directory / "session.yaml").write_text(yaml.safe_dump(s))
    return directory


def edit_yaml(path: Path, section: str, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    data.setdefault(section, {}).update(changes)
    path.write_text(yaml.safe_dump(data))


def frame(closes: Sequence[float], start: str = "2021-01-04", freq: str = "D",
          opens: Sequence[float] | None = None, symbol: str = "SYN") -> pd.DataFrame:
    """OHLCV bars with the given closes; open = previous close unless given."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.asarray(opens, dtype=np.float64) if opens is not None else np.concatenate([[c[0]], c[:-1]])
    idx = pd.date_range(start, periods=len(c), freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.001,
                       "low": np.minimum(o, c) * 0.999, "close": c,
                       "volume": np.full(len(c), 1e6)}, index=idx)
    df.attrs = {"symbol": symbol, "label": f"{symbol} (synthetic)", "proxy_note": "synthetic"}
    return df


def random_walk(n: int, seed: int = 0, start: str = "2021-01-04", freq: str = "D",
                price: float = 100.0, vol: float = 0.02, symbol: str = "SYN") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0005, vol, n)))
    opens = np.concatenate([[price], close[:-1]]) * np.exp(rng.normal(0, vol / 4, n))
    return frame(close, start=start, freq=freq, opens=opens, symbol=symbol)


FrameSource = FramesSource  # the library's in-memory source (research_lib.data.frames)


class ScriptedModel(ModelBase):
    """A stand-in model speaking the loop's protocol: ``prob(symbol, n_seen, close)`` gives
    the probability; ``hook(n_predict_calls)`` runs before each prediction."""

    needs_features = False

    def __init__(self, symbols: Sequence[str],
                 prob: Callable[[str, int, float], float | None] = lambda s, n, c: 1.0,
                 hook: Callable[[int], None] | None = None, name: str = "scripted") -> None:
        self.symbols = list(symbols)
        self.prob = prob
        self.hook = hook
        self.name = name
        self.seen = {s: 0 for s in symbols}
        self.last = {s: float("nan") for s in symbols}
        self.calls = 0

    def observe(self, rows: np.ndarray, close: np.ndarray) -> None:
        for i, c in zip(rows, close, strict=True):
            s = self.symbols[int(i)]
            self.seen[s] += 1
            self.last[s] = float(c)

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Prediction]:
        self.calls += 1
        if self.hook is not None:
            self.hook(self.calls)
        return [Prediction(s, "test", self.name, self.prob(s, self.seen[s], self.last[s]))
                for s in symbols]


class FakeRouter:
    """Router stand-in: p(up) from the feature row (deterministic), ``Router.predict`` shape."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Prediction]:
        self.calls.append(list(symbols))
        p = 1.0 / (1.0 + np.exp(-50.0 * (X[:, 0] + X[:, 5])))  # ret_1 + dist_sma_10
        return [Prediction(s, "fake", "fake_v1", float(v)) for s, v in zip(symbols, p, strict=True)]

    def set_assets(self, assets: Any) -> None:
        pass


class FlipEnv(dict):
    """An environment whose ``FLAG_TRADING_HALTED`` turns on after ``after`` reads."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        if key == "FLAG_TRADING_HALTED":
            self.reads += 1
            return "1" if self.reads > self.after else "0"
        return super().get(key, default)


def quiet_switch(tmp_path: Path, env: Mapping[str, str] | None = None) -> KillSwitch:
    """A kill switch that ignores the real environment and the working directory."""
    return KillSwitch(tmp_path / "kill.flag", env=env if env is not None else {})


def make_session(tmp_path: Path, **kw: Any) -> Session:
    """A Session with test defaults: its own config copy, run dir, quiet kill switch."""
    kw.setdefault("config_dir", tmp_path / "config" if (tmp_path / "config").exists()
                  else write_config(tmp_path / "config"))
    kw.setdefault("run_dir", tmp_path / "runs")
    kw.setdefault("kill_switch", quiet_switch(tmp_path))
    kw.setdefault("log_file", False)
    return Session(SessionSpec(**kw))


def ledger_rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Ad-hoc SQL over a ledger, decisions and positions from both stores (a replay keeps
    them as column blocks: research_lib.ledger_columns)."""
    from research_lib.ledger_read import bulk_connection

    con = bulk_connection(path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()
