"""What training decides and what it made: :class:`TrainSpec` (stored in the card as
``spec``) and :class:`TrainResult`, with the text ``research-lib train`` prints.

Data only: no training, export or card writing here, so the card, training and parity
modules can all name these types without importing one another.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .settings import PipelineSpec, TrainSettings, settings_from_dict

if TYPE_CHECKING:
    from .dataset import Dataset
    from .evaluation import WalkForwardResult
    from .onnx import ParityReport


@dataclass(frozen=True)
class TrainSpec:
    """Everything that decides the model; stored in the card as ``spec``."""

    name: str
    asset_class: str
    symbols: tuple[str, ...]
    start: str | None
    end: str | None
    source: str
    interval: str
    pipeline: PipelineSpec
    settings: TrainSettings
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_class": self.asset_class,
            "symbols": list(self.symbols),
            "start": self.start,
            "end": self.end,
            "source": self.source,
            "interval": self.interval,
            "pipeline": self.pipeline.to_dict(),
            "settings": self.settings.to_dict(),
        }

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> TrainSpec:
        try:
            s = card["spec"]
            p = s["pipeline"]
            pipeline = PipelineSpec(name=p["name"], kind=p["kind"], params=dict(p["params"]))
            settings = settings_from_dict(
                {
                    **s["settings"],
                    "pipelines": {p["name"]: {"kind": p["kind"], "params": p["params"]}},
                },
                source=f"card {card.get('name')} spec.settings",
            )
            return cls(
                name=str(card["name"]),
                asset_class=s["asset_class"],
                symbols=tuple(s["symbols"]),
                start=s["start"],
                end=s["end"],
                source=s["source"],
                interval=s["interval"],
                pipeline=pipeline,
                settings=settings,
            )
        except (KeyError, TypeError) as exc:
            raise ModelError(
                f"card {card.get('name')!r} lacks the training spec ({exc}); it cannot be rebuilt"
            ) from None

    def command(self) -> str:
        parts = [
            "research-lib",
            "train",
            "--asset-class",
            self.asset_class,
            "--symbols",
            ",".join(self.symbols),
        ]
        if self.source != "sample":
            parts += ["--source", self.source]
        if self.start:
            parts += ["--start", self.start]
        if self.end:
            parts += ["--end", self.end]
        if self.interval != "1d":
            parts += ["--interval", self.interval]
        parts += [
            "--out",
            self.out or f"models/{self.name}.onnx",
            "--pipeline",
            self.pipeline.name,
            "--seed",
            str(self.settings.seed),
        ]
        return shlex.join(parts)


@dataclass
class TrainResult:
    spec: TrainSpec
    dataset: Dataset
    pipeline: Any
    train_rows: int
    walk_forward: WalkForwardResult | None = None
    onnx_bytes: bytes = b""
    sha256: str = ""
    parity: ParityReport | None = None
    card: dict[str, Any] = field(default_factory=dict)
    model_path: Path | None = None
    card_path: Path | None = None
    oos_end: str | None = None  # the source's last bar after the training window

    def summary(self) -> str:
        """What ``research-lib train`` prints: notes, out-of-sample figures, verdict, parity."""
        lines = summary_lines(self)
        if self.model_path is not None:
            lines.append(f"wrote {self.model_path} and {self.card_path}")
        return "\n".join(lines)


# ------------------------------------------------------------------------ text
def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1%}" if pct else f"{v:.3f}"


def summary_lines(res: TrainResult) -> list[str]:
    wf = res.walk_forward
    lines = []
    for n in res.dataset.notes:
        lines.append(f"note: {n}")
    if wf is not None:
        m, b = wf.metrics, wf.baselines
        lines.append(
            f"out of sample ({m['rows']} labelled rows, {len(wf.folds)} folds): accuracy "
            f"{_fmt(m['accuracy'])} (majority class {_fmt(b['majority_class_accuracy'])}), log loss "
            f"{_fmt(m['log_loss'])} (base rate {_fmt(b['base_rate_log_loss'])}), AUC {_fmt(m['auc'])}"
        )
        lines.append("trading, walk-forward, filled at the next open (as the paper broker):")
        lines.append(f"{'strategy':<22}{'return':>9}{'sharpe':>8}{'max dd':>8}{'turnover':>10}")
        rows = list(wf.trading.metrics.items())
        if wf.trading_close is not None:
            rows.append(("model (close fill)*", wf.trading_close.metrics["model"]))
        for k, t in rows:
            lines.append(
                f"{k:<22}{_fmt(t['total_return'], True):>9}{_fmt(t['sharpe']):>8}"
                f"{_fmt(t['max_drawdown'], True).lstrip('+'):>8}{_fmt(t['turnover']):>10}"
            )
        if wf.trading_close is not None:
            lines.append("* filled at the signal bar's own close: optimistic, no broker fills "
                         "there; for comparison only")
    tw = res.card.get("training_window") if res.card else None
    ow = res.card.get("out_of_sample_window") if res.card else None
    if tw:
        lines.append(f"training window {tw['start']} .. {tw['end']}; out of sample: "
                     + (f"{ow['start']} .. {ow['end']}" if ow and ow.get("end")
                        else "no later bar in the source"))
    if wf is not None:
        lines.append(f"verdict: {res.card.get('verdict', wf.verdict)}")
    if res.parity is not None:
        lines.append(res.parity.summary())
    return lines
