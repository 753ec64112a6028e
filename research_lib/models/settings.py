"""Training settings (``config/models.yaml``): label, walk-forward, evaluation, pipelines.

Frozen and validated when built; errors name the key. A model card stores the settings it
was trained with (:meth:`TrainSettings.to_dict`), and :func:`settings_from_dict` rebuilds
them, so a committed model is rebuilt from its card, never from today's config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import _f, _rng, build_section, config_dir, load_yaml
from ..errors import ConfigError

PIPELINE_KINDS = ("logistic", "random_forest", "hist_gradient_boosting")
ASSET_CLASSES = ("universal", "equities", "crypto", "options")


@dataclass(frozen=True)
class LabelConfig:
    """Sign of the next-``horizon``-bar return; moves inside the dead zone are no label."""

    horizon: int = _f(1, _rng(1, 250), "bars ahead the label looks")
    dead_zone: float = _f(0.001, _rng(0, 0.5), "|forward return| <= this is no label")


@dataclass(frozen=True)
class WalkForwardConfig:
    folds: int = _f(5, _rng(1, 50), "number of test blocks")
    initial_train_fraction: float = _f(
        0.4, _rng(0, 1, lo_open=True, hi_open=True), "share of the timeline before the first test"
    )
    embargo: int = _f(5, _rng(0, 1000), "bars between last training label and first test bar")


@dataclass(frozen=True)
class EvaluationConfig:
    threshold: float = _f(0.52, _rng(0, 1, lo_open=True, hi_open=True), "long when p(up) > this")
    cost_bps: float = _f(3.0, _rng(0, 1000), "cost per unit of turnover, in bps")
    sma_fast: int = _f(10, _rng(1, 1000), "SMA crossover baseline, fast window")
    sma_slow: int = _f(50, _rng(2, 5000), "SMA crossover baseline, slow window")


@dataclass(frozen=True)
class OnnxConfig:
    opset: int = _f(17, _rng(9, 30), "default-domain opset")
    ml_opset: int = _f(3, _rng(1, 10), "ai.onnx.ml opset")


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    kind: str
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "params": dict(self.params)}


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 7
    label: LabelConfig = field(default_factory=LabelConfig)
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    pipelines: Mapping[str, PipelineSpec] = field(default_factory=dict)
    default_pipeline: Mapping[str, str] = field(default_factory=dict)
    source_path: str = ""

    def pipeline(self, name: str | None, asset_class: str) -> PipelineSpec:
        """The named pipeline, or the default for ``asset_class``."""
        if name is None:
            name = self.default_pipeline.get(asset_class)
            if name is None:
                raise ConfigError(
                    f"{self.source_path}: default_pipeline.{asset_class} is not set; add it or "
                    f"pass --pipeline (one of {sorted(self.pipelines)})"
                )
        if name not in self.pipelines:
            raise ConfigError(
                f"pipeline {name!r} is not in {self.source_path or 'models.yaml'}; "
                f"known: {sorted(self.pipelines)}"
            )
        return self.pipelines[name]

    def to_dict(self) -> dict[str, Any]:
        """The parts a card needs to rebuild a model (not the pipeline catalogue)."""
        return {
            "seed": self.seed,
            "label": asdict(self.label),
            "walk_forward": asdict(self.walk_forward),
            "evaluation": asdict(self.evaluation),
            "onnx": asdict(self.onnx),
        }


_TOP = {"seed", "label", "walk_forward", "evaluation", "onnx", "pipelines", "default_pipeline"}


def _pipelines(raw: Any, where: str) -> dict[str, PipelineSpec]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: pipelines must be a mapping of name -> {{kind, params}}")
    out: dict[str, PipelineSpec] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: pipelines.{name} must be a mapping with kind and params")
        bad = sorted(set(spec) - {"kind", "params"})
        if bad:
            raise ConfigError(
                f"{where}: unknown key pipelines.{name}.{bad[0]}; allowed: kind, params"
            )
        kind = spec.get("kind")
        if kind not in PIPELINE_KINDS:
            raise ConfigError(
                f"{where}: pipelines.{name}.kind must be one of {PIPELINE_KINDS}, got {kind!r}"
            )
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: pipelines.{name}.params must be a mapping")
        for key in ("random_state", "n_jobs"):
            if key in params:
                raise ConfigError(
                    f"{where}: pipelines.{name}.params.{key} is set by the trainer "
                    "(seed from `seed`, single-threaded); remove it"
                )
        out[str(name)] = PipelineSpec(name=str(name), kind=kind, params=dict(params))
    return out


def settings_from_dict(data: Mapping[str, Any], source: str = "models.yaml") -> TrainSettings:
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_TOP))}"
        )
    seed = data.get("seed", 7)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a whole number >= 0, got {seed!r}")
    try:
        label = build_section(LabelConfig, data.get("label"), "label")
        wf = build_section(WalkForwardConfig, data.get("walk_forward"), "walk_forward")
        ev = build_section(EvaluationConfig, data.get("evaluation"), "evaluation")
        ox = build_section(OnnxConfig, data.get("onnx"), "onnx")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if wf.embargo < label.horizon:
        raise ConfigError(
            f"{source}: walk_forward.embargo ({wf.embargo}) must be >= label.horizon "
            f"({label.horizon}) so no training label overlaps a test bar"
        )
    if ev.sma_fast >= ev.sma_slow:
        raise ConfigError(
            f"{source}: evaluation.sma_fast ({ev.sma_fast}) must be below sma_slow ({ev.sma_slow})"
        )
    pipelines = _pipelines(data["pipelines"], source) if "pipelines" in data else {}
    defaults_raw = data.get("default_pipeline") or {}
    if not isinstance(defaults_raw, dict):
        raise ConfigError(f"{source}: default_pipeline must map asset class -> pipeline name")
    for cls, name in defaults_raw.items():
        if cls not in ASSET_CLASSES:
            raise ConfigError(
                f"{source}: unknown key default_pipeline.{cls}; allowed: {', '.join(ASSET_CLASSES)}"
            )
        if name not in pipelines:
            raise ConfigError(
                f"{source}: default_pipeline.{cls} names unknown pipeline {name!r}; "
                f"known: {sorted(pipelines)}"
            )
    return TrainSettings(
        seed=seed,
        label=label,
        walk_forward=wf,
        evaluation=ev,
        onnx=ox,
        pipelines=pipelines,
        default_pipeline=dict(defaults_raw),
        source_path=source,
    )


def load_settings(path: str | Path | None = None) -> TrainSettings:
    """Read ``config/models.yaml`` (or ``path``)."""
    p = Path(path) if path else config_dir() / "models.yaml"
    return settings_from_dict(load_yaml(p), source=str(p))
