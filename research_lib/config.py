"""Frozen, typed settings for assets, risk and the session; validated when built.

Every file is read with ``yaml.safe_load`` (a ``!!python/object`` tag is refused).
Errors name the file, the key, the value and the fix:
``config/risk.yaml: risk.max_position_pct must be in (0, 1], got 1.5``.
:class:`ConfigWatcher` reloads a file when it changes; an invalid edit keeps the previous
config and logs the error.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

import yaml

from .errors import ConfigError, RegistryError
from .model_intervals import interval_key, model_for, parse_model_map
from .telemetry import get_logger, log_event

log = get_logger("config")

T = TypeVar("T")

PACKAGE_ROOT = Path(__file__).resolve().parent


def project_root() -> Path:
    """The folder holding ``config/``, ``models/`` and ``notebooks/``: the project home,
    else the packaged defaults (the rule: :mod:`research_lib.project`)."""
    from .project import project_root as root

    return root()


def config_dir() -> Path:
    return project_root() / "config"


def models_dir() -> Path:
    return project_root() / "models"


# --------------------------------------------------------------------------- YAML
def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load`` only; errors name the file."""
    p = Path(path)
    try:
        # a fifo blocks the read (the running step) until someone writes; /dev/zero never ends
        if not stat.S_ISREG(os.stat(p).st_mode) and not stat.S_ISDIR(os.stat(p).st_mode):
            raise ConfigError(f"{p}: not a regular file (a fifo or device); make it a "
                              "plain YAML file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: file not found; create it or pass the right path") from exc
    except OSError as exc:  # unreadable, a folder, ...: name the file and the OS reason
        raise ConfigError(f"{p}: cannot read it ({exc.strerror or exc}); check that it is a "
                          "file you can read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc}); save it as UTF-8 YAML") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{p}: not valid YAML ({exc.__class__.__name__}: {exc}); only plain YAML is "
            "accepted (tags such as !!python/object are refused)"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


# ------------------------------------------------------------------ field checking
def _rng(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False):
    def check(v: float) -> str | None:
        bad = (
            (lo is not None and (v <= lo if lo_open else v < lo))
            or (hi is not None and (v >= hi if hi_open else v > hi))
        )
        if bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            return f"must be in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
        return None

    return check


def _kill_path(v: str) -> str | None:
    if not v.strip():
        return "must name a file (the kill switch cannot be turned off; e.g. kill.flag)"
    if "\x00" in v:
        return "must not contain a NUL byte"
    if "$" in v:
        return "must not name an environment variable (not expanded; write the path out)"
    return None


def _f(default: Any, check: Callable[[Any], str | None] | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "doc": doc})


def _coerce(section: str, name: str, ftype: Any, value: Any) -> Any:
    where = f"{section}.{name}"
    if ftype in ("float", float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):  # .nan passes every range check: refuse it here
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if ftype in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return int(value)
    if ftype in ("bool", bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if ftype in ("str", str):
        if not isinstance(value, str):
            raise ConfigError(
                f"{where} must be a string, got {value!r} ({type(value).__name__}); "
                "quote it in YAML"
            )
        return value
    return value


def build_section(cls: type[T], data: Mapping[str, Any] | None, section: str) -> T:
    """Build a frozen dataclass from a mapping: unknown keys, wrong types and out-of-range
    values are errors naming ``section.key``, the value and what is allowed."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {section}.{unknown[0]}; allowed keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        value = _coerce(section, name, f.type, data[name])
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{section}.{name} {problem}, got {data[name]!r}")
        kwargs[name] = value
    return cls(**kwargs)


# -------------------------------------------------------------------------- risk
@dataclass(frozen=True)
class RiskLimits:
    """Hard pre-trade and portfolio limits (``config/risk.yaml``, section ``risk``)."""

    max_position_pct: float = _f(0.15, _rng(0, 1, lo_open=True), "largest |position| / equity")
    max_gross_leverage: float = _f(2.0, _rng(0, 10, lo_open=True), "sum |positions| / equity")
    daily_loss_stop_pct: float = _f(0.03, _rng(0, 1, lo_open=True, hi_open=True),
                                    "loss on the day that moves the account to REDUCING")
    max_drawdown_pct: float = _f(0.20, _rng(0, 1, lo_open=True, hi_open=True),
                                 "drawdown from peak equity that flattens and HALTS")
    price_band_pct: float = _f(0.25, _rng(0, 10, lo_open=True),
                               "circuit breaker: |price/reference - 1| above this halts the symbol")
    cash_buffer_pct: float = _f(0.02, _rng(0, 0.5), "share of equity sizing keeps in cash")
    allow_short: bool = _f(False, None, "whether targets may be negative")


@dataclass(frozen=True)
class SignalConfig:
    """How a probability becomes a target weight (``config/session.yaml``, ``signal``)."""

    long_threshold: float = _f(0.52, _rng(0, 1), "p(up) above this goes long")
    short_threshold: float = _f(0.48, _rng(0, 1), "p(up) below this goes flat (or short)")
    target_weight: float = _f(0.10, _rng(0, 1, lo_open=True),
                              "weight of a full position; kept below risk.max_position_pct "
                              "(0.15) so ordinary drift does not trigger a trim every bar")


@dataclass(frozen=True)
class SessionConfig:
    """Broker and loop settings (``config/session.yaml``, section ``session``)."""

    initial_cash: float = _f(100_000.0, _rng(0, None, lo_open=True), "starting cash")
    slippage_bps: float = _f(2.0, _rng(0, 1000), "adverse slippage on every fill, in bps")
    commission_bps: float = _f(1.0, _rng(0, 1000), "commission in bps of notional")
    commission_per_share: float = _f(0.0, _rng(0, 10), "commission per share (equities)")
    crypto_lot_size: float = _f(0.0001, _rng(0, 1, lo_open=True), "crypto quantity step")
    interval: str = _f("1d", None, "bar interval")
    source: str = _f("sample", None, "default data source")
    kill_file: str = _f("kill.flag", _kill_path,
                        "kill switch path (relative: from the project home, else the working "
                        "directory); anything there "
                        "halts trading; never empty")
    run_dir: str = _f("runs", None, "where run folders with ledgers are written")
    warmup_bars: int = _f(60, _rng(1, 10_000), "history fetched before the first decision")
    seed: int = _f(7, _rng(0, None), "seed for anything random")
    rebalance_band: float = _f(0.05, _rng(0, 1),
                               "resize a held position only when the target differs from it by "
                               "more than this share of equity (entries and exits always trade; "
                               "a position above risk.max_position_pct at the current mark is "
                               "always trimmed back to the limit, whatever this band says)")
    replay_years: float = _f(2.0, _rng(0, 100, lo_open=True),
                             "replay window when --start is not given: the last N years of data")


@dataclass(frozen=True)
class GateConfig:
    """The bar gate's jump rules (``config/session.yaml``, section ``gate``); fixed for a
    run (a resume re-feeds the history through the same rules). See
    :mod:`research_lib.data.jumps`."""

    jump_threshold_xnys: float = _f(0.25, _rng(0, 10, lo_open=True),
                                    "XNYS symbols: |close / last good close - 1| above this is "
                                    "a jump, held until confirmed (or refused as a split)")
    jump_threshold_24_7: float = _f(0.60, _rng(0, 10, lo_open=True),
                                    "24/7 (crypto) symbols: the same")
    jump_confirm_bars: int = _f(3, _rng(1, 20),
                                "bars after a jump that must hold the new level before it is "
                                "accepted (the jump bar and the bars before are refused)")
    split_tolerance: float = _f(0.02, _rng(0, 0.1),
                                "a close ratio this close to a split ratio (1:2, 1:3, 2:3 ...) "
                                "is a likely unadjusted split: refused, never confirmed")

    def thresholds(self) -> dict[str, float]:
        """Jump threshold per calendar."""
        return {"XNYS": self.jump_threshold_xnys, "24/7": self.jump_threshold_24_7}


@dataclass(frozen=True)
class RiskConfig:
    limits: RiskLimits = field(default_factory=RiskLimits)


@dataclass(frozen=True)
class SessionSettings:
    session: SessionConfig = field(default_factory=SessionConfig)
    signal: SignalConfig = field(default_factory=SignalConfig)
    gate: GateConfig = field(default_factory=GateConfig)


def load_risk(path: str | Path | None = None,
              data: Mapping[str, Any] | None = None) -> RiskLimits:
    """``risk.yaml`` (``data``: its mapping, already read, e.g. by :class:`ConfigWatcher`)."""
    p = Path(path) if path else config_dir() / "risk.yaml"
    data = load_yaml(p) if data is None else data
    _only_keys(p, data, {"risk"})
    try:
        return build_section(RiskLimits, data.get("risk"), "risk")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def load_session(path: str | Path | None = None,
                 data: Mapping[str, Any] | None = None) -> SessionSettings:
    p = Path(path) if path else config_dir() / "session.yaml"
    data = load_yaml(p) if data is None else data
    # "venue": where orders go, read by research_lib.venues.config (fixed for a run)
    _only_keys(p, data, {"session", "signal", "gate", "venue"})
    try:
        s = SessionSettings(
            session=build_section(SessionConfig, data.get("session"), "session"),
            signal=build_section(SignalConfig, data.get("signal"), "signal"),
            gate=build_section(GateConfig, data.get("gate"), "gate"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    if s.signal.short_threshold > s.signal.long_threshold:
        raise ConfigError(
            f"{p}: signal.short_threshold ({s.signal.short_threshold}) must not exceed "
            f"signal.long_threshold ({s.signal.long_threshold})"
        )
    return s


def _only_keys(path: Path, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


# ------------------------------------------------------------------------ assets
OCC_PATTERN = r"re:^[A-Z]{1,6}\s*\d{6}[CP]\d{8}$"
CALENDARS = ("XNYS", "24/7", "FX")


@dataclass(frozen=True)
class AssetClass:
    name: str
    patterns: tuple[str, ...]
    calendar: str
    model: str | None  # the model for the config's interval (None: none named for it)
    intervals: tuple[tuple[str, str], ...] = ()  # (interval, model) as configured


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str
    sha256: str | None


@dataclass(frozen=True)
class AssetsConfig:
    """Symbol -> asset class -> model (``config/assets.yaml``).

    ``classes`` are tried in file order; a pattern is a shell glob (``*-USD``) or a regular
    expression prefixed with ``re:``. ``overrides`` pin a symbol to a class.
    """

    universal_model: str | None  # for ``interval`` (None: none named for it)
    classes: tuple[AssetClass, ...]
    overrides: Mapping[str, str]
    models: Mapping[str, ModelEntry]
    source_path: str = ""
    universal_intervals: tuple[tuple[str, str], ...] = ()  # (interval, model) as configured
    interval: str = "1d"  # the bar interval ``universal_model`` and each class model are for

    def for_interval(self, interval: str | None) -> AssetsConfig:
        """This config with the universal and class models named for ``interval``
        (:mod:`research_lib.model_intervals`; None or unknown: as it is)."""
        key = interval_key(interval)
        if key is None or key == self.interval:
            return self
        return dataclasses.replace(
            self, interval=key, universal_model=model_for(self.universal_intervals, key),
            classes=tuple(dataclasses.replace(c, model=model_for(c.intervals, key))
                          for c in self.classes))

    def classify(self, symbol: str) -> str:
        if not isinstance(symbol, str) or not symbol:
            raise ConfigError(f"symbol must be a non-empty string, got {symbol!r}")
        if symbol in self.overrides:
            return self.overrides[symbol]
        for cls in self.classes:
            for pat in cls.patterns:
                if pat.startswith("re:"):
                    if re.match(pat[3:], symbol):
                        return cls.name
                elif fnmatch.fnmatchcase(symbol, pat):
                    return cls.name
        raise ConfigError(
            f"symbol {symbol!r} matches no asset class in {self.source_path or 'assets.yaml'}; "
            "add a catch-all pattern '*' to a class or an entry under overrides"
        )

    def asset_class(self, name: str) -> AssetClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise ConfigError(f"unknown asset class {name!r}; known: {[c.name for c in self.classes]}")

    def calendar_for(self, symbol: str) -> str:
        return self.asset_class(self.classify(symbol)).calendar


_ASSET_TOP = {"universal_model", "classes", "overrides", "models"}
_CLASS_KEYS = {"patterns", "calendar", "model"}
_MODEL_KEYS = {"path", "sha256"}


def _escapes_folder(path: str) -> bool:
    """True for an absolute path or one with a ``..`` part (POSIX or Windows spelling)."""
    posix = PurePosixPath(path.replace("\\", "/"))
    return posix.is_absolute() or PureWindowsPath(path).is_absolute() or ".." in posix.parts


def parse_assets(data: Mapping[str, Any], source: str = "assets.yaml") -> AssetsConfig:
    """Validate the assets mapping; every error names the key and the fix."""

    def err(msg: str) -> ConfigError:
        return ConfigError(f"{source}: {msg}")

    unknown = sorted(set(data) - _ASSET_TOP)
    if unknown:
        raise err(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_ASSET_TOP))}")
    models_raw = data.get("models") or {}
    if not isinstance(models_raw, dict):
        raise err("models must be a mapping of model name -> {path, sha256}")
    models: dict[str, ModelEntry] = {}
    for name, entry in models_raw.items():
        if not isinstance(name, str):
            raise err(f"models key {name!r} parsed as {type(name).__name__}; quote it")
        if not isinstance(entry, dict):
            raise err(f"models.{name} must be a mapping with path and sha256")
        bad = sorted(set(entry) - _MODEL_KEYS)
        if bad:
            raise err(f"unknown key models.{name}.{bad[0]}; allowed: path, sha256")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise err(f"models.{name}.path must be a file name inside models/, got {path!r}")
        if _escapes_folder(path):
            raise RegistryError(
                f"{source}: models.{name}.path {path!r} must name a file inside models/ "
                "(no absolute path, no '..'); refused"
            )
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise err(f"models.{name}.sha256 must be 64 lowercase hex digits, got {sha!r}")
        models[name] = ModelEntry(name=name, path=path, sha256=sha)
    uni_map = parse_model_map(data.get("universal_model"), "universal_model", models, source)
    classes_raw = data.get("classes")
    if not isinstance(classes_raw, dict) or not classes_raw:
        raise err("classes must be a non-empty mapping of class name -> {patterns, calendar, model}")
    classes = []
    for cname, spec in classes_raw.items():
        if not isinstance(cname, str):
            raise err(f"classes key {cname!r} parsed as {type(cname).__name__}; a class name "
                      "such as YES, NO or ON must be quoted in YAML ('YES')")
        if not isinstance(spec, dict):
            raise err(f"classes.{cname} must be a mapping")
        bad = sorted(set(spec) - _CLASS_KEYS)
        if bad:
            raise err(f"unknown key classes.{cname}.{bad[0]}; allowed: {', '.join(sorted(_CLASS_KEYS))}")
        if not spec.get("model"):
            raise err(f"classes.{cname} has no model; add `model: NAME` naming an entry under models")
        m_map = parse_model_map(spec["model"], f"classes.{cname}.model", models, source)
        pats = spec.get("patterns") or []
        if not isinstance(pats, list) or not pats:
            raise err(f"classes.{cname}.patterns must be a non-empty list of globs or re: patterns")
        for i, pat in enumerate(pats):
            if not isinstance(pat, str):
                raise err(
                    f"classes.{cname}.patterns[{i}] parsed as {type(pat).__name__} {pat!r}; "
                    "quote it in YAML"
                )
            if pat.startswith("re:"):
                try:
                    re.compile(pat[3:])
                except re.error as exc:
                    raise err(f"classes.{cname}.patterns[{i}] is not a valid regex: {exc}") from None
        cal = spec.get("calendar", "XNYS")
        if cal not in CALENDARS:
            raise err(f"classes.{cname}.calendar must be one of {CALENDARS}, got {cal!r}")
        classes.append(AssetClass(name=str(cname), patterns=tuple(pats), calendar=cal,
                                  model=model_for(m_map, "1d"), intervals=m_map))
    names = {c.name for c in classes}
    overrides_raw = data.get("overrides") or {}
    if not isinstance(overrides_raw, dict):
        raise err("overrides must be a mapping of symbol -> class")
    overrides: dict[str, str] = {}
    for sym, cname in overrides_raw.items():
        if not isinstance(sym, str):
            raise err(
                f"overrides key {sym!r} parsed as {type(sym).__name__}; a ticker such as ON, "
                "NO or YES must be quoted in YAML ('ON')"
            )
        if cname not in names:
            raise err(f"overrides.{sym} names unknown class {cname!r}; known: {sorted(names)}")
        overrides[sym] = cname
    return AssetsConfig(universal_model=model_for(uni_map, "1d"), classes=tuple(classes),
                        overrides=overrides, models=models, source_path=source,
                        universal_intervals=uni_map)


def load_assets(path: str | Path | None = None,
                data: Mapping[str, Any] | None = None) -> AssetsConfig:
    p = Path(path) if path else config_dir() / "assets.yaml"
    return parse_assets(load_yaml(p) if data is None else data, source=str(p))


DEFAULT_ASSETS = parse_assets(
    {
        "universal_model": "universal_v1",
        "classes": {
            "crypto": {"patterns": ["*-USD", "*USDT", "*-USDT"], "calendar": "24/7",
                       "model": "crypto_v1"},
            "options": {"patterns": [OCC_PATTERN], "calendar": "XNYS", "model": "options_v1"},
            "equities": {"patterns": ["*"], "calendar": "XNYS", "model": "equities_v1"},
        },
        "models": {
            n: {"path": f"{n}.onnx"}
            for n in ("universal_v1", "crypto_v1", "equities_v1", "options_v1")
        },
    },
    source="<built-in defaults>",
)


def parse_symbols(value: str | list[Any]) -> list[str]:
    """``"SPY,QQQ"`` or a list -> ``["SPY", "QQQ"]``; a YAML boolean is refused with the fix."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, bool):
            raise ConfigError(
                f"symbols[{i}] parsed as boolean {item!r}; tickers such as ON, NO, YES must be "
                "quoted in YAML ('ON')"
            )
        if not isinstance(item, str):
            raise ConfigError(f"symbols[{i}] must be a ticker string, got {item!r}")
        s = item.strip()
        if s:
            out.append(s)
    if not out:
        raise ConfigError("symbols is empty; pass e.g. --symbols SPY,QQQ")
    if len(set(out)) != len(out):
        dup = sorted({s for s in out if out.count(s) > 1})
        raise ConfigError(f"symbols lists {dup[0]!r} twice; list each symbol once")
    return out


# -------------------------------------------------------------------- hot reload
def key_paths(data: Mapping[str, Any]) -> set[str]:
    """The keys a config file names: ``risk``, ``risk.max_position_pct``, ... (top level
    and, under a mapping, one level down)."""
    out: set[str] = set()
    for k, v in data.items():
        out.add(str(k))
        if isinstance(v, Mapping):
            out.update(f"{k}.{sub}" for sub in v)
    return out


class ConfigWatcher:
    """Holds the last valid value of a config file and reloads it when the file changes.

    ``current()`` checks the file's stat (:meth:`_stat`); on change it reads the file once and parses
    it with ``loader(path, data=mapping)``. A reload is the whole file or nothing: an edit is
    refused, and the previous value kept, when it does not parse, when it leaves out a key
    the last accepted file named (the key would fall back to its built-in default), or when
    ``check(old, new)`` names a problem (the session refuses loosened risk limits and keys
    that need a restart). A refusal sets ``last_error`` and logs ``config_reload_failed``.
    """

    def __init__(self, path: str | Path, loader: Callable[..., T],
                 check: Callable[[Any, Any], str | None] | None = None) -> None:
        self.path = Path(path)
        self._fspath = os.fspath(self.path)  # stat()ed once per step: skip pathlib
        self.loader = loader
        self.check = check
        self._stamp = self._stat()
        data = load_yaml(self.path)
        self.value: Any = loader(self.path, data=data)
        self.keys = key_paths(data)  # what the last accepted file named
        self.last_error: str | None = None

    def _stat(self) -> tuple[Any, ...] | None:
        """What tells an edit apart: mtime and size, plus the inode (an editor's save by
        rename) and ctime (a write that kept size and mtime, e.g. a restored mtime). A file
        that cannot be checked (its folder made unsearchable) is a change too: the reload
        then fails and is refused, once, instead of raising out of the running step."""
        try:
            st = os.stat(self._fspath)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("error", exc.errno)
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)

    def _read(self) -> tuple[Any, set[str]]:
        data = load_yaml(self.path)
        new = self.loader(self.path, data=data)
        keys = key_paths(data)
        missing = sorted(self.keys - keys)
        if missing:
            raise ConfigError(
                f"{self.path}: a reload must be the whole file; it leaves out "
                f"{', '.join(missing)}, which would fall back to built-in defaults; put "
                f"{'it' if len(missing) == 1 else 'them'} back (restart the session to drop "
                "a key)")
        problem = self.check(self.value, new) if self.check is not None else None
        if problem:
            raise ConfigError(f"{self.path}: {problem}")
        return new, keys

    def current(self) -> Any:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                new, keys = self._read()
            except Exception as exc:  # keep the previous config, say why
                self.last_error = str(exc)
                log_event(log, "config_reload_failed", level=40, path=str(self.path),
                          error=str(exc), kept="previous")
            else:
                changed = new != self.value
                self.value = new
                self.keys = keys
                self.last_error = None
                if changed:
                    log_event(log, "config_reloaded", path=str(self.path))
        return self.value
