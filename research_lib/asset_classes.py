"""Why a symbol got its asset class: the override or the pattern of ``config/assets.yaml``
that matched, and whether only the catch-all ``*`` did (an unknown symbol is never silently
an equity: the session says which class it assumed and how to change it)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .config import AssetsConfig

CATCH_ALL = "*"


@dataclass(frozen=True)
class ClassChoice:
    symbol: str
    asset_class: str
    calendar: str
    how: str  # "override" or "pattern '...'"
    assumed: bool  # only the catch-all matched: the class is a default, not a recognition
    lots: bool  # traded in lots (crypto), not whole units

    @property
    def reason(self) -> str:
        unit = "lots" if self.lots else "whole units"
        if self.assumed:
            return (f"{self.symbol}: no pattern of assets.yaml names it; the catch-all "
                    f"{CATCH_ALL!r} of class {self.asset_class} made it {self.asset_class} "
                    f"(calendar {self.calendar}, {unit}); if it is not that, add it under "
                    "overrides in config/assets.yaml")
        return (f"{self.symbol}: {self.asset_class} by {self.how} (calendar {self.calendar}, "
                f"{unit})")


def explain(assets: AssetsConfig, symbol: str) -> ClassChoice:
    """The class ``assets.classify(symbol)`` gives, with how it was decided."""
    cls = assets.classify(symbol)
    how, pattern = "override", None
    if symbol not in assets.overrides:
        for pat in assets.asset_class(cls).patterns:
            hit = (re.match(pat[3:], symbol) if pat.startswith("re:")
                   else fnmatch.fnmatchcase(symbol, pat))
            if hit:
                pattern = pat
                break
        how = f"pattern {pattern!r}"
    calendar = assets.asset_class(cls).calendar
    return ClassChoice(symbol, cls, calendar, how, pattern == CATCH_ALL,
                       lots=cls == "crypto" or calendar == "24/7")
