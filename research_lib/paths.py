"""Identifiers that become path parts, and paths that must stay inside their root.

Every name a user passes that ends up in a file path (a run id, a report name, a cache
symbol or interval, a model name) goes through :func:`safe_id`; every path built from one
goes through :func:`inside`. ``safe_id("../x", "--run-id")`` and
``inside(runs, runs / "..", "--run-id")`` raise a :class:`~research_lib.errors.ConfigError`
naming the option, the value and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

# a letter or digit first (so never ".", ".." or a dot file), then letters, digits, ".",
# "_", "-", at most 128 characters; no separator, no space, no control character
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_ID_RULE = ("1-128 characters: letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (no '/', '..', spaces or newlines)")


def safe_id(value: object, field: str, pattern: re.Pattern[str] = SAFE_ID,
            rule: str = SAFE_ID_RULE) -> str:
    """``value`` if it matches ``pattern`` as a whole (``fullmatch``: a trailing newline
    does not pass), else a ConfigError naming ``field``, the value and the rule."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ConfigError(f"{field} {value!r} is not a valid name; use {rule}")
    return value


def inside(root: str | Path, path: str | Path, field: str) -> Path:
    """``path`` resolved (symlinks followed), if it is ``root`` resolved or below it; else a
    ConfigError naming ``field`` and both folders."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(f"{field}: {str(path)!r} resolves to {str(target)!r}, outside "
                          f"{str(base)!r}; use a plain name inside that folder")
    return target
