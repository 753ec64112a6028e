"""Figures and tables for the model notebooks. Every figure is a ``matplotlib.figure.Figure``
built without pyplot state (nothing is shown or saved here); tables are DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import features
from .evaluation import WalkForwardResult
from .onnx import ParityCheck
from .result import TrainResult
from .router import MODE_WORDS, Router, routing_table

COLORS = {
    "model": "tab:blue",
    "buy_and_hold": "tab:gray",
    "always_flat": "tab:olive",
    "sma_crossover": "tab:orange",
}


# ------------------------------------------------------------------------ training
def metrics_table(res: TrainResult) -> pd.DataFrame:
    """Out-of-sample trading result of the model beside the baselines (portfolio), filled
    at the next open as the paper broker fills; the last row is the model filled at the
    signal bar's own close (optimistic, for comparison only)."""
    wf = _wf(res)
    rows = {
        k: {
            c: v.get(c)
            for c in (
                "total_return",
                "annual_return",
                "sharpe",
                "max_drawdown",
                "turnover",
                "exposure",
            )
        }
        for k, v in wf.trading.metrics.items()
    }
    if wf.trading_close is not None:
        m = wf.trading_close.metrics["model"]
        rows["model, close fill (optimistic)"] = {c: m.get(c) for c in next(iter(rows.values()))}
    return pd.DataFrame(rows).T.astype(float)


def classification_table(res: TrainResult) -> pd.DataFrame:
    """Out-of-sample accuracy, log loss and AUC beside their naive baselines."""
    wf = _wf(res)
    m, b = wf.metrics, wf.baselines
    return pd.DataFrame(
        {
            "model": [m["accuracy"], m["log_loss"], m["auc"]],
            "baseline": [b["majority_class_accuracy"], b["base_rate_log_loss"], b["coin_flip_auc"]],
        },
        index=["accuracy (vs majority class)", "log loss (vs base rate)", "AUC (vs coin flip)"],
    ).astype(float)


def folds_table(res: TrainResult) -> pd.DataFrame:
    return pd.DataFrame(_wf(res).folds).set_index("fold")


def _wf(res: TrainResult) -> WalkForwardResult:
    if res.walk_forward is None:
        raise ValueError("this result has no walk-forward evaluation (a rebuild, not a training)")
    return res.walk_forward


def equity_figure(res: TrainResult) -> Figure:
    """Out-of-sample equity of acting on the signal, after costs, against the baselines."""
    wf = _wf(res)
    eq = wf.trading.equity()
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for name in eq.columns:
        ax.plot(
            eq.index,
            eq[name],
            label=name,
            color=COLORS.get(name),
            lw=1.6 if name == "model" else 1.0,
        )
    ax.set_yscale("log")
    ax.set_ylabel("equity (log scale, start = 1)")
    ax.set_title(f"{res.spec.name}: walk-forward out-of-sample equity after costs, "
                 "filled at the next open")
    for f in wf.folds[1:]:
        ax.axvline(pd.Timestamp(f["test_start"], tz="UTC"), color="k", lw=0.5, ls=":")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def calibration_frame(res: TrainResult, bins: int = 10) -> pd.DataFrame:
    """Labelled out-of-sample rows binned by predicted p(up): mean prediction, share up."""
    oos = _wf(res).oos
    lab = oos[oos["label"].notna()]
    q = pd.qcut(lab["p"], q=bins, duplicates="drop")
    g = lab.groupby(q, observed=True)
    return pd.DataFrame(
        {"predicted": g["p"].mean(), "observed_up": g["label"].mean(), "rows": g.size()}
    ).reset_index(drop=True)


def calibration_figure(res: TrainResult, bins: int = 10) -> Figure:
    cal = calibration_frame(res, bins)
    oos = _wf(res).oos
    fig = Figure(figsize=(9, 4))
    ax1 = fig.add_subplot(1, 2, 1)
    lo = float(min(cal["predicted"].min(), cal["observed_up"].min(), 0.4))
    hi = float(max(cal["predicted"].max(), cal["observed_up"].max(), 0.6))
    ax1.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="perfect calibration")
    ax1.plot(cal["predicted"], cal["observed_up"], "o-", color=COLORS["model"], label="model")
    ax1.set_xlabel("mean predicted p(up) (decile)")
    ax1.set_ylabel("observed share up")
    ax1.set_title("calibration, out of sample")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.hist(oos["p"], bins=40, color=COLORS["model"])
    ax2.axvline(res.spec.settings.evaluation.threshold, color="r", lw=1, label="long threshold")
    ax2.set_xlabel("predicted p(up)")
    ax2.set_ylabel("bars")
    ax2.set_title("distribution of predictions")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(res: TrainResult, n_repeats: int = 5) -> pd.DataFrame:
    """Permutation importance (drop in AUC) of the last walk-forward model on its own
    out-of-sample rows: what the model leans on where it was not trained."""
    from sklearn.inspection import permutation_importance

    wf = _wf(res)
    ds = res.dataset
    mask = wf.last_test & ds.rows["label"].notna().to_numpy()
    X, y = ds.X(mask), ds.y(mask)
    r = permutation_importance(
        wf.last_model,
        X,
        y,
        scoring="roc_auc",
        n_repeats=n_repeats,
        random_state=res.spec.settings.seed,
        n_jobs=1,
    )
    out = pd.DataFrame(
        {"auc_drop": r.importances_mean, "std": r.importances_std}, index=list(features.FEATURES)
    )
    return out.sort_values("auc_drop")


def importance_figure(imp: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(imp.index, imp["auc_drop"], xerr=imp["std"], color=COLORS["model"])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("drop in out-of-sample AUC when the feature is shuffled")
    ax.set_title("permutation importance (last walk-forward fold)")
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------- parity
def parity_figure(check: ParityCheck) -> Figure:
    r = check.report
    diff = check.p_onnx - check.p_sklearn
    fig = Figure(figsize=(9, 4))
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.scatter(check.p_sklearn, check.p_onnx, s=3, alpha=0.4)
    lo, hi = float(check.p_sklearn.min()), float(check.p_sklearn.max())
    ax1.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
    ax1.axvline(r.threshold, color="r", lw=0.8)
    ax1.axhline(r.threshold, color="r", lw=0.8)
    ax1.set_xlabel("p(up), scikit-learn")
    ax1.set_ylabel("p(up), onnxruntime")
    ax1.set_title(f"{r.rows} held-out rows")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.hist(diff, bins=50)
    ax2.set_xlabel("onnx - sklearn")
    ax2.set_title(f"max |diff| {r.max_abs_diff:.2g} (tolerance {r.tolerance:g})")
    fig.tight_layout()
    return fig


def parity_table(check: ParityCheck) -> pd.DataFrame:
    r = check.report
    return pd.DataFrame(
        {
            "value": [
                "PASSED" if r.passed else "FAILED",
                r.rows,
                f"{r.max_abs_diff:.1e}",
                f"{r.share_identical_decisions:.2%}",
                r.threshold,
                {True: "yes", False: "NO", None: "-"}[r.card_sha256_matches],
            ]
        },
        index=[
            "parity",
            "held-out rows",
            "max |p diff|",
            "identical decisions",
            "decision threshold",
            "file sha256 matches card",
        ],
    )


# ------------------------------------------------------------------------- routing
def routing_frame(router: Router, symbols: Sequence[str], mode: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(routing_table(router, symbols, mode)).set_index("symbol")


def models_frame(router: Router) -> pd.DataFrame:
    """Every registry entry: file, checksum status and the problem, if any."""
    return pd.DataFrame(
        [
            {"model": k, "file": v.display, "checksum": v.checksum, "problem": v.problem}
            for k, v in router.statuses().items()
        ]
    ).set_index("model")


def routing_modes(router: Router, symbols: Sequence[str]) -> pd.DataFrame:
    """The deciding model (and shadow) for every symbol under each flag value."""
    out = {}
    for mode, word in MODE_WORDS.items():
        routes = router.routes(symbols, mode)
        out[f"{mode} ({word})"] = [
            r.model
            + (f" + shadow {r.shadow_model}" if r.shadow_model else "")
            + (" (fallback)" if r.fallback_reason and mode == "1" else "")
            for r in routes
        ]
    return pd.DataFrame(out, index=list(symbols))


def latest_features(symbols: Sequence[str], source: str = "sample") -> tuple[list[str], np.ndarray]:
    """The last complete feature row of each symbol; symbols the source lacks, or without
    a complete row, are skipped."""
    from ..data import get_source
    from ..errors import DataError

    src = get_source(source)
    keep, rows = [], []
    for s in symbols:
        try:
            frame = src.fetch(s)
        except DataError:  # e.g. an option contract the sample does not have
            continue
        F = features.build(frame).dropna()
        if len(F):
            keep.append(s)
            rows.append(F.iloc[-1].to_numpy(np.float64))
    return keep, np.vstack(rows) if rows else np.empty((0, features.N_FEATURES))


def predictions_by_mode(router: Router, symbols: Sequence[str], X: np.ndarray) -> pd.DataFrame:
    """p(up) of the universal and of each symbol's class model on the same rows."""
    shadow = router.routes(symbols, "shadow")
    uni = router.assets.universal_model
    out: dict[str, Any] = {"class": [r.asset_class for r in shadow]}
    for label, names in (
        ("universal", [uni] * len(symbols)),
        ("class model", [r.shadow_model or uni for r in shadow]),
    ):
        vals = []
        for i, name in enumerate(names):
            model = router.model(name)
            vals.append(
                float(model.predict_proba_up(X[i : i + 1].astype(np.float32))[0])
                if model is not None
                else np.nan
            )
        out[label] = vals
    out["class model name"] = [r.shadow_model or f"{uni} (fallback)" for r in shadow]
    return pd.DataFrame(out, index=list(symbols))


def predictions_figure(pred: pd.DataFrame, threshold: float = 0.52) -> Figure:
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(pred))
    ax.bar(x - 0.2, pred["universal"], width=0.4, label="universal")
    ax.bar(x + 0.2, pred["class model"], width=0.4, label="class model")
    ax.axhline(threshold, color="r", lw=0.8, label="long threshold")
    ax.set_xticks(x, pred.index, rotation=30, ha="right")
    ax.set_ylim(0.3, 0.7)
    ax.set_ylabel("p(up) on the last bar")
    ax.set_title("universal vs asset-class model, same features")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
