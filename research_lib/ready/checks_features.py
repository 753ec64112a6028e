"""Feature claims: the batch and incremental paths agree bit for bit on the latest bars,
and no feature or decision at or before a bar moves when the bars after it change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import features
from .checks_data import data_source
from .context import Context
from .verdict import Verdict, all_passed, failed

if TYPE_CHECKING:
    from ..models.router import Router


def _latest(ctx: Context, bars: int) -> dict[str, pd.DataFrame]:
    from ..data import load

    frames = load(ctx.symbols, source=data_source(ctx),
                  interval=ctx.session_settings.session.interval)
    return {s: df.iloc[-bars:] for s, df in frames.items()}


def _first_difference(a: np.ndarray, b: np.ndarray, index: pd.Index) -> str | None:
    """Where two feature blocks differ first (NaN equals NaN), as 'feature at time'."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return None
    row, col = (int(x) for x in np.argwhere(~same)[0])
    return (f"{features.FEATURES[col]} at {index[row].isoformat()} ({a[row, col]!r} vs "
            f"{b[row, col]!r}; {int((~same).sum())} values differ)")


def batch_equals_incremental(ctx: Context, bars: int = 400) -> Verdict:
    if bars <= features.WARMUP:
        return failed(f"params.bars {bars} leaves no row after the {features.WARMUP}-bar "
                      "warm-up; use more bars")
    problems: dict[str, str | None] = {}
    compared: dict[str, int] = {}
    for sym, df in _latest(ctx, bars).items():
        batch = features.build(df).to_numpy()
        inc = features.replay_incremental(df).to_numpy()
        if batch.shape != inc.shape:
            problems[sym] = f"batch shape {batch.shape} != incremental {inc.shape}"
            continue
        compared[sym] = int(np.isfinite(batch).sum())
        diff = _first_difference(batch, inc, df.index)
        problems[sym] = None if diff is None else f"batch != incremental: {diff}"
    return all_passed(problems, f"bit-identical on the latest {bars} bars of "
                                f"{len(compared)} symbols",
                      bars=bars, finite_values_compared=compared)


def _perturbed(df: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every bar after position ``t`` changed: prices scaled per bar (OHLC stay
    consistent), volumes tripled."""
    out = df.copy()
    k = len(df) - t - 1
    scale = rng.lognormal(0.0, 0.2, size=(k, 1))
    cols = ["open", "high", "low", "close"]
    out.iloc[t + 1:, [out.columns.get_loc(c) for c in cols]] = (
        df[cols].to_numpy()[t + 1:] * scale)
    vol = out.columns.get_loc("volume")
    out.iloc[t + 1:, vol] = df["volume"].to_numpy()[t + 1:] * 3.0
    return out


def _decisions(ctx: Context, router: Router, sym: str, X: np.ndarray) -> dict[str, np.ndarray]:
    """Per model that may decide for ``sym`` (universal and its class model): the
    decision at each row (1 long, 0 flat, -1 hold band, 2 no signal)."""
    sig = ctx.session_settings.signal
    names = {ctx.assets.universal_model}
    try:
        names.add(ctx.assets.asset_class(ctx.assets.classify(sym)).model)
    except Exception:  # an unclassified symbol is served by universal only
        pass
    out = {}
    rows = np.isfinite(X).all(axis=1)
    for name in sorted(names):
        model = router.model(name)
        if model is None:
            continue  # unusable models are the model and router claims' to report
        p = np.full(len(X), np.nan)
        if rows.any():
            p[rows] = model.predict_proba_up(X[rows].astype(np.float32))
        d = np.where(p > sig.long_threshold, 1, np.where(p < sig.short_threshold, 0, -1))
        out[name] = np.where(np.isfinite(p), d, 2)
    return out


def causal(ctx: Context, bars: int = 400, cuts: int = 6, seed: int = 7) -> Verdict:
    if bars <= features.WARMUP + 2 or cuts < 1:
        return failed(f"params bars {bars} / cuts {cuts}: need bars > {features.WARMUP + 2} "
                      "and cuts >= 1")
    from ..models.router import Router

    router = Router(ctx.assets, ctx.models_dir)
    rng = np.random.default_rng(seed)
    problems: dict[str, str | None] = {}
    checked = {"cuts": 0, "decisions": 0}
    for sym, df in _latest(ctx, bars).items():
        base = features.build(df).to_numpy()
        base_dec = _decisions(ctx, router, sym, base)
        n = min(cuts, len(df) - features.WARMUP - 1)
        points = sorted(rng.choice(np.arange(features.WARMUP, len(df) - 1), size=n,
                                   replace=False).tolist())
        problems[sym] = None
        for t in points:
            changed = features.build(_perturbed(df, t, rng)).to_numpy()[: t + 1]
            cut = features.build(df.iloc[: t + 1]).to_numpy()
            checked["cuts"] += 1
            for what, got in (("perturbed", changed), ("deleted", cut)):
                diff = _first_difference(got, base[: t + 1], df.index)
                if diff is not None:
                    problems[sym] = (f"bars after {df.index[t].isoformat()} {what}: feature "
                                     f"{diff} changed (lookahead)")
                    break
                for model, dec in _decisions(ctx, router, sym, got).items():
                    moved = np.flatnonzero(dec != base_dec[model][: t + 1])
                    checked["decisions"] += t + 1
                    if len(moved):
                        problems[sym] = (f"bars after {df.index[t].isoformat()} {what}: "
                                         f"{model}'s decision at "
                                         f"{df.index[int(moved[0])].isoformat()} changed "
                                         f"({len(moved)} decisions moved)")
                        break
                if problems[sym]:
                    break
            if problems[sym]:
                break
    return all_passed(problems, f"{checked['cuts']} cuts on {len(problems)} symbols: no past "
                                "feature or decision moved", bars=bars, seed=seed, **checked)
