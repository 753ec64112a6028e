"""The model registry: ``config/assets.yaml`` entries checked against the files in ``models/``.

Checks, each an error naming the key:

* unknown keys, a class without a model, a path that is absolute or has ``..``
  (:func:`research_lib.config.parse_assets`);
* a path whose real location (after symlinks) is outside ``models/``;
* a file whose sha256 differs from the pinned one, or an existing file with no pin.

A missing file is not a registry error: the router falls back to the universal model and
says so (``model file models/options_v1.onnx missing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import AssetsConfig, load_assets, models_dir
from ..errors import ConfigError, RegistryError
from .onnx import UnsafeModelFileError, sha256_file

# states of a registry entry, and how the routing table shows them
STATES = {
    "ok": "ok",
    "missing": "missing file",
    "unpinned": "not pinned",
    "mismatch": "MISMATCH",
    "refused": "REFUSED",
    "interval": "OTHER INTERVAL",
    "invalid": "INVALID",
}


@dataclass(frozen=True)
class ModelStatus:
    """What the registry knows about one model entry."""

    name: str
    display: str  # "models/crypto_v1.onnx"
    state: str  # one of STATES
    problem: str | None = None
    path: Path | None = None  # resolved, inside models/
    sha256: str | None = None  # of the file, when it was read

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def checksum(self) -> str:
        return STATES[self.state]


def display_path(name: str, assets: AssetsConfig, folder: Path) -> str:
    entry = assets.models.get(name)
    return f"{folder.name}/{entry.path if entry else name + '.onnx'}"


def model_path(assets: AssetsConfig, name: str, folder: str | Path | None = None) -> Path:
    """The real path of model ``name``; refuses anything that resolves outside ``folder``."""
    base = Path(folder) if folder is not None else models_dir()
    entry = assets.models.get(name)
    if entry is None:
        raise RegistryError(
            f"{assets.source_path or 'assets.yaml'}: no entry models.{name}; "
            f"known: {sorted(assets.models)}"
        )
    rel = Path(entry.path)
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafeModelFileError(
            f"models.{name}.path {entry.path!r} must name a file inside {base}; refused"
        )
    real_base = base.resolve()
    real = (base / rel).resolve()
    if not real.is_relative_to(real_base):
        raise UnsafeModelFileError(
            f"models.{name}.path {entry.path!r} resolves to {real}, outside {real_base} "
            "(a symlink pointing out of models/?); refused"
        )
    return real


def check(assets: AssetsConfig, name: str, folder: str | Path | None = None) -> ModelStatus:
    """Locate, hash and compare one entry (does not parse the ONNX file)."""
    base = Path(folder) if folder is not None else models_dir()
    shown = display_path(name, assets, base)
    try:
        path = model_path(assets, name, base)
    except RegistryError as exc:
        return ModelStatus(name, shown, "refused", str(exc))
    if not path.is_file():
        return ModelStatus(name, shown, "missing", f"model file {shown} missing", path)
    actual = sha256_file(path)
    return status_for_sha(assets, name, shown, path, actual)


def status_for_sha(
    assets: AssetsConfig, name: str, shown: str, path: Path, actual: str
) -> ModelStatus:
    entry = assets.models[name]
    src = assets.source_path or "assets.yaml"
    if entry.sha256 is None:
        return ModelStatus(
            name,
            shown,
            "unpinned",
            f"models.{name}.sha256 is not set in {src}; a model is served only when its "
            f"checksum is pinned (this file's sha256 is {actual}; check its card, then pin it)",
            path,
            actual,
        )
    if actual != entry.sha256:
        return ModelStatus(
            name,
            shown,
            "mismatch",
            f"models.{name}.sha256 mismatch: {src} pins {entry.sha256}, {shown} has "
            f"{actual}; the file changed since it was pinned, refused",
            path,
            actual,
        )
    return ModelStatus(name, shown, "ok", None, path, actual)


def validate(
    assets: AssetsConfig, folder: str | Path | None = None, *, strict: bool = True
) -> dict[str, ModelStatus]:
    """Status of every entry; with ``strict`` a refused path, a checksum mismatch or an
    unpinned existing file raises :class:`RegistryError` naming the key."""
    out = {name: check(assets, name, folder) for name in assets.models}
    if strict:
        for st in out.values():
            if st.state in ("refused", "mismatch", "unpinned"):
                raise RegistryError(st.problem or st.state)
    return out


def load_registry(
    path: str | Path | None = None, folder: str | Path | None = None, *, strict: bool = True
) -> AssetsConfig:
    """``config/assets.yaml`` parsed and checked against ``models/``; every problem is a
    :class:`RegistryError` naming the key."""
    try:
        assets = load_assets(path)
    except RegistryError:
        raise
    except ConfigError as exc:
        raise RegistryError(str(exc)) from None
    validate(assets, folder, strict=strict)
    return assets


def pin_line(name: str, sha256: str, file: str | None = None) -> str:
    return f"{name}: {{path: {file or name + '.onnx'}, sha256: {sha256}}}"
