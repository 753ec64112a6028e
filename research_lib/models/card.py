"""Model cards: ``models/NAME.json`` beside ``models/NAME.onnx``.

A card says what the model is (asset class, symbols and the proxies served for them, data
span and source, features, label, pipeline, parameters, seed), how it did out of sample
against naive baselines, whether it agrees with scikit-learn (parity), the library versions
and opset it was built with, and the sha256 of the ONNX file. It holds everything needed to
rebuild the model (``spec``) and no wall-clock time, so the same command writes the same card.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import features
from ..errors import ModelError
from .evaluation import MAX_PER_SYMBOL  # above this many symbols the card lists names only
from .onnx import ParityReport, opset_of, sha256_bytes

if TYPE_CHECKING:
    from .result import TrainResult

CARD_VERSION = 1
_LIBS = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "protobuf")


def card_path_for(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    try:
        out["research_lib"] = metadata.version("research_lib")
    except metadata.PackageNotFoundError:
        from .. import __version__

        out["research_lib"] = __version__
    return out


def _steps(pipeline: Any) -> list[str]:
    if hasattr(pipeline, "steps"):
        return [type(s).__name__ for _, s in pipeline.steps]
    return [type(pipeline).__name__]


def _symbols(ds: Any) -> list[dict[str, Any]] | dict[str, Any]:
    if len(ds.symbols) <= MAX_PER_SYMBOL:
        return [s.to_dict() for s in ds.symbols]
    first = min(s.first for s in ds.symbols)
    last = max(s.last for s in ds.symbols)
    notes = sorted({s.note for s in ds.symbols if s.note})
    return {
        "count": len(ds.symbols),
        "names": [s.symbol for s in ds.symbols],
        "first": first,
        "last": last,
        "bars": sum(s.bars for s in ds.symbols),
        "sources": sorted({s.source for s in ds.symbols}),
        "notes": notes,
    }


def _parity_for_card(report: ParityReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    d = report.to_dict()
    for k in ("model", "sha256", "card_sha256_matches"):
        d.pop(k, None)
    d["max_abs_diff"] = float(f"{d['max_abs_diff']:.2g}")  # the order of magnitude is the point
    return d


def _oos_window(last: str, end: str | None, source: str) -> dict[str, Any]:
    """The bars after the training window: where an honest replay of this model runs."""
    import pandas as pd

    start = (pd.Timestamp(last) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    if end is None:
        note = (f"no bar after {last} in source {source!r}: every replay of the shipped "
                "data with this model is in sample" if source != "yfinance"
                else "every bar after the training window (a live source)")
    else:
        note = ("never seen by the final fit; a replay without --start in which this model "
                "decides begins here")
    return {"start": start, "end": end, "source": source, "note": note}


def _close_fill(wf: Any) -> dict[str, Any] | None:
    """The walk-forward result filled at the signal bar's close: beside the headline only."""
    if getattr(wf, "trading_close", None) is None:
        return None
    return {
        "label": (
            "OPTIMISTIC: filled at the signal bar's own close (held close to close), which "
            "no broker can do; the paper broker fills at the next open (portfolio above)"
        ),
        "portfolio": wf.trading_close.metrics,
    }


SMALL_SPAN_DAYS = 30  # a training span shorter than this is said to be small, plainly


def small_data(ds: Any, rows: int, interval: str) -> dict[str, str]:
    """``{"size": text}`` when the series span fewer than :data:`SMALL_SPAN_DAYS` calendar
    days in all (the shipped intraday sample's few days of 1m bars), else nothing."""
    import pandas as pd

    # calendar days each series spans, summed (two series of 3 days each: 6, whatever
    # lies between them)
    days = sum((pd.Timestamp(s.last) - pd.Timestamp(s.first)).days + 1 for s in ds.symbols)
    if days >= SMALL_SPAN_DAYS:
        return {}
    bars = sum(int(getattr(s, "bars", 0) or 0) for s in ds.symbols)
    return {"size": (
        f"SMALL DATA: trained on {bars:,} {interval} bars of {len(ds.symbols)} series "
        f"spanning {days} calendar days in all ({rows:,} labelled rows in the final fit); "
        "that is far too "
        "little to judge a model: these figures show the pipeline runs end to end on "
        "intraday bars, not that the model has an edge; retrain on months of your own bars "
        "before trusting it.")}


def build_card(result: TrainResult) -> dict[str, Any]:
    spec = result.spec
    ds = result.dataset
    wf = result.walk_forward
    first, last = ds.span
    proxies = [
        f"{s.symbol} served as {s.served_as} proxy ({s.note})" for s in ds.symbols if s.proxy
    ]
    ev = spec.settings.evaluation
    small = small_data(ds, int(result.train_rows), spec.interval)
    return {
        "card_version": CARD_VERSION,
        "name": spec.name,
        "file": f"{spec.name}.onnx",
        "sha256": result.sha256,
        "asset_class": spec.asset_class,
        "train_command": spec.command(),
        "origin": {"kind": "trained", "by": "research-lib train"},
        "spec": spec.to_dict(),
        "data": {
            "source": spec.source,
            "synthetic": ds.synthetic,
            "interval": spec.interval,
            "requested": {"start": spec.start, "end": spec.end},
            "span": {"first": first, "last": last},
            "symbols": _symbols(ds),
            "proxies": proxies,
            "notes": list(ds.notes),
            "periods_per_year": ds.periods_per_year,
            **small,
        },
        "features": {
            "names": list(features.FEATURES),
            "n": features.N_FEATURES,
            "warmup_bars": features.WARMUP,
            "builder": "research_lib.features.build / FeatureState (identical numbers)",
            "dtype_at_inference": "float32",
        },
        "label": {
            "definition": (
                f"1 if close[t+{spec.settings.label.horizon}] / close[t] - 1 > "
                f"{spec.settings.label.dead_zone:g}, 0 if < -{spec.settings.label.dead_zone:g}; "
                "otherwise (dead zone) and for the last bars without a forward close: no label, "
                "row dropped from training"
            ),
            "horizon": spec.settings.label.horizon,
            "dead_zone": spec.settings.label.dead_zone,
            "rows": ds.label_counts(),
        },
        "pipeline": {
            "name": spec.pipeline.name,
            "kind": spec.pipeline.kind,
            "steps": _steps(result.pipeline),
            "params": dict(spec.pipeline.params),
            "seed": spec.settings.seed,
        },
        "training": {
            "rows": int(result.train_rows),
            "fit_on": "every labelled row with complete features in the span (after walk-forward)",
        },
        "training_window": {
            "start": first,
            "end": last,
            "note": (
                "every bar the final fit saw is in this window; a paper session deciding "
                "with this model on a bar inside it is stamped IN-SAMPLE"
            ),
        },
        "out_of_sample_window": _oos_window(last, result.oos_end, spec.source),
        "walk_forward": {
            "scheme": "expanding window, time-ordered test blocks, no shuffling",
            "folds": spec.settings.walk_forward.folds,
            "initial_train_fraction": spec.settings.walk_forward.initial_train_fraction,
            "embargo_bars": spec.settings.walk_forward.embargo,
            "purge": "training labels end >= embargo bars before the first test bar",
            "fold_results": wf.folds,
            "out_of_sample": wf.metrics,
            "classification_baselines": wf.baselines,
        },
        "trading": {
            "rule": f"long when p(up) > {ev.threshold:g}, else flat",
            "fill": (
                "next_open: a decision at bar t fills at bar t+1's open, as the paper broker "
                "fills (the position held before earns close t -> open t+1)"
            ),
            "cost_bps_per_turnover": ev.cost_bps,
            "weighting": "equal weight across symbols active on a date",
            "periods_per_year": ds.periods_per_year,
            "sma_crossover": f"long when SMA({ev.sma_fast}) > SMA({ev.sma_slow})",
            "portfolio": wf.trading.metrics,
            "per_symbol": (
                wf.trading.per_symbol
                if len(ds.symbols) <= MAX_PER_SYMBOL
                else f"omitted for {len(ds.symbols)} symbols (portfolio above)"
            ),
            "close_fill_for_comparison": _close_fill(wf),
        },
        "verdict": (
            "Trained and evaluated on SYNTHETIC prices (see data.notes); these figures say "
            "nothing about real markets. " + wf.verdict
            if ds.synthetic
            else (small["size"] + " " if small else "") + wf.verdict
        ),
        "parity": _parity_for_card(result.parity),
        "onnx": {
            "opset": opset_of(result.onnx_bytes),
            "input": {"name": "features", "shape": [None, features.N_FEATURES], "dtype": "float32"},
            "outputs": ["label", "probabilities"],
            "zipmap": False,
            "converter": "skl2onnx",
        },
        "versions": versions(),
    }


def legacy_card(
    *,
    name: str,
    onnx_bytes: bytes,
    pickle_path: Path,
    pickle_sha256: str,
    estimator: Any,
    parity: ParityReport,
) -> dict[str, Any]:
    return {
        "card_version": CARD_VERSION,
        "name": name,
        "file": f"{name}.onnx",
        "sha256": sha256_bytes(onnx_bytes),
        "asset_class": None,
        "origin": {
            "kind": "legacy_pickle",
            "pickle": pickle_path.name,
            "pickle_sha256": pickle_sha256,
            "note": "converted once with --trust; no training data or walk-forward on record",
        },
        "features": {"names": list(features.FEATURES), "n": features.N_FEATURES},
        "pipeline": {"steps": _steps(estimator)},
        "parity": _parity_for_card(parity),
        "onnx": {"opset": opset_of(onnx_bytes), "zipmap": False, "converter": "skl2onnx"},
        "versions": versions(),
    }


def dumps(card: dict[str, Any]) -> str:
    return json.dumps(card, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_card(card: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(dumps(card), encoding="utf-8")
    tmp.replace(p)
    return p


def read_card(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"no model card at {p}; every model needs its card beside it (written by "
            "research-lib train)"
        ) from None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: card is not valid JSON: {exc}") from None
    if not isinstance(card, dict) or card.get("card_version") != CARD_VERSION:
        raise ModelError(f"{p}: not a version-{CARD_VERSION} model card")
    return card
