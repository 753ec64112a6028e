"""Router claims: flag 0 serves universal, flag 1 each symbol's class model, and a broken
class model (tampered, missing) falls back to universal with its reason, shown on a
temporary copy of the models folder (the project's files are only read)."""

from __future__ import annotations

import shutil

from .context import Context
from .verdict import Verdict, all_passed, skipped


def _router(ctx: Context, folder=None):
    from ..models.router import Router

    return Router(ctx.assets, folder if folder is not None else ctx.models_dir)


def _class_model(ctx: Context, symbol: str) -> str | None:
    try:
        return ctx.assets.asset_class(ctx.assets.classify(symbol)).model
    except Exception:  # unclassified: universal serves it under every flag
        return None


def flag_0(ctx: Context) -> Verdict:
    uni = ctx.assets.universal_model
    problems: dict[str, str | None] = {}
    for r in _router(ctx).routes(ctx.symbols, mode="0"):
        if r.model != uni:
            problems[r.symbol] = f"served by {r.model}, not the universal model {uni}"
        elif not r.checksum_ok:
            problems[r.symbol] = f"universal model {uni} unusable: {r.fallback_reason}"
        else:
            problems[r.symbol] = None
    return all_passed(problems, f"{len(problems)} symbols served by {uni}", model=uni,
                      symbols=len(problems))


def flag_1(ctx: Context) -> Verdict:
    problems: dict[str, str | None] = {}
    served: dict[str, str] = {}
    for r in _router(ctx).routes(ctx.symbols, mode="1"):
        want = _class_model(ctx, r.symbol) or ctx.assets.universal_model
        served[r.symbol] = r.model
        if r.model != want:
            problems[r.symbol] = (f"class {r.asset_class} served by {r.model}, not its class "
                                  f"model {want}" + (f": {r.fallback_reason}"
                                                     if r.fallback_reason else ""))
        elif not r.checksum_ok or r.fallback_reason:
            problems[r.symbol] = f"{r.model}: {r.fallback_reason}"
        else:
            problems[r.symbol] = None
    return all_passed(problems, "each symbol served by its class model: " +
                      ", ".join(f"{s} {m}" for s, m in served.items()), served=served)


def tampered(data: bytes) -> bytes:
    """The model with one weight changed: still a valid ONNX file of the same shape, so only
    the checksum can tell (a file that no longer parses would be refused for that instead).
    Falls back to one byte more when no float weight is found."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception:  # not ONNX at all: any change will do
        return data + b"\0"
    for init in model.graph.initializer:
        if init.float_data:
            init.float_data[0] += 1.0
            return model.SerializeToString()
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.FLOATS and len(attr.floats):
                attr.floats[0] += 1.0
                return model.SerializeToString()
    return data + b"\0"


def _fallback_problem(ctx: Context, folder, model: str, symbols: list[str], how: str,
                      word: str) -> tuple[str | None, str | None]:
    """(what broke, the reason the router gave) for one broken copy of ``model``."""
    uni = ctx.assets.universal_model
    reason = None
    for r in _router(ctx, folder).routes(symbols, mode="1"):
        if r.model != uni:
            return f"{r.symbol} still served by {r.model}", None
        if not r.checksum_ok:
            return f"{r.symbol} left without a usable model", None
        if not r.fallback_reason or model not in r.fallback_reason or word not in (
                r.fallback_reason.lower()):
            return (f"{r.symbol} fell back to {uni} without the {how} file's reason "
                    f"({word!r}); reason given: {r.fallback_reason!r}"), None
        reason = r.fallback_reason
    return None, reason


def fallback(ctx: Context) -> Verdict:
    from ..models import registry

    uni = ctx.assets.universal_model
    by_model: dict[str, list[str]] = {}
    for s in ctx.symbols:
        m = _class_model(ctx, s)
        if m is not None and m != uni:
            by_model.setdefault(m, []).append(s)
    if not by_model:
        return skipped(f"every configured symbol is served by {uni} under flag 1: no class "
                       "model to break")
    folder = ctx.scratch("router") / "models"
    shutil.copytree(ctx.models_dir, folder)  # files, not links: the copy is the one broken
    problems: dict[str, str | None] = {}
    reasons: dict[str, str] = {}
    for model, symbols in by_model.items():
        path = registry.model_path(ctx.assets, model, folder)
        original = path.read_bytes()
        path.write_bytes(tampered(original))  # one weight changed, still valid ONNX
        problems[f"{model} tampered"], why = _fallback_problem(
            ctx, folder, model, symbols, "tampered", "mismatch")
        if why:
            reasons[f"{model} tampered"] = why
        path.unlink()  # missing
        problems[f"{model} missing"], why = _fallback_problem(
            ctx, folder, model, symbols, "missing", "missing")
        if why:
            reasons[f"{model} missing"] = why
        path.write_bytes(original)
    return all_passed(problems, f"{len(reasons)} broken copies fell back to {uni} with the "
                                "reason", reasons=reasons, broken_models=sorted(by_model))
