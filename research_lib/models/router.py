"""Symbol -> asset class -> model, switched live by ``FLAG_ASSET_SPECIFIC_MODELS``.

* ``0`` (default): every symbol uses the universal model.
* ``1``: each symbol uses its class's model; when that model is missing or fails a check
  (path, checksum, ONNX validity) the universal model serves instead and
  ``fallback_reason`` says why.
* ``shadow``: the universal model decides; the class model predicts beside it; both logged.

The flag is read at every :meth:`Router.routes` and :meth:`Router.predict` call, so a flip
takes effect on the next decision without a restart. Models are loaded lazily, one
single-threaded onnxruntime session each, after their path and sha256 are checked; a file
that changes on disk is checked again before it is used. Each call stats every model it
uses once (following symlinks): while the file it reaches is the very file that was
checked (same device, inode, size and mtime), the checked model serves; anything else runs
every check again (path inside ``models/`` after symlinks, sha256, ONNX load).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import AssetsConfig, load_assets, models_dir
from ..errors import ConfigError, ModelError, RegistryError
from ..features import N_FEATURES
from ..flags import asset_specific_mode, routing_mode
from ..model_intervals import missing_model
from ..telemetry import get_logger, log_event
from .onnx import OnnxModel, sha256_bytes
from .registry import ModelStatus, display_path, model_path, status_for_sha

log = get_logger("models.router")

MODE_WORDS = {"0": "DISABLED", "1": "ENABLED", "shadow": "SHADOW"}
UNCLASSIFIED = "unclassified"
NO_MODEL = "(none)"  # a route's model when no model is named for the session's interval


@dataclass(frozen=True)
class Route:
    symbol: str
    asset_class: str
    model: str  # the model whose probability decides
    mode: str  # "0" | "1" | "shadow"
    fallback_reason: str | None
    shadow_model: str | None
    checksum_ok: bool  # the deciding model passed its path, checksum and load checks


@dataclass(frozen=True, slots=True)
class Prediction:
    symbol: str
    asset_class: str
    model: str
    probability: float | None  # None: no signal (non-finite input/output, model failure)
    shadow_model: str | None = None
    shadow_probability: float | None = None
    fallback_reason: str | None = None


@dataclass
class PredictionColumns:
    """:class:`Prediction` fields of many rows as arrays (NaN: no probability; None: no
    shadow model, no reason)."""

    asset_class: np.ndarray
    model: np.ndarray
    probability: np.ndarray
    shadow_model: np.ndarray
    shadow_probability: np.ndarray
    fallback_reason: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[PredictionColumns]) -> PredictionColumns:
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("asset_class", "model", "probability", "shadow_model",
                               "shadow_probability", "fallback_reason")))

    def objects(self, symbols: Sequence[str]) -> list[Prediction]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else v

        return [Prediction(s, c, m, num(p), sm, num(sp) if sm else None, r)
                for s, c, m, p, sm, sp, r in zip(
                    symbols, self.asset_class.tolist(), self.model.tolist(),
                    self.probability.tolist(), self.shadow_model.tolist(),
                    self.shadow_probability.tolist(), self.fallback_reason.tolist(),
                    strict=True)]


@dataclass
class _Slot:
    key: tuple
    status: ModelStatus
    model: OnnxModel | None


class Router:
    """Routes symbols to models and predicts p(up) in one onnxruntime call per model."""

    def __init__(self, assets: AssetsConfig | None = None, models_dir: Path | None = None,
                 mode: str | int | None = None, interval: str | None = None) -> None:
        """``mode``: the routing flag fixed for this router (``0``, ``1``, ``"shadow"``);
        None reads ``FLAG_ASSET_SPECIFIC_MODELS`` at every call. ``interval``: the
        session's bar interval (a model whose card records another one is unusable)."""
        self._mode = None if mode is None else routing_mode(mode)
        self._assets = assets
        # a session's bar interval: a model whose card records another one is unusable
        # (state "interval"), so a class model falls back to universal or the start stops
        self._interval = interval
        self._models_dir = Path(models_dir) if models_dir is not None else None
        self._slots: dict[str, _Slot] = {}
        self._classes: dict[str, tuple[str, str | None]] = {}
        # name -> (assets, folder, the path as configured, its stat identity, slot key):
        # the file last checked for ``name``, for the one-stat fast path of _load
        self._checked: dict[str, tuple[AssetsConfig, Path, str, tuple, tuple]] = {}
        self._lock = threading.RLock()
        self._view: tuple[AssetsConfig, AssetsConfig] | None = None  # (assets, its view)

    # -- configuration ------------------------------------------------------------
    def mode(self) -> str:
        """The routing flag now: the one this router was given, else the environment's."""
        return self._mode if self._mode is not None else asset_specific_mode()

    @property
    def assets(self) -> AssetsConfig:
        if self._assets is None:
            self._assets = load_assets()
        return self._assets

    @property
    def models_dir(self) -> Path:
        if self._models_dir is None:
            self._models_dir = models_dir()
        return self._models_dir

    def set_assets(self, assets: AssetsConfig) -> None:
        """Hot reload: new classes, overrides and model entries apply at the next call.
        Loaded sessions are kept only for entries whose path and sha256 are unchanged."""
        with self._lock:
            self._assets = assets
            self._classes.clear()
            self._checked.clear()
        log_event(log, "router_assets_reloaded", source=assets.source_path)

    # -- models -------------------------------------------------------------------
    def _classify(self, symbol: str) -> tuple[str, str | None]:
        hit = self._classes.get(symbol)
        if hit is None:
            try:
                hit = (self.assets.classify(symbol), None)
            except ConfigError as exc:
                hit = (UNCLASSIFIED, str(exc))
            self._classes[symbol] = hit
        return hit

    def status(self, name: str) -> ModelStatus:
        """Path, checksum and load status of model ``name`` (loads it if needed)."""
        return self._load(name)[1]

    def model(self, name: str) -> OnnxModel | None:
        """The loaded, checked model ``name``, or None when it is unusable (see status)."""
        return self._load(name)[0]

    def statuses(self) -> dict[str, ModelStatus]:
        return {name: self.status(name) for name in self.assets.models}

    def _load(self, name: str) -> tuple[OnnxModel | None, ModelStatus]:
        with self._lock:
            assets, folder = self.assets, self.models_dir
            seen = self._checked.get(name)
            if seen is not None and seen[0] is assets and seen[1] == folder:
                try:
                    st_now = os.stat(seen[2])  # follows symlinks to the file they reach now
                except OSError:
                    pass  # gone or unreadable: the full checks say what
                else:
                    slot = self._slots.get(name)
                    if (slot is not None and slot.key == seen[4] and (
                            st_now.st_dev, st_now.st_ino, st_now.st_size,
                            st_now.st_mtime_ns) == seen[3]):
                        return slot.model, slot.status
            shown = display_path(name, assets, folder)
            if name not in assets.models:
                st = ModelStatus(name, shown, "invalid", f"model {name!r} is not under models")
                return None, st
            entry = assets.models[name]
            try:
                path = model_path(assets, name, folder)
            except RegistryError as exc:
                return self._remember(
                    name,
                    ("refused", entry.path),
                    ModelStatus(name, shown, "refused", str(exc)),
                    None,
                )
            try:
                stt = path.stat()
            except FileNotFoundError:
                return self._remember(
                    name,
                    ("missing", str(path)),
                    ModelStatus(name, shown, "missing", f"model file {shown} missing", path),
                    None,
                )
            key = (str(path), entry.sha256, stt.st_mtime_ns, stt.st_size, stt.st_ino)
            self._checked[name] = (assets, folder, str(folder / entry.path),
                                   (stt.st_dev, stt.st_ino, stt.st_size, stt.st_mtime_ns), key)
            slot = self._slots.get(name)
            if slot is not None and slot.key == key:
                return slot.model, slot.status
            try:
                data = path.read_bytes()
            except OSError as exc:
                st = ModelStatus(
                    name, shown, "invalid", f"model file {shown} unreadable: {exc}", path
                )
                return self._remember(name, key, st, None)
            st = status_for_sha(assets, name, shown, path, sha256_bytes(data))
            if not st.ok:
                return self._remember(name, key, st, None)
            if self._interval is not None:
                from .card_interval import interval_problem

                why = interval_problem(name, path, shown, self._interval)
                if why is not None:
                    st = ModelStatus(name, shown, "interval", why, path, st.sha256)
                    return self._remember(name, key, st, None)
            try:
                model = OnnxModel(path, data=data)
            except ModelError as exc:
                st = ModelStatus(name, shown, "invalid", str(exc), path, st.sha256)
                return self._remember(name, key, st, None)
            return self._remember(name, key, st, model)

    def _remember(self, name: str, key: tuple, st: ModelStatus, model: OnnxModel | None):
        old = self._slots.get(name)
        if old is None or old.key != key:
            self._slots[name] = _Slot(key, st, model)
            if st.ok:
                log_event(log, "model_loaded", model=name, path=st.display, sha256=st.sha256)
            else:
                log_event(
                    log,
                    "model_unusable",
                    level=logging.WARNING,
                    model=name,
                    state=st.state,
                    reason=st.problem,
                )
        return model, st

    # -- routing ------------------------------------------------------------------
    def _loaded(self, name: str, memo: dict | None) -> tuple[OnnxModel | None, ModelStatus]:
        """``_load`` once per call of routes()/predict() (a file is re-checked per call)."""
        if memo is None:
            return self._load(name)
        if name not in memo:
            memo[name] = self._load(name)
        return memo[name]

    def _route(self, symbol: str, mode: str, memo: dict | None = None) -> Route:
        cls, class_error = self._classify(symbol)
        model, reason, shadow, ok = self._class_route(cls, class_error, mode, memo)
        return Route(symbol, cls, model, mode, reason, shadow, ok)

    def view(self) -> AssetsConfig:
        """The assets config with the models named for this router's interval
        (:meth:`AssetsConfig.for_interval`; no interval: as configured, 1d)."""
        a = self.assets
        if self._interval is None:
            return a
        seen = self._view
        if seen is None or seen[0] is not a:
            seen = self._view = (a, a.for_interval(self._interval))
        return seen[1]

    def _class_route(self, cls: str, class_error: str | None, mode: str,
                     memo: dict | None) -> tuple[str, str | None, str | None, bool]:
        """(deciding model, fallback reason, shadow model, usable) for one asset class:
        every symbol of the class routes the same way."""
        view = self.view()
        uni = view.universal_model
        class_model = uni if class_error else view.asset_class(cls).model
        model, shadow, reason = uni, None, None
        if class_model is None and not class_error and mode != "0" and uni is not None:
            why = missing_model(view.interval, f"classes.{cls}.model",
                                view.asset_class(cls).intervals)
            reason = why if mode == "1" else f"shadow unavailable: {why}"
        elif class_error and mode != "0":
            reason = class_error
        elif mode == "1" and class_model != uni:
            st = self._loaded(class_model, memo)[1]
            if st.ok:
                model = class_model
            else:
                reason = st.problem
        elif mode == "shadow" and class_model != uni:
            st = self._loaded(class_model, memo)[1]
            if st.ok:
                shadow = class_model
            else:
                reason = f"shadow {class_model} unavailable: {st.problem}"
        if model is None:  # no universal model for this interval: nothing can decide
            why = missing_model(view.interval, "universal_model", view.universal_intervals)
            return NO_MODEL, (f"{reason}; {why}" if reason else why), None, False
        ust = self._loaded(model, memo)[1]
        if not ust.ok:
            extra = f"no usable model: {ust.problem}"
            reason = f"{reason}; {extra}" if reason else extra
        return model, reason, shadow, ust.ok

    def routes(self, symbols: Sequence[str], mode: str | None = None) -> list[Route]:
        """Where each symbol goes now (reads the flag unless ``mode`` is given)."""
        m = mode if mode is not None else self.mode()
        if m not in MODE_WORDS:
            raise ConfigError(f"routing mode must be 0, 1 or shadow, got {m!r}")
        memo: dict = {}
        return [self._route(s, m, memo) for s in symbols]

    # -- prediction ---------------------------------------------------------------
    def _run(
        self,
        name: str,
        X32: np.ndarray,
        rows: np.ndarray,
        out: np.ndarray,
        why: dict[int, str],
        memo: dict,
    ) -> None:
        if len(rows) == 0:
            return
        model, st = self._loaded(name, memo)
        if model is None:
            for i in rows:
                why[int(i)] = f"model {name} unusable: {st.problem}"
            return
        try:
            every = len(rows) == len(X32)  # every row (rows is sorted and unique): no copies
            if every:
                out[:] = model.predict_proba_up(X32)
            else:
                out[rows] = model.predict_proba_up(X32[rows])
            # rows that were not a probability pair are NaN (no signal): say why
            for r, text in (getattr(model, "output_problems", None) or {}).items():
                why[r if every else int(rows[r])] = f"MODEL_OUTPUT_INVALID: {text}"
        except ModelError as exc:
            log_event(log, "inference_failed", level=logging.ERROR, model=name, error=str(exc))
            for i in rows:
                why[int(i)] = f"inference failed: {exc}"

    def predict(self, symbols: Sequence[str], X: np.ndarray) -> list[Prediction]:
        """p(up) per row of ``X`` (shape ``(len(symbols), N_FEATURES)``). Reads the flag now;
        one onnxruntime call per model; rows with NaN/inf in or out are no signal (None).
        The objects of :meth:`predict_columns` (one implementation)."""
        return self.predict_columns(symbols, X).objects(symbols)

    def predict_columns(self, symbols: Sequence[str], X: np.ndarray) -> PredictionColumns:
        """:meth:`predict` as columns, no object per row (the fast replay's batch pass)."""
        X = np.asarray(X)
        n = len(symbols)
        if X.ndim != 2 or X.shape != (n, N_FEATURES):
            raise ModelError(
                f"predict expected X of shape ({n}, {N_FEATURES}) for {n} symbols, got {X.shape}"
            )
        if X.dtype.kind != "f":  # a floating dtype (np.issubdtype(X.dtype, np.floating))
            raise ModelError(f"predict expected float64 features, got dtype {X.dtype}")
        mode = self.mode()
        memo: dict = {}
        by_class: dict[tuple[str, str | None], tuple[str, str | None, str | None, bool]] = {}
        by_symbol: dict[str, tuple[str, str, str | None, str | None]] = {}
        routes = []  # per symbol: (asset class, model, fallback reason, shadow model)
        for s in symbols:
            r = by_symbol.get(s)
            if r is None:
                c = self._classify(s)
                cr = by_class.get(c)
                if cr is None:
                    cr = by_class[c] = self._class_route(c[0], c[1], mode, memo)
                r = by_symbol[s] = (c[0], cr[0], cr[1], cr[2])
            routes.append(r)
        with np.errstate(over="ignore", invalid="ignore"):
            X32 = X.astype(np.float32)
        finite_in = np.isfinite(X32).all(axis=1)
        prob = np.full(n, np.nan)
        sprob = np.full(n, np.nan)
        why: dict[int, str] = {}
        swhy: dict[int, str] = {}
        idx = np.arange(n)
        cls_a, model_a, reason_a, shadow_a = (np.empty(n, dtype=object) for _ in range(4))
        if n:
            cls_a[:], model_a[:], reason_a[:], shadow_a[:] = zip(*routes, strict=True)
        names = dict.fromkeys(model_a.tolist())
        for name in names:
            rows = idx[finite_in if len(names) == 1 else (model_a == name) & finite_in]
            self._run(name, X32, rows, prob, why, memo)
        has_shadow = np.array([bool(m) for m in shadow_a.tolist()], dtype=bool)
        for name in dict.fromkeys(m for m in shadow_a[has_shadow].tolist()):
            rows = idx[(shadow_a == name) & finite_in]
            self._run(name, X32, rows, sprob, swhy, memo)
        raw, sraw = prob.copy(), sprob.copy()  # what the logs show of a non-finite output
        prob[~np.isfinite(prob)] = np.nan
        sprob[~has_shadow | ~np.isfinite(sprob)] = np.nan
        # the logs and reasons of the rows with no signal or a shadow model: few rows
        sym = list(symbols)
        for i in np.flatnonzero(np.isnan(prob) | has_shadow).tolist():
            p = None if math.isnan(prob[i]) else float(prob[i])
            if p is None:
                self._log_no_signal(sym[i], model_a[i], bool(finite_in[i]), why.get(i),
                                    raw[i])
            if has_shadow[i]:
                sp = None if math.isnan(sprob[i]) else float(sprob[i])
                if sp is None:
                    self._log_no_signal(sym[i], shadow_a[i], bool(finite_in[i]), swhy.get(i),
                                        sraw[i], shadow=True)
                log_event(log, "shadow_prediction", symbol=sym[i], asset_class=cls_a[i],
                          model=model_a[i], probability=p, shadow_model=shadow_a[i],
                          shadow_probability=sp)
            if (p is None and reason_a[i] is None
                    and why.get(i, "").startswith("MODEL_OUTPUT_INVALID")):
                reason_a[i] = why[i]  # the model ran and its output was refused: say why
        shadow_a[~has_shadow] = None
        return PredictionColumns(cls_a, model_a, prob, shadow_a, sprob, reason_a)

    def _log_no_signal(
        self,
        symbol: str,
        model: str,
        finite_input: bool,
        why: str | None,
        value: float,
        shadow: bool = False,
    ) -> None:
        if not finite_input:  # warm-up and gaps: expected, quiet
            level, reason = logging.DEBUG, "non-finite input features"
        else:
            level, reason = logging.WARNING, why or f"non-finite model output {value!r}"
        log_event(log, "no_signal", level=level, symbol=symbol, model=model, reason=reason,
                  shadow=shadow)


# --------------------------------------------------------------------------- cli
EXAMPLE_OPTION = "SPY251219C00600000"  # an OCC contract symbol, to show the options route


def default_symbols() -> list[str]:
    from ..data import SampleSource

    return SampleSource().symbols() + [EXAMPLE_OPTION]


def symbols_or_default(symbols: str | Sequence[str] | None) -> list[str]:
    """``"SPY,BTC-USD"`` or a list, or None for :func:`default_symbols`."""
    from ..config import parse_symbols

    return parse_symbols(symbols) if symbols else default_symbols()


def routing_table(router: Router, symbols: Sequence[str], mode: str | None = None) -> list[dict]:
    """Rows for the routing table: symbol, class, model, checksum status, fallback reason
    (and the shadow model in shadow mode)."""
    rows = []
    for r in router.routes(symbols, mode):
        row = {
            "symbol": r.symbol,
            "class": r.asset_class,
            "model": r.model,
            "checksum": ("no model" if r.model == NO_MODEL
                         else router.status(r.model).checksum),
            "shadow": r.shadow_model,
            "fallback": r.fallback_reason,
        }
        rows.append(row)
    return rows


def header(mode: str) -> str:
    return f"Asset-specific model routing {MODE_WORDS[mode]}"


def format_table(rows: list[dict], mode: str) -> str:
    cols = (
        ["symbol", "class", "model", "checksum"]
        + (["shadow"] if mode == "shadow" else [])
        + ["fallback"]
    )
    text = [[str(r[c]) if r[c] is not None else "-" for c in cols] for r in rows]
    widths = [
        max(len(c), *(len(t[i]) for t in text)) if text else len(c) for i, c in enumerate(cols)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in text]
    return "\n".join(lines)


@dataclass(frozen=True)
class RoutingReport:
    """``research-lib routing``: where each symbol goes under the flag's mode, and the state
    of every model. :meth:`text` is the table it prints, :meth:`to_dict` its ``--json``."""

    mode: str
    symbols: list[str]
    rows: list[dict]
    statuses: dict[str, ModelStatus]
    router: Router = field(repr=False, compare=False)

    @property
    def usable(self) -> bool:
        """Every routed model passed its checksum (else the command exits 1)."""
        return all(r["checksum"] == "ok" for r in self.rows)

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "routing": MODE_WORDS[self.mode],
            # routed again (each file re-checked), as the JSON has always shown
            "routes": [asdict(r) for r in self.router.routes(self.symbols, self.mode)],
            "models": {
                k: {"state": v.state, "problem": v.problem, "path": v.display}
                for k, v in self.statuses.items()
            },
        }

    def text(self) -> str:
        return "\n".join([
            f"{header(self.mode)} (FLAG_ASSET_SPECIFIC_MODELS={self.mode})",
            format_table(self.rows, self.mode),
            "models: " + ", ".join(f"{k} {v.checksum}" for k, v in self.statuses.items()),
        ])


def routing_report(symbols: str | Sequence[str] | None = None,
                   interval: str | None = None) -> RoutingReport:
    """The routing of ``symbols`` (default: the sample's and an option) under the flag now,
    for a session of ``interval`` bars (None: the models as configured, 1d, no card check)."""
    mode = asset_specific_mode()
    symbols = symbols_or_default(symbols)
    router = Router(interval=interval)
    rows = routing_table(router, symbols, mode)
    if interval is None:
        return RoutingReport(mode, symbols, rows, router.statuses(), router)
    view = router.view()  # the models named for this interval (the others cannot serve it)
    named = [view.universal_model, *(c.model for c in view.classes)]
    return RoutingReport(mode, symbols, rows,
                         {n: router.status(n) for n in dict.fromkeys(named) if n}, router)
