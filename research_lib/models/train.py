"""Train a per-asset-class model: data -> features -> label -> walk-forward -> final fit ->
ONNX -> parity -> card.

``research-lib train --asset-class crypto --symbols BTC-USD,ETH-USD,LTC-USD
--out models/crypto_v1.onnx`` does all of it from the shipped sample, in seconds.
The same command gives the same ONNX bytes and the same card (fixed seed, the same
bytes whatever ``--jobs``/``--backend``, symbols in the given order, no wall-clock time in
the card).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import features
from ..config import AssetsConfig, load_assets, parse_symbols
from ..errors import ConfigError, ModelError
from ..telemetry import get_logger, log_event
from . import card as cards
from .dataset import FEATURES, Dataset, build_dataset, expand_symbols, load_frames
from .evaluation import walk_forward
from .onnx import OnnxModel, compare, export, sha256_bytes
from .result import TrainResult, TrainSpec
from .settings import (
    ASSET_CLASSES,
    PipelineSpec,
    TrainSettings,
    load_settings,
)

log = get_logger("models.train")


def project_path(path: str | Path) -> Path:
    """``path`` by the one rule for relative paths (:func:`research_lib.project.resolve_path`:
    from the project home, else the working directory), so a notebook run from
    ``notebooks/`` and a command run from the home write to the same place."""
    from ..project import resolve_path

    return resolve_path(path)


def make_estimator(pipeline: PipelineSpec, seed: int, n_jobs: int = 1) -> Any:
    """A fresh, unfitted scikit-learn estimator for ``pipeline``; a random forest fits its
    trees on ``n_jobs`` threads (the same trees whatever the number: each tree's seed is
    drawn from ``seed`` before any is fitted)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    params = dict(pipeline.params)
    try:
        if pipeline.kind == "logistic":
            return Pipeline(
                [
                    ("scale", StandardScaler()),
                    ("clf", LogisticRegression(random_state=seed, **params)),
                ]
            )
        if pipeline.kind == "random_forest":
            return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
        if pipeline.kind == "hist_gradient_boosting":
            return HistGradientBoostingClassifier(random_state=seed, **params)
    except TypeError as exc:
        raise ConfigError(f"pipelines.{pipeline.name}.params: {exc}") from None
    raise ConfigError(f"pipelines.{pipeline.name}.kind {pipeline.kind!r} is not known")


def _fit(pipeline: PipelineSpec, seed: int, X: np.ndarray, y: np.ndarray,
         n_jobs: int = 1) -> Any:
    from sklearn.utils._param_validation import InvalidParameterError

    from .evaluation import single_threaded

    est = make_estimator(pipeline, seed, n_jobs)
    try:
        return single_threaded(est.fit(X, y))
    except InvalidParameterError as exc:
        raise ConfigError(f"pipelines.{pipeline.name}.params: {exc}") from None


def _check_classes(asset_class: str, symbols: tuple[str, ...], assets: AssetsConfig | None) -> None:
    if asset_class not in ASSET_CLASSES:
        raise ConfigError(f"--asset-class must be one of {ASSET_CLASSES}, got {asset_class!r}")
    if asset_class == "universal":
        return
    assets = assets or load_assets()
    wrong = [(s, assets.classify(s)) for s in symbols if assets.classify(s) != asset_class]
    if wrong:
        s, c = wrong[0]
        raise ConfigError(
            f"symbol {s} is in class {c!r} in {assets.source_path or 'assets.yaml'}, not "
            f"{asset_class!r}; train it under --asset-class {c} or universal, or add an override"
        )


def prepare(spec: TrainSpec) -> Dataset:
    frames, notes = load_frames(spec.symbols, spec.source, spec.start, spec.end, spec.interval)
    lab = spec.settings.label
    return build_dataset(frames, lab.horizon, lab.dead_zone, notes, spec.interval)


OFFLINE_SOURCES = ("sample", "synthetic-options", "cache")


def out_of_sample_end(spec: TrainSpec, last: str) -> str | None:
    """The last bar the source has for the spec's symbols after ``last`` (the training
    window's end): where the out-of-sample window ends. None when the source has nothing
    later, or is a live source (yfinance: any later bar is out of sample)."""
    if spec.source not in OFFLINE_SOURCES and not spec.source.startswith("csv:"):
        return None
    from ..errors import DataError
    from .dataset import resolve_source

    src = resolve_source(spec.source)
    after = pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=1)
    if hasattr(src, "expand"):  # an option chain: its underlying's bars end it
        base = src._base()
        later = base.index[base.index >= after]
        return later.max().strftime("%Y-%m-%d") if len(later) else None
    from ..data import get_source

    source = get_source(src)
    ends = []
    for sym in spec.symbols:
        try:
            f = source.fetch(sym, start=after, end=None, interval=spec.interval)
        except DataError:
            continue
        if len(f):
            ends.append(f.index.max())
    return max(ends).strftime("%Y-%m-%d") if ends else None


def fit_final(spec: TrainSpec, ds: Dataset, n_jobs: int = 1) -> tuple[Any, int]:
    mask = ds.trainable
    y = ds.y(mask)
    if len(np.unique(y)) < 2:
        raise ModelError("training rows hold one class only; widen the date range")
    return _fit(spec.pipeline, spec.settings.seed, ds.X(mask), y, n_jobs), int(mask.sum())


@cache
def _sample_rows() -> pd.DataFrame:
    from ..data import load, sample_symbols

    frames = load(sample_symbols(), source="sample")
    parts = []
    for sym, f in frames.items():
        F = features.build(f)
        F = F[np.isfinite(F.to_numpy()).all(axis=1)]
        F.insert(0, "served_as", sym)
        parts.append(F.reset_index())
    return pd.concat(parts, ignore_index=True)


def sample_feature_rows() -> tuple[np.ndarray, str]:
    """Every complete feature row of the shipped sample (for checks of converted models)."""
    rows = _sample_rows()
    return rows[FEATURES].to_numpy(
        np.float64
    ), f"all {len(rows)} complete feature rows of the shipped sample"


def heldout_rows(res: TrainResult) -> tuple[np.ndarray, str]:
    """Rows the final fit never saw: the span's dead-zone and unlabelled rows, plus every
    complete row of the shipped sample that is not a training row (other symbols, other
    dates). Returns float64 features and a description."""
    ds = res.dataset
    r = ds.rows
    own = r[r["complete"].to_numpy() & ~r["trainable"].to_numpy()]
    served = {s.symbol: s.served_as for s in ds.symbols}
    used = r.loc[r["trainable"].to_numpy(), ["symbol", "timestamp"]].copy()
    used["served_as"] = used["symbol"].map(served)
    sample = _sample_rows()
    key = pd.MultiIndex.from_frame(sample[["served_as", "timestamp"]])
    used_key = pd.MultiIndex.from_frame(used[["served_as", "timestamp"]])
    other = sample[~key.isin(used_key)]
    X = np.vstack([own[FEATURES].to_numpy(np.float64), other[FEATURES].to_numpy(np.float64)])
    desc = (
        f"{len(own)} rows of the training span without a label (dead zone, last bars) + "
        f"{len(other)} complete rows of the shipped sample the fit never saw"
    )
    return X, desc


def train(
    asset_class: str,
    symbols: str | list[str] | tuple[str, ...],
    *,
    start: str | None = None,
    end: str | None = None,
    source: str = "sample",
    interval: str = "1d",
    out: str | Path | None = None,
    pipeline: str | None = None,
    seed: int | None = None,
    settings: TrainSettings | None = None,
    assets: AssetsConfig | None = None,
    name: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    jobs: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
) -> TrainResult:
    """Train, evaluate walk-forward, fit on all labelled rows, export ONNX, check parity,
    build the card; with ``out`` write ``out`` and its card (``.json``) beside it.
    ``progress(done, total)`` is called after each stage (data, each walk-forward fold,
    the final fit, export and parity); the caller draws any bar.

    ``jobs``/``backend``/``scheduler`` (:mod:`research_lib.parallel`): with ``jobs > 1``
    on ``"local"`` or with ``"dask"`` the walk-forward folds are fitted at once in worker
    processes; on ``"serial"`` they are fitted one after the other and a random forest
    uses ``jobs`` threads. The final fit uses ``jobs`` threads (a random forest). The
    model and card are the same bytes whatever the setting (tested)."""
    from ..parallel import check_backend

    check_backend(backend, jobs, scheduler)
    fresh = settings is None  # a retrain from a card passes the card's settings as they are
    settings = settings or load_settings()
    if seed is not None:
        settings = replace(settings, seed=int(seed))
    syms = tuple(parse_symbols(list(symbols) if not isinstance(symbols, str) else symbols))
    _check_classes(asset_class, tuple(expand_symbols(syms, source)), assets)
    if fresh:  # the dead zone is set for daily bars: scaled to intraday ones (recorded)
        from .intraday_label import scaled_label

        settings = replace(settings, label=scaled_label(settings.label, interval, syms, assets))
    out_path = project_path(out) if out is not None else None
    if out_path is not None and out_path.suffix != ".onnx":
        raise ConfigError(f"--out must end in .onnx, got {out_path}")
    spec = TrainSpec(
        name=name or (out_path.stem if out_path else f"{asset_class}_model"),
        asset_class=asset_class,
        symbols=syms,
        start=None if start is None else str(start),
        end=None if end is None else str(end),
        source=source,
        interval=interval,
        pipeline=settings.pipeline(pipeline, asset_class),
        settings=settings,
        out=None if out is None else str(out),
    )
    ds = prepare(spec)
    wf_cfg, ev = settings.walk_forward, settings.evaluation
    stages = wf_cfg.folds + 3

    def tick(done: int) -> None:
        if progress is not None:
            progress(done, stages)

    tick(1)
    for note in ds.notes:
        log_event(log, "train_data_note", note=note)
    from contextlib import nullcontext
    from functools import partial

    from ..parallel import backend as parallel_backend

    fan_out = backend == "dask" or (backend == "local" and jobs > 1)
    try:
        with parallel_backend(backend, jobs, scheduler) if fan_out else nullcontext():
            wf = walk_forward(
                ds,
                partial(make_estimator, spec.pipeline, settings.seed, 1 if fan_out else jobs),
                jobs=jobs if fan_out else 1,
                folds=wf_cfg.folds,
                initial_train_fraction=wf_cfg.initial_train_fraction,
                embargo=wf_cfg.embargo,
                threshold=ev.threshold,
                cost_bps=ev.cost_bps,
                sma_fast=ev.sma_fast,
                sma_slow=ev.sma_slow,
                on_fold=lambda k: tick(2 + k),
            )
    except ValueError as exc:
        raise ModelError(f"walk-forward evaluation failed: {exc}") from exc
    pipe, n_rows = fit_final(spec, ds, n_jobs=jobs)
    tick(stages - 1)
    data = export(
        pipe,
        features.N_FEATURES,
        opset=settings.onnx.opset,
        ml_opset=settings.onnx.ml_opset,
        name=spec.name,
    )
    res = TrainResult(
        spec=spec,
        dataset=ds,
        pipeline=pipe,
        train_rows=n_rows,
        walk_forward=wf,
        onnx_bytes=data,
        sha256=sha256_bytes(data),
    )
    model = OnnxModel(out_path or Path(f"{spec.name}.onnx"), data=data)
    X, rows_from = heldout_rows(res)
    res.parity = compare(pipe, model, X, threshold=ev.threshold, rows_from=rows_from)
    res.oos_end = out_of_sample_end(spec, ds.span[1])
    res.card = cards.build_card(res)
    tick(stages)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_suffix(".onnx.tmp")
        tmp.write_bytes(data)
        tmp.replace(out_path)
        res.model_path = out_path
        res.card_path = cards.write_card(res.card, cards.card_path_for(out_path))
    log_event(
        log,
        "model_trained",
        name=spec.name,
        sha256=res.sha256,
        rows=n_rows,
        auc=wf.metrics.get("auc"),
        parity=res.parity.passed,
        jobs=jobs,
        backend=backend if fan_out else "serial",
    )
    return res


def rebuild(card: dict[str, Any]) -> TrainResult:
    """Refit the scikit-learn pipeline a card describes, from the data it records
    (no walk-forward, no export). Refuses when that data no longer matches the card."""
    spec = TrainSpec.from_card(card)
    ds = prepare(spec)
    first, last = ds.span
    want = card.get("data", {}).get("span", {})
    counts = card.get("label", {}).get("rows")
    if want and (want.get("first"), want.get("last")) != (first, last):
        raise ModelError(
            f"card {spec.name}: data span is now {first}..{last}, the card says "
            f"{want.get('first')}..{want.get('last')}; the source's data changed"
        )
    if counts is not None and counts != ds.label_counts():
        raise ModelError(
            f"card {spec.name}: label counts are now {ds.label_counts()}, the card says "
            f"{counts}; the source's data changed"
        )
    pipe, n_rows = fit_final(spec, ds)
    return TrainResult(spec=spec, dataset=ds, pipeline=pipe, train_rows=n_rows)


def retrain_from_card(card: dict[str, Any], out: str | Path | None = None) -> TrainResult:
    """Run the whole training again from a card's spec (same settings, seed and data)."""
    spec = TrainSpec.from_card(card)
    return train(
        spec.asset_class,
        list(spec.symbols),
        start=spec.start,
        end=spec.end,
        source=spec.source,
        interval=spec.interval,
        out=out,
        pipeline=spec.pipeline.name,
        settings=spec.settings,
        name=spec.name,
    )
