"""Walk-forward evaluation: expanding windows, no shuffling, purge + embargo, and the
trading result of acting on the signal beside naive baselines.

Folds are cut on the pooled timeline (dates), the same cut for every symbol. For a test
block starting at bar ``j`` of a symbol, its training rows are those whose label ends at
least ``embargo`` bars before ``j`` (``bar + horizon + embargo <= j``).

Trading: at bar t the position is 1 when p(up) > threshold, else 0. It fills the way the
paper broker fills (``fill="next_open"``, the headline): at the open of bar t + 1, so the
move from close t to open t + 1 is still earned (or missed) by the position held before,
and the new one earns open t + 1 -> close t + 1 on the weight sized at close t. The
optimistic ``fill="close"`` fills at the signal bar's own close (held close to close), which
no broker can do; cards show it beside the headline, labelled. Every change of position
pays ``cost_bps``. Symbols are equally weighted among those active on a date. Baselines
over the same bars and the same fill rule: buy-and-hold, always-flat, and an SMA crossover
(long when SMA(fast) > SMA(slow), from closes up to t).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from .dataset import Dataset


@dataclass(frozen=True)
class Fold:
    index: int
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train: np.ndarray  # bool mask over dataset rows
    test: np.ndarray  # bool mask: complete rows in the test block (labelled or not)


def walk_forward_splits(
    ds: Dataset, folds: int, initial_train_fraction: float, embargo: int
) -> list[Fold]:
    rows = ds.rows
    trainable = rows["trainable"].to_numpy()
    complete = rows["complete"].to_numpy()
    ts = rows["timestamp"].to_numpy()
    dates = np.unique(ts[trainable])
    n = len(dates)
    first = int(n * initial_train_fraction)
    if n == 0 or first < 1 or n - first < folds:
        raise ValueError(
            f"walk-forward needs more dates: {n} labelled dates, {folds} folds, "
            f"initial_train_fraction={initial_train_fraction}"
        )
    cuts = np.linspace(first, n, folds + 1).round().astype(int)
    bar = rows["bar"].to_numpy()
    codes, uniques = pd.factorize(rows["symbol"])
    never = np.iinfo(np.int64).max // 2
    out = []
    for k in range(folds):
        start = dates[cuts[k]]
        end = dates[cuts[k + 1] - 1] if k < folds - 1 else ts.max()
        test = complete & (ts >= start) & (ts <= end)
        # first test bar per symbol; symbols with no bar at/after start keep every bar
        after = ts >= start
        first = np.full(len(uniques), never, dtype=np.int64)
        np.minimum.at(first, codes[after], bar[after])
        first_test = first[codes]
        train = trainable & (bar + ds.horizon + embargo <= first_test)
        out.append(Fold(k, pd.Timestamp(start), pd.Timestamp(end), train, test))
    return out


def _r(x: float | None, digits: int = 6) -> float | None:
    """Round for the card: fixed significant digits, None for NaN/inf."""
    if x is None:
        return None
    x = float(x)
    if not np.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    out: dict[str, Any] = {"rows": int(len(y))}
    if len(y) == 0:
        return out | {"accuracy": None, "log_loss": None, "auc": None}
    out["accuracy"] = _r(accuracy_score(y, p > 0.5))
    out["log_loss"] = _r(log_loss(y, p, labels=[0, 1]))
    out["auc"] = _r(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return out


# ---------------------------------------------------------------------- trading
def trading_metrics(
    ret: pd.Series, weights: pd.DataFrame, periods_per_year: float
) -> dict[str, Any]:
    """``ret``: portfolio return per date after costs; ``weights``: date x symbol.
    On a daily date index, bars per year come from the span (``periods_per_year`` is
    ignored); on intraday bars from ``periods_per_year`` (the calendar's trading hours: a
    span with nights and weekends would overstate them)."""
    r = ret.to_numpy(dtype=np.float64)
    n = len(r)
    if n == 0:
        return {
            "total_return": None,
            "annual_return": None,
            "sharpe": None,
            "max_drawdown": None,
            "turnover": None,
            "exposure": None,
            "bars": 0,
        }
    eq = np.cumprod(1.0 + r)
    total = eq[-1] - 1.0
    idx = ret.index
    intraday = (isinstance(idx, pd.DatetimeIndex) and n > 2
                and np.median(np.diff(idx.as_unit("ns").asi8)) < 86_400 * 10**9)
    if isinstance(idx, pd.DatetimeIndex) and n > 1 and not intraday:
        # bars per year from the calendar actually spanned (a pooled book can mix a
        # weekday-only stretch with a 7-day one)
        years = max((idx[-1] - idx[0]).days + 1, 1) / 365.25
        periods_per_year = n / years
    else:
        years = n / periods_per_year
    annual = (1.0 + total) ** (1.0 / years) - 1.0 if total > -1.0 else -1.0
    sd = r.std(ddof=1) if n > 1 else 0.0
    sharpe = r.mean() / sd * np.sqrt(periods_per_year) if sd > 0 else 0.0
    peak = np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:]
    mdd = float(np.max(1.0 - eq / peak))
    w = weights.to_numpy(dtype=np.float64)
    dw = np.abs(np.diff(np.vstack([np.zeros((1, w.shape[1])), w]), axis=0)).sum()
    return {
        "total_return": _r(total),
        "annual_return": _r(annual),
        "sharpe": _r(sharpe),
        "max_drawdown": _r(mdd),
        "turnover": _r(dw / years),  # sum |change in weight| per year
        "exposure": _r(w.sum(axis=1).mean()),
        "bars": n,
        "years": _r(years, 4),
    }


@dataclass
class TradingResult:
    returns: pd.DataFrame  # date x strategy: portfolio return after costs
    metrics: dict[str, dict[str, Any]]
    per_symbol: dict[str, dict[str, Any]]

    def equity(self) -> pd.DataFrame:
        return (1.0 + self.returns).cumprod()


STRATEGIES = ("model", "buy_and_hold", "always_flat", "sma_crossover")
MAX_PER_SYMBOL = 20  # per-symbol figures only for a handful of symbols (not an option chain)


def sma_positions(close: pd.Series, fast: int, slow: int) -> pd.Series:
    f = close.rolling(fast, min_periods=fast).mean()
    s = close.rolling(slow, min_periods=slow).mean()
    return (f > s).astype("float64")


FILLS = ("next_open", "close")


def _next_bar_parts(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(gap, intraday) of the next bar per row: close t -> open t + 1 and open t + 1 ->
    close t + 1. Without a next open (close-only data, a missing value) the whole move is
    the gap: the order then fills at the next close."""
    ret = g["ret_next"].to_numpy(dtype=np.float64)
    gap = g["gap_next"].to_numpy(dtype=np.float64)
    intra = g["intra_next"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(gap) & np.isfinite(intra))
    gap = np.where(bad, ret, gap)
    intra = np.where(bad, 0.0, intra)
    return np.nan_to_num(gap), intra


def backtest(
    oos: pd.DataFrame,
    closes: Mapping[str, pd.Series],
    threshold: float,
    cost_bps: float,
    periods_per_year: int,
    sma_fast: int,
    sma_slow: int,
    per_symbol_metrics: bool = True,
    fill: str = "next_open",
) -> TradingResult:
    """``oos``: ``timestamp, symbol, p, ret_next`` for every out-of-sample bar, plus
    ``gap_next, intra_next`` for ``fill="next_open"`` (how the paper broker fills: a
    decision at bar t fills at bar t + 1's open). ``fill="close"`` fills at the signal
    bar's close (optimistic)."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if fill == "next_open":
        missing = [c for c in ("gap_next", "intra_next") if c not in oos.columns]
        if missing:
            raise ValueError(f"fill='next_open' needs the columns {missing} (the next bar's "
                             "open); pass fill='close' for close-to-close fills")
    cost = cost_bps / 1e4
    pos: dict[str, dict[str, pd.Series]] = {s: {} for s in STRATEGIES}
    rets: dict[str, pd.Series] = {}
    gaps: dict[str, pd.Series] = {}
    intras: dict[str, pd.Series] = {}
    for sym, g in oos.groupby("symbol", sort=False):
        g = g.sort_values("timestamp")
        idx = pd.DatetimeIndex(g["timestamp"])
        rets[sym] = pd.Series(g["ret_next"].fillna(0.0).to_numpy(), index=idx)
        if fill == "next_open":
            gap, intra = _next_bar_parts(g)
            gaps[sym] = pd.Series(gap, index=idx)
            intras[sym] = pd.Series(intra, index=idx)
        pos["model"][sym] = pd.Series((g["p"].to_numpy() > threshold).astype("float64"), index=idx)
        pos["buy_and_hold"][sym] = pd.Series(1.0, index=idx)
        pos["always_flat"][sym] = pd.Series(0.0, index=idx)
        sma = sma_positions(closes[sym], sma_fast, sma_slow)
        pos["sma_crossover"][sym] = sma.reindex(idx).fillna(0.0)
    R = pd.DataFrame(rets).sort_index()
    dates = R.index
    active = pd.DataFrame(
        {s: (dates >= r.index.min()) & (dates <= r.index.max()) for s, r in rets.items()},
        index=dates,
    )
    n_active = active.sum(axis=1).replace(0, 1)
    R = R.fillna(0.0)
    if fill == "next_open":
        G = pd.DataFrame(gaps).reindex(dates).fillna(0.0)[R.columns]
        I1 = 1.0 + G
        I1 = I1 * pd.DataFrame(intras).reindex(dates).fillna(0.0)[R.columns]

    def earned(w: pd.DataFrame | pd.Series, cols: Any, rows: Any = slice(None)) -> Any:
        """What weights ``w`` (decided at each row) earn over the row's next bar."""
        if fill == "close":
            return w * R.loc[rows, cols]
        prev = w.shift(1).fillna(0.0)  # held until the fill at the next open
        return prev * G.loc[rows, cols] + w * I1.loc[rows, cols]

    out_ret = {}
    metrics = {}
    per_symbol: dict[str, dict[str, Any]] = {s: {} for s in rets} if per_symbol_metrics else {}
    for name in STRATEGIES:
        # a position is held across dates on which its symbol has no bar (an equity over
        # a weekend in a pooled crypto + equities book); zero outside its active range
        P = pd.DataFrame(pos[name]).reindex(dates).ffill().where(active, 0.0)[R.columns]
        W = P.div(n_active, axis=0)
        dW = W.diff().abs()
        dW.iloc[0] = W.iloc[0].abs()
        port = earned(W, R.columns).sum(axis=1) - cost * dW.sum(axis=1)
        out_ret[name] = port
        metrics[name] = trading_metrics(port, W, periods_per_year)
        for s in R.columns if per_symbol_metrics else ():
            m = active[s].to_numpy()
            p_s = P[s][m]
            d = p_s.diff().abs()
            d.iloc[0] = abs(p_s.iloc[0])
            r_s = earned(p_s, s, m) - cost * d
            per_symbol[s][name] = {
                k: v
                for k, v in trading_metrics(r_s, P[[s]][m], periods_per_year).items()
                if k in ("total_return", "sharpe", "max_drawdown")
            }
    return TradingResult(pd.DataFrame(out_ret), metrics, per_symbol)


# ------------------------------------------------------------------ walk-forward
@dataclass
class WalkForwardResult:
    oos: pd.DataFrame  # timestamp, symbol, fold, p, label, ret_next
    folds: list[dict[str, Any]]
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    trading: TradingResult  # filled at the next open, as the paper broker fills (headline)
    trading_close: TradingResult | None = None  # filled at the signal bar's close (optimistic)
    last_model: Any = None
    last_test: np.ndarray | None = field(default=None, repr=False)
    verdict: str = ""
    trading_periods_per_year: int = 252


def single_threaded(model: Any) -> Any:
    """``model`` with ``n_jobs=1`` where it has one (a random forest): its probabilities
    are then summed over the trees in one fixed order, the same bits whatever ``n_jobs``
    the fit used (a forest's trees do not depend on it)."""
    if "n_jobs" in model.get_params(deep=False):
        model.set_params(n_jobs=1)
    return model


def fit_fold(make_estimator: Callable[[], Any], X_train: np.ndarray, y_train: np.ndarray,
             X_test: np.ndarray) -> tuple[Any, np.ndarray]:
    """One fold: fit on the training rows, p(up) on the test rows. A top-level function of
    plain arguments, so joblib can run it in a worker process (loky, Dask)."""
    model = single_threaded(make_estimator().fit(X_train, y_train))
    return model, model.predict_proba(X_test)[:, 1]


def walk_forward(
    ds: Dataset,
    make_estimator: Callable[[], Any],
    *,
    folds: int,
    initial_train_fraction: float,
    embargo: int,
    threshold: float,
    cost_bps: float,
    sma_fast: int,
    sma_slow: int,
    on_fold: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> WalkForwardResult:
    """``on_fold(k)`` is called after each fold is fitted and scored (a progress hook).

    ``jobs > 1`` fits the folds at once through ``joblib.Parallel`` on the joblib backend
    in effect (the caller's :func:`research_lib.parallel.backend`); ``make_estimator`` must
    then be picklable (a ``functools.partial`` of a module-level function). The folds
    are scored in order either way: the same result as one after the other."""
    from joblib import Parallel, delayed

    splits = walk_forward_splits(ds, folds, initial_train_fraction, embargo)
    rows = ds.rows
    parts = []
    fold_info = []
    base_ll = []
    last_model = None
    last_test = None
    for f in splits:
        if len(np.unique(ds.y(f.train))) < 2:
            raise ValueError(f"fold {f.index}: training rows hold one class only")
    tasks = (delayed(fit_fold)(make_estimator, ds.X(f.train), ds.y(f.train), ds.X(f.test))
             for f in splits)
    fits = Parallel(n_jobs=jobs, return_as="generator")(tasks) if jobs > 1 else (
        fit_fold(make_estimator, ds.X(f.train), ds.y(f.train), ds.X(f.test)) for f in splits)
    for f, (model, p) in zip(splits, fits, strict=True):
        y_train = ds.y(f.train)
        part = rows.loc[f.test, ["timestamp", "symbol", "label", "ret_next", "gap_next",
                                 "intra_next"]].copy()
        part["p"] = p
        part["fold"] = f.index
        parts.append(part)
        if on_fold is not None:
            on_fold(f.index)
        lab = part["label"].notna().to_numpy()
        m = classification_metrics(part["label"].to_numpy()[lab], p[lab])
        base_rate = float(y_train.mean())
        y_test = part["label"].to_numpy()[lab]
        if len(y_test):
            base_ll.append(
                (
                    len(y_test),
                    log_loss(y_test.astype(int), np.full(len(y_test), base_rate), labels=[0, 1]),
                )
            )
        fold_info.append(
            {
                "fold": f.index,
                "train_rows": int(f.train.sum()),
                "train_end": str(rows.loc[f.train, "timestamp"].max().date()),
                "test_start": str(f.test_start.date()),
                "test_end": str(f.test_end.date()),
                "test_rows": int(f.test.sum()),
                "accuracy": m["accuracy"],
                "log_loss": m["log_loss"],
                "auc": m["auc"],
            }
        )
        last_model, last_test = model, f.test
    oos = pd.concat(parts, ignore_index=True)
    lab = oos["label"].notna().to_numpy()
    y = oos["label"].to_numpy()[lab].astype(int)
    metrics = classification_metrics(y, oos["p"].to_numpy()[lab])
    metrics["decision_threshold"] = threshold
    metrics["share_long"] = _r(float(np.mean(oos["p"].to_numpy() > threshold)))
    baselines = {
        "always_up_accuracy": _r(float(np.mean(y == 1))) if len(y) else None,
        # the better of always-up and always-down on the test rows (a strict bar)
        "majority_class_accuracy": _r(float(max(np.mean(y == 1), np.mean(y == 0))))
        if len(y)
        else None,
        "base_rate_log_loss": _r(
            sum(n * v for n, v in base_ll) / max(1, sum(n for n, _ in base_ll))
        ),
        "coin_flip_auc": 0.5,
    }
    trading, trading_close = (
        backtest(
            oos,
            ds.closes,
            threshold,
            cost_bps,
            ds.periods_per_year,
            sma_fast,
            sma_slow,
            per_symbol_metrics=len(ds.symbols) <= MAX_PER_SYMBOL,
            fill=fill,
        )
        for fill in FILLS
    )
    res = WalkForwardResult(
        oos,
        fold_info,
        metrics,
        baselines,
        trading,
        trading_close,
        last_model,
        last_test,
        trading_periods_per_year=ds.periods_per_year,
    )
    res.verdict = verdict(res)
    return res


def verdict(res: WalkForwardResult) -> str:
    """One honest paragraph: does the model beat the baselines out of sample?"""
    m, b, t = res.metrics, res.baselines, res.trading.metrics
    parts = []
    auc = m.get("auc")
    acc = m.get("accuracy")
    if auc is not None:
        edge = (
            "no better than a coin flip"
            if auc < 0.52
            else "a small edge"
            if auc < 0.55
            else "an edge"
        )
        parts.append(f"Out-of-sample AUC {auc:.3f} ({edge}; coin flip 0.5)")
    if acc is not None and b.get("majority_class_accuracy") is not None:
        maj = b["majority_class_accuracy"]
        cmp = "above" if acc > maj else "not above"
        parts.append(f"accuracy {acc:.3f}, {cmp} the majority-class guess {maj:.3f}")
    if m.get("log_loss") is not None and b.get("base_rate_log_loss") is not None:
        cmp = "better than" if m["log_loss"] < b["base_rate_log_loss"] else "no better than"
        parts.append(
            f"log loss {m['log_loss']:.4f}, {cmp} the base rate's {b['base_rate_log_loss']:.4f}"
        )
    tm = t["model"]
    years = tm.get("years") or max(tm["bars"], 1) / res.trading_periods_per_year
    se = float(np.sqrt((1.0 + 0.5 * (tm["sharpe"] or 0.0) ** 2) / years))
    sentence = (
        f"Acting on the signal after costs, filled at the next open as the paper broker "
        f"fills: return {tm['total_return']:+.1%}, "
        f"Sharpe {tm['sharpe']:.2f}, max drawdown {tm['max_drawdown']:.1%}"
    )
    cmps = []
    beaten_all = True
    for name in ("buy_and_hold", "always_flat", "sma_crossover"):
        o = t[name]
        if tm["sharpe"] is None or o["sharpe"] is None:
            continue
        better_sr = tm["sharpe"] > o["sharpe"]
        better_ret = tm["total_return"] > o["total_return"]
        if better_sr and better_ret:
            word = "beats"
        elif better_sr or better_ret:
            word = "mixed against"
            beaten_all = False
        else:
            word = "does NOT beat"
            beaten_all = False
        cmps.append(f"{word} {name} (Sharpe {o['sharpe']:.2f}, return {o['total_return']:+.1%})")
    sentence += "; " + "; ".join(cmps)
    if res.trading_close is not None:
        tc = res.trading_close.metrics["model"]
        sentence += (f" (filled at the signal bar's own close, which no broker can do, it would "
                     f"show return {tc['total_return']:+.1%}, Sharpe {tc['sharpe']:.2f})")
    bottom = (
        "It beats every baseline on both Sharpe and return"
        if beaten_all
        else "It does not beat every baseline"
    )
    noise = (
        f"a Sharpe ratio over {years:.1f} years has a standard error of about {se:.2f}, "
        "so differences smaller than that are noise"
    )
    return "; ".join(parts) + ". " + sentence + ". " + bottom + "; " + noise + "."
