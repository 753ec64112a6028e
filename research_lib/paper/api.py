"""The notebook face of :func:`research_lib.run_session`: your frames, your model, results
as DataFrames, nothing to edit on disk and nothing changed in the process.

``run_session`` takes, beside every :class:`~research_lib.paper.spec.SessionSpec` field:

* ``frames=``: a DataFrame with ``symbol="SPY"``, or a dict ``{"SPY": df, ...}``. Each
  frame is ``open, high, low, close, volume`` (column names in any case) on a tz-aware
  DatetimeIndex (converted to UTC), and is checked like any source's: an empty frame,
  MultiIndex or missing columns, a naive index, duplicate or unordered timestamps are
  refused before any run folder exists; bad values (NaN, spikes, stale bars) go through
  the bar gate and the data findings like the sample's. ``symbols=`` may pick some of them.
* ``model=``: a registry name or ``"baseline:..."`` (as ``--model``); a model object
  meeting :class:`research_lib.signal_model.SignalModel` (subclass
  :class:`~research_lib.signal_model.ModelBase`), optionally with its ``train_window=
  (start, end)``; or the path of an ONNX file written by ``research-lib train`` with its
  card (``card=``, default the ``.json`` beside it): the file's sha256 must be the card's,
  the card must list the package's features and a passed parity check, and nothing is
  pinned in ``config/assets.yaml``. The path is read once (relative paths from the working
  directory, as ``open()`` reads them); the bytes checked are the bytes served.
* ``flag=0|1|"shadow"``: the routing flag for the registry's router (``model=None``), in
  place of ``FLAG_ASSET_SPECIFIC_MODELS``; refused with any other model (it would change
  nothing).
* ``risk={"max_position_pct": 0.1}``: risk limits over ``config/risk.yaml``'s, checked as
  the file is (:mod:`research_lib.config_overrides`).

The result's ``equity``, ``trades`` (fills), ``positions`` and ``decisions`` are DataFrames
read from the run's ledger (:func:`research_lib.ledger_read.read_run`), and
``summary["sample"]`` says whether the deciding model was trained on the replayed bars.

Example (runs offline on the shipped sample)::

    import research_lib as rl
    frames = rl.load(["SPY", "QQQ"], start="2014-01-01", end="2018-12-31")
    res = rl.run_session(frames=frames, model="models/equities_v1.onnx",
                         risk={"max_position_pct": 0.1}, run_dir="runs/notebook")
    res.sample["stamp"]         # 'OUT-OF-SAMPLE': the last 2 years, after its training
    res.equity["equity"].plot()
    res.trades.tail()
    early = rl.run_session(frames=frames, model="models/equities_v1.onnx",
                           start="2015-01-01", run_dir="runs/notebook")
    early.sample["stamp"], early.sample["in_sample_decisions"]   # ('IN-SAMPLE', 504)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import Prediction
from ..errors import ConfigError, ModelError
from ..models.windows import TrainWindow, declared_window
from ..signal_model import ModelBase, SignalModel

# keywords only the notebook API takes (the rest are SessionSpec fields)
NOTEBOOK_ONLY = ("frames", "symbol", "card", "train_window")
_OHLCV = ("open", "high", "low", "close", "volume")


# ------------------------------------------------------------------------ frames
def _normalised(sym: str, df: Any) -> Any:
    """One frame checked like any source's and shaped like one (float64 OHLCV, UTC)."""
    import pandas as pd

    from ..data.source_base import finish_frame
    from .feeds import _check_frame

    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"frames[{sym!r}] must be a pandas DataFrame, got "
                          f"{type(df).__name__}")
    out = df.copy()
    if not isinstance(out.columns, pd.MultiIndex):
        lower = {c: c.lower() for c in out.columns if isinstance(c, str) and c.lower() in _OHLCV}
        if len(set(lower.values())) == len(lower):  # "Close" and "close" both: left as is
            out = out.rename(columns=lower)
    if isinstance(out.index, pd.DatetimeIndex) and out.index.tz is not None:
        out.index = out.index.tz_convert("UTC")
    _check_frame(sym, out)  # empty, shape, naive index, duplicates, order: refused here
    attrs = dict(df.attrs)
    return finish_frame(out, symbol=sym, source="frames", served_as=attrs.get("served_as"),
                        note=attrs.get("proxy_note") or None,
                        adjustment=str(attrs.get("adjustment", "unknown")),
                        extra={k: v for k, v in attrs.items()
                               if k in ("calendar", "close_only")})


def frames_by_symbol(frames: Any, symbol: str | None) -> dict[str, Any]:
    """``frames`` (one DataFrame with ``symbol``, or a mapping symbol -> DataFrame) as
    checked frames by symbol; every misuse is a ConfigError naming the argument."""
    import pandas as pd

    if isinstance(frames, pd.DataFrame):
        if not isinstance(symbol, str) or not symbol.strip():
            raise ConfigError("frames= is one DataFrame: name its symbol with symbol='SPY' "
                              "(or pass a dict {'SPY': df})")
        return {symbol.strip(): _normalised(symbol.strip(), frames)}
    if symbol is not None:
        raise ConfigError(f"symbol={symbol!r} names a single DataFrame; frames= is a "
                          f"{type(frames).__name__}: drop symbol= (a dict names its symbols)")
    if not isinstance(frames, Mapping):
        raise ConfigError(f"frames= must be a DataFrame or a dict symbol -> DataFrame, got "
                          f"{type(frames).__name__}")
    if not frames:
        raise ConfigError("frames= is an empty dict; pass at least one symbol's DataFrame")
    out = {}
    for sym, df in frames.items():
        if not isinstance(sym, str) or not sym.strip():
            raise ConfigError(f"frames= key {sym!r} must be a ticker string")
        out[sym.strip()] = _normalised(sym.strip(), df)
    return out


# ------------------------------------------------------------------------ models
def _label(model: Any) -> str:
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


class NotebookModel(ModelBase):
    """A model object given to ``run_session``, passed through unchanged (every protocol
    call goes to it), with the label the summary shows and its training window."""

    def __init__(self, inner: Any, train_window: Any = None) -> None:
        if not isinstance(inner, SignalModel):
            missing = [a for a in ("needs_features", "warm", "observe", "predict", "set_assets")
                       if not hasattr(inner, a)]
            raise ConfigError(
                f"model= {type(inner).__name__} does not meet the SignalModel protocol (no "
                f"{', '.join(missing)}); subclass research_lib.signal_model.ModelBase and "
                "write predict(symbols, X)")
        self.inner = inner
        self.needs_features = bool(inner.needs_features)
        self.session_label = _label(inner)
        self.train_window = (declared_window(inner) if train_window is None else
                             TrainWindow.of(*_pair(train_window), what="train_window="))

    def warm(self, symbols: Sequence[str]) -> None:
        return self.inner.warm(symbols)

    def observe(self, rows: np.ndarray, close: np.ndarray) -> None:
        return self.inner.observe(rows, close)

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Any]:
        return self.inner.predict(symbols, X)

    def set_assets(self, assets: Any, classes: dict[str, str]) -> None:
        return self.inner.set_assets(assets, classes)


def _pair(value: Any) -> tuple[Any, Any]:
    try:
        start, end = value
    except (TypeError, ValueError):
        raise ConfigError(f"train_window= must be (start, end), e.g. ('2010-01-01', "
                          f"'2015-12-31'), got {value!r}") from None
    return start, end


class OnnxCardModel(ModelBase):
    """An ONNX file from ``research-lib train`` served beside no registry: its sha256 must
    be the one its card records, the card must list the package's features (in order) and
    a passed parity check. It decides for every symbol of the session."""

    needs_features = True

    def __init__(self, path: str | Path, card: str | Path | None = None) -> None:
        from .. import features
        from ..models.card import card_path_for, read_card
        from ..models.onnx import OnnxModel, sha256_bytes
        from ..models.windows import window_from_card

        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ModelError(f"model= {str(path)!r}: cannot read it ({exc.strerror or exc}); "
                             "pass the path of an ONNX file written by research-lib train"
                             ) from None
        card_file = Path(card) if card is not None else card_path_for(p)
        doc = read_card(card_file)
        actual, pinned = sha256_bytes(data), doc.get("sha256")
        if actual != pinned:
            raise ModelError(
                f"model= {p}: its sha256 is {actual}, but its card {card_file} records "
                f"{pinned}; the file is not the model the card describes (retrained or "
                "changed since): pass the card written with it, or retrain")
        names = (doc.get("features") or {}).get("names")
        if names != list(features.FEATURES):
            raise ModelError(f"model= {p}: its card {card_file} lists features {names}, not "
                             f"this package's {list(features.FEATURES)}; retrain it with "
                             "research-lib train")
        parity = doc.get("parity") or {}
        if parity.get("passed") is not True:
            raise ModelError(f"model= {p}: its card {card_file} records no passed parity "
                             "check (scikit-learn vs onnxruntime); do not serve it")
        self.model = OnnxModel(p, data=data)
        self.session_label = str(doc.get("name") or p.stem)
        self.asset_class = str(doc.get("asset_class") or "")
        self.train_window = window_from_card(doc)
        self.file_digests = {self.session_label: actual}

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Any]:
        with np.errstate(over="ignore", invalid="ignore"):
            X32 = np.asarray(X).astype(np.float32)
        p = self.model.predict_proba_up(X32)
        why = getattr(self.model, "output_problems", {}) or {}
        out = []
        for i, s in enumerate(symbols):
            v = float(p[i])
            ok = math.isfinite(v)
            reason = None if ok else (f"MODEL_OUTPUT_INVALID: {why[i]}" if i in why
                                      else f"non-finite model output {v!r}")
            out.append(Prediction(s, self.asset_class, self.session_label, v if ok else None,
                                  None, None, reason))
        return out


def _is_onnx_path(model: Any) -> bool:
    return isinstance(model, str | Path) and str(model).lower().endswith(".onnx")


# ------------------------------------------------------------------------ keywords
def notebook_kwargs(spec: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``run_session``'s keywords with the notebook ones (``frames``, ``symbol``, a model
    object or ONNX path, ``card``, ``train_window``) turned into SessionSpec fields (a
    FramesSource, the model as ``router``); the others are returned as given. Checks that
    ``flag`` goes with the registry's router only."""
    def given(name: str) -> Any:
        if kwargs.get(name) is not None:
            return kwargs[name]
        return getattr(spec, name, None) if spec is not None else None

    model = kwargs.get("model")
    custom = model is not None and (not isinstance(model, str) or _is_onnx_path(model))
    flag = given("flag")
    chosen = given("model") if not custom else model
    if flag is not None and (chosen is not None or given("router") is not None):
        raise ConfigError(
            f"flag={flag!r} chooses among the registry's models (model=None); with "
            f"model={chosen if chosen is not None else given('router')!r} it would change "
            "nothing: drop flag, or model")
    if not custom and not any(kwargs.get(k) is not None for k in NOTEBOOK_ONLY):
        return {k: v for k, v in kwargs.items() if k not in NOTEBOOK_ONLY}
    kw = {k: v for k, v in kwargs.items() if k not in NOTEBOOK_ONLY}
    if kwargs.get("frames") is not None:
        if given("source") is not None:
            raise ConfigError(f"frames= and source={given('source')!r} both name the data; "
                              "pass one")
        if given("mode") == "live":
            raise ConfigError("frames= is history and never gets a new bar: replay it (drop "
                              "mode='live'), or run live on source='yfinance'")
        from ..data.frames import FramesSource

        named = frames_by_symbol(kwargs["frames"], kwargs.get("symbol"))
        kw["source"] = FramesSource(named, name="frames")
        if not given("resume"):
            picked = given("symbols")
            if picked:
                picked = [picked] if isinstance(picked, str) else list(picked)
                unknown = [s for s in picked if s not in named]
                if unknown:
                    raise ConfigError(f"symbols= {unknown} are not in frames= "
                                      f"({', '.join(named)}); pick among them")
            else:
                kw["symbols"] = list(named)
    elif kwargs.get("symbol") is not None:
        raise ConfigError("symbol= names the symbol of frames= (one DataFrame); for the "
                          "sample or another source pass symbols=[...]")
    if not custom:
        for k in ("card", "train_window"):
            if kwargs.get(k) is not None:
                raise ConfigError(f"{k}= goes with model= given as an ONNX path or a model "
                                  f"object, not model={model!r}")
        return kw
    if given("router") is not None:
        raise ConfigError("model= and router= both give the model; pass one")
    if _is_onnx_path(model):
        if kwargs.get("train_window") is not None:
            raise ConfigError("train_window= is the card's for an ONNX model "
                              "(training_window); drop train_window=")
        kw["router"] = OnnxCardModel(model, kwargs.get("card"))
    else:
        if kwargs.get("card") is not None:
            raise ConfigError("card= goes with model= given as an ONNX path")
        if isinstance(model, str | Path):
            raise ConfigError(f"model={model!r} is neither a registry name, a baseline nor "
                              "an ONNX path (*.onnx)")
        kw["router"] = NotebookModel(model, kwargs.get("train_window"))
    kw["model"] = None
    return kw

