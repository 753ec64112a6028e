"""What one readiness check says: a :class:`Verdict` with the evidence in numbers.

A check returns ``Verdict(verdict, detail, evidence)`` through :func:`passed`,
:func:`failed`, :func:`warned` or :func:`skipped`; the runner fills in the claim's name,
whether it is required, its statement and the seconds it took.

* ``PASS``: shown now, on this install.
* ``FAIL``: shown broken; ``detail`` names what broke.
* ``WARN``: could not be shown and is not known broken (a live source offline); never a PASS.
* ``SKIP``: its subject is not configured here (no live venue); ``detail`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
VERDICTS = (PASS, FAIL, WARN, SKIP)


def _plain(value: Any) -> Any:
    """Evidence as JSON-ready values: numpy scalars to Python, non-finite floats to text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class Verdict:
    """One claim's result. ``evidence`` holds numbers (and short names); ``detail`` is one
    sentence: what was shown, or what broke."""

    claim: str
    verdict: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    required: bool = True
    statement: str = ""
    check: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def named(self, claim: str, *, required: bool, statement: str, check: str,
              seconds: float) -> Verdict:
        return replace(self, claim=claim, required=required, statement=statement, check=check,
                       seconds=seconds)

    @property
    def blocks(self) -> bool:
        """Whether this verdict keeps ``ready`` from exiting 0: a FAIL anywhere, or a
        required claim that did not PASS."""
        return self.verdict == FAIL or (self.required and self.verdict != PASS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "required": self.required,
            "detail": self.detail,
            "evidence": _plain(self.evidence),
            "seconds": round(self.seconds, 3),
            "statement": self.statement,
            "check": self.check,
        }


def passed(detail: str, **evidence: Any) -> Verdict:
    return Verdict("", PASS, detail, evidence)


def failed(detail: str, **evidence: Any) -> Verdict:
    return Verdict("", FAIL, detail, evidence)


def warned(detail: str, **evidence: Any) -> Verdict:
    return Verdict("", WARN, detail, evidence)


def skipped(detail: str, **evidence: Any) -> Verdict:
    return Verdict("", SKIP, detail, evidence)


def all_passed(parts: dict[str, str | None], ok: str, **evidence: Any) -> Verdict:
    """PASS with ``ok`` when every value of ``parts`` is None, else FAIL naming each
    problem (``parts``: item -> what broke, or None)."""
    broken = {k: v for k, v in parts.items() if v}
    if broken:
        return failed("; ".join(f"{k}: {v}" for k, v in broken.items()),
                      broken=sorted(broken), **evidence)
    return passed(ok, **evidence)
