"""Model claims, for every model of the registry (``config/assets.yaml``): its file's sha256
equals its pin and its card's, parity passes now, its card carries out-of-sample metrics.
Pins are read from the config and the cards at run time (models are retrained)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ResearchLibError
from .context import Context
from .verdict import Verdict, all_passed

OOS_METRICS = ("auc", "accuracy", "log_loss")


def _card(ctx: Context, name: str) -> tuple[dict[str, Any] | None, str | None]:
    from ..models import registry
    from ..models.card import card_path_for, read_card

    try:
        path = registry.model_path(ctx.assets, name, ctx.models_dir)
        return read_card(card_path_for(path)), None
    except ResearchLibError as exc:
        return None, str(exc)


def pins(ctx: Context) -> Verdict:
    from ..models import registry

    problems: dict[str, str | None] = {}
    digests: dict[str, str] = {}
    for name in ctx.assets.models:
        st = registry.check(ctx.assets, name, ctx.models_dir)
        if not st.ok:
            problems[name] = st.problem or st.state
            continue
        digests[name] = (st.sha256 or "")[:12]
        card, why = _card(ctx, name)
        if card is None:
            problems[name] = why
        elif card.get("sha256") != st.sha256:
            problems[name] = (f"card {st.display[:-5]}.json records sha256 {card.get('sha256')}, "
                              f"{st.display} has {st.sha256}")
        else:
            problems[name] = None
    return all_passed(problems, f"{len(digests)} models: file sha256 == pin == card",
                      models=len(ctx.assets.models), sha256_prefix=digests)


def parity_now(ctx: Context) -> Verdict:
    from ..models import registry
    from ..models.parity import parity

    problems: dict[str, str | None] = {}
    diffs: dict[str, float] = {}
    rows: dict[str, int] = {}
    for name in ctx.assets.models:
        try:
            path = registry.model_path(ctx.assets, name, ctx.models_dir)
            if not path.is_file():
                problems[name] = f"model file {path} missing"
                continue
            rep = parity(path)
        except ResearchLibError as exc:
            problems[name] = f"parity could not run: {exc}"
            continue
        diffs[name] = float(rep.max_abs_diff)
        rows[name] = int(rep.rows)
        bad = []
        if not rep.passed:
            bad.append(f"parity FAILED: max |dp| {rep.max_abs_diff:.3g} (tolerance "
                       f"{rep.tolerance:g}), identical decisions "
                       f"{rep.share_identical_decisions:.2%}")
        if not rep.card_sha256_matches:
            bad.append("its card's sha256 is not the file's")
        problems[name] = "; ".join(bad) or None
    return all_passed(problems, f"{len(diffs)} models pass parity on held-out rows",
                      max_abs_diff=diffs, rows=rows)


def out_of_sample(ctx: Context) -> Verdict:
    problems: dict[str, str | None] = {}
    metrics: dict[str, dict[str, float]] = {}
    for name in ctx.assets.models:
        card, why = _card(ctx, name)
        if card is None:
            problems[name] = why
            continue
        oos = (card.get("walk_forward") or {}).get("out_of_sample")
        if not isinstance(oos, dict):
            problems[name] = "its card has no walk_forward.out_of_sample metrics"
            continue
        bad = [m for m in OOS_METRICS
               if not isinstance(oos.get(m), int | float) or not math.isfinite(oos[m])]
        n = oos.get("rows")
        if bad:
            problems[name] = f"walk_forward.out_of_sample lacks finite {', '.join(bad)}"
        elif not isinstance(n, int) or n <= 0:
            problems[name] = f"walk_forward.out_of_sample.rows is {n!r}, not a positive count"
        else:
            problems[name] = None
            metrics[name] = {m: float(oos[m]) for m in OOS_METRICS} | {"rows": n}
    return all_passed(problems, f"{len(metrics)} cards carry out-of-sample "
                                f"{', '.join(OOS_METRICS)}", metrics=metrics)
