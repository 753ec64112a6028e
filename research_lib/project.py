"""The project home: where config, models and notebooks are read, and the one rule for
relative paths.

**The home** is ``--home DIR`` (the CLI puts it in ``RESEARCH_LIB_HOME`` for the command),
else ``$RESEARCH_LIB_HOME``, else the current folder or its nearest parent holding
``config/assets.yaml`` (so a notebook open in ``<home>/notebooks/`` finds its home). With
no home, config, models and notebooks are the defaults shipped in the package
(:func:`packaged_home`, read only) and the current folder takes the home's place for
everything written (runs, reports).

**The rule**: a relative path, given on the command line, to a library call or in a config
file (``session.run_dir``, ``session.kill_file``), is taken from the home, or from the
current folder when there is no home (:func:`resolve_path`). ``research-lib init DIR`` makes
a home (:func:`init_home`); its ``DIR`` is taken from the current folder (there is no home
yet).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

HOME_ENV = "RESEARCH_LIB_HOME"
MARKER = Path("config") / "assets.yaml"
PACKAGE_ROOT = Path(__file__).resolve().parent
# what a home holds: the folders copied from the package, then the empty ones it writes to
SHIPPED = ("config", "models", "notebooks")
WRITTEN = ("runs", "reports")
# files of each shipped folder (the build hook in setup.py ships the same patterns)
SHIPPED_PATTERNS = {"config": ("*.yaml",), "models": ("*.onnx", "*.json"),
                    "notebooks": ("*.ipynb", "*.py", "jupytext.toml")}


def packaged_home() -> Path:
    """The defaults that ship with the package: ``research_lib/home/`` in an installed
    wheel (the build copies the checkout's ``config/``, ``models/`` and ``notebooks/``
    there), else the checkout itself (a source checkout or an editable install)."""
    wheel = PACKAGE_ROOT / "home"
    if (wheel / MARKER).is_file():
        return wheel
    checkout = PACKAGE_ROOT.parent
    if (checkout / MARKER).is_file() and (checkout / "pyproject.toml").is_file():
        return checkout
    raise ConfigError(f"the packaged defaults are missing: no {wheel / MARKER}; reinstall "
                      "research_lib (pip install --force-reinstall research_lib)")


def find_home() -> Path | None:
    """The project home (``$RESEARCH_LIB_HOME``, else the current folder or its nearest
    parent with ``config/assets.yaml``), or None."""
    env = os.environ.get(HOME_ENV, "")
    if env.strip():
        p = Path(env).expanduser().resolve()
        if not p.is_dir():
            raise ConfigError(f"{HOME_ENV} (or --home) is {env!r}, which is not a folder; "
                              f"make one with: research-lib init {env}")
        return p
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / MARKER).is_file():
            return p
    return None


def project_root() -> Path:
    """Where ``config/``, ``models/`` and ``notebooks/`` are read: the home, else the
    packaged defaults."""
    return find_home() or packaged_home()


def work_root() -> Path:
    """Where relative paths resolve and runs and reports go: the home, else the current
    folder (never the packaged defaults, which may not be writable)."""
    return find_home() or Path.cwd().resolve()


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """``path`` (``~`` expanded) as given when absolute, else under :func:`work_root`."""
    p = Path(os.path.expanduser(os.fspath(path)))
    return p if p.is_absolute() else work_root() / p


def describe() -> dict[str, str]:
    """Where each part is read from or written to now (for ``init`` and error messages)."""
    home = find_home()
    root = home or packaged_home()
    out = {"home": str(home) if home else "(none: packaged defaults, writing to the "
           "current folder)"}
    out.update({name: str(root / name) for name in SHIPPED})
    out.update({name: str(work_root() / name) for name in WRITTEN})
    return out


# ------------------------------------------------------------------------- init
@dataclass
class InitResult:
    """What :func:`init_home` did: files copied, files kept as they were (they differ from
    the shipped ones), folders made."""

    home: Path
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)


def shipped_files(source: Path | None = None) -> list[Path]:
    """The files a home gets, relative to the packaged home (``config/risk.yaml``, ...)."""
    src = source or packaged_home()
    out: list[Path] = []
    for folder in SHIPPED:
        for pattern in SHIPPED_PATTERNS[folder]:
            out.extend(p.relative_to(src) for p in sorted((src / folder).glob(pattern))
                       if p.is_file())
    return out


def init_home(target: str | os.PathLike[str], force: bool = False,
              source: Path | None = None) -> InitResult:
    """Lay out a project home at ``target`` (taken from the current folder): the shipped
    ``config/``, ``models/`` (byte for byte, so ``assets.yaml``'s sha256 pins hold) and
    ``notebooks/``, and empty ``runs/`` and ``reports/``.

    A folder that exists and is not empty is refused unless ``force``; with ``force`` only
    missing files are added: a file already there is never overwritten (it is listed in
    ``kept`` when it differs from the shipped one)."""
    home = Path(os.path.expanduser(os.fspath(target))).absolute()
    src = source or packaged_home()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"init: {str(home)!r} is a file, not a folder; pass a folder path")
    if home.is_dir():
        present = sorted(p.name for p in home.iterdir())
        if present and not force:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ConfigError(
                f"init: {str(home)!r} is not empty ({len(present)} entries: {shown}); init "
                "never overwrites a file: pass --force to add only the missing files (yours "
                "are kept as they are), or choose an empty folder")
    if home.resolve() == src.resolve():
        raise ConfigError(f"init: {str(home)!r} is the packaged defaults folder itself; "
                          "choose another folder")
    res = InitResult(home=home)
    for folder in (*SHIPPED, *WRITTEN):
        d = home / folder
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=False)
            res.made.append(folder + "/")
    for rel in shipped_files(src):
        dest = home / rel
        if dest.exists() or dest.is_symlink():
            if not (dest.is_file() and filecmp.cmp(src / rel, dest, shallow=False)):
                res.kept.append(str(rel))
            continue
        _copy_new(src / rel, dest)
        res.copied.append(str(rel))
    return res


def _copy_new(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest``, which must not exist (created exclusively: a file or link
    that appeared meanwhile is never written through)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(dest, flags, 0o666)
    with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
        shutil.copyfileobj(inp, out)
