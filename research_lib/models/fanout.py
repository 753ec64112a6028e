"""Several models at once (issue 15): ``research-lib train --from-cards models --out-dir
DIR --jobs N --backend local|dask|serial`` retrains every card's model (its spec: class,
symbols, window, pipeline, settings, seed) through the same joblib backends as sweeps,
one model per worker, and writes ``DIR/<name>.onnx`` and its card. Each model is the
same bytes as a serial run (tested): one model per task, its folds fitted one after the
other inside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError


def card_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The model cards named by ``paths``: a folder (its ``*.json`` that sit beside a
    ``.onnx`` of the same name) or card files, sorted by name; an error naming a path that
    is neither."""
    from ..project import resolve_path

    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        p = resolve_path(item)
        if p.is_dir():
            found = sorted(c for c in p.glob("*.json") if c.with_suffix(".onnx").is_file())
            if not found:
                raise ConfigError(f"--from-cards {item}: the folder holds no model card "
                                  "(NAME.json beside NAME.onnx)")
            out += found
        elif p.is_file() and p.suffix == ".json":
            out.append(p)
        else:
            raise ConfigError(f"--from-cards {item}: not a folder of models nor a card "
                              "file (NAME.json)")
    names = [c.stem for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--from-cards: two cards are named {dup[0]!r}; their models would "
                          "overwrite each other in --out-dir")
    return out


def train_card(card_path: str, out: str) -> dict[str, Any]:
    """Retrain one card's model into ``out`` (a worker task: plain arguments, a plain
    dict back, never the fitted objects)."""
    from .train import retrain_from_card

    card = json.loads(Path(card_path).read_text(encoding="utf-8"))
    if not isinstance(card, dict):
        raise ModelError(f"{card_path}: not a model card (a JSON object)")
    res = retrain_from_card(card, out=out)
    wf = res.walk_forward
    return {"name": res.spec.name, "asset_class": res.spec.asset_class,
            "model": str(res.model_path), "card": str(res.card_path), "sha256": res.sha256,
            "auc": None if wf is None else wf.metrics.get("auc"),
            "parity": bool(res.parity is not None and res.parity.passed)}


def train_from_cards(cards: str | Path | Sequence[str | Path], out_dir: str | Path, *,
                     jobs: int = 1, backend: str = "local", scheduler: str | None = None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> list[dict[str, Any]]:
    """Retrain the models of ``cards`` into ``out_dir`` at once (``jobs`` at a time on
    ``backend``); one dict per model, in card order. ``out_dir`` must not be the folder a
    card is read from (its model would be overwritten while another worker reads it)."""
    from joblib import Parallel, delayed

    from ..parallel import backend as parallel_backend
    from ..parallel import check_backend
    from ..project import resolve_path

    check_backend(backend, jobs, scheduler)
    files = card_files(cards)
    out = resolve_path(out_dir).absolute()
    for c in files:
        if c.parent.resolve() == out.resolve():
            raise ConfigError(f"--out-dir {out_dir} is where the card {c.name} is read from; "
                              "write the retrained models to another folder")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [delayed(train_card)(str(c), str(out / f"{c.stem}.onnx")) for c in files]
    if progress is not None:
        progress(0, len(tasks))
    results: list[dict[str, Any]] = []
    with parallel_backend(backend, jobs, scheduler):
        for row in Parallel(n_jobs=jobs, return_as="generator")(tasks):
            results.append(row)
            if progress is not None:
                progress(len(results), len(tasks))
    return results
