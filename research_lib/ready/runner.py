"""Run the checklist: each claim's check, timed, in one temporary folder, into a report.

A check that raises is a FAIL naming the exception (fail closed): a claim is never passed
because its check could not run. ``ready`` exits 0 only when every required claim PASSes
and no claim FAILs (:attr:`ReadyReport.exit_code`).
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import parse_symbols, project_root
from ..errors import ConfigError
from ..telemetry import get_logger, get_run_id, log_event
from .checklist import Claim, load_checklist
from .context import Context, captured_logs, run_id_kept
from .settings import load_ready
from .verdict import FAIL, PASS, SKIP, VERDICTS, WARN, Verdict, failed

log = get_logger("ready")


@dataclass(frozen=True)
class ReadyReport:
    verdicts: list[Verdict]
    symbols: list[str]
    home: str
    started: str  # UTC, ISO
    seconds: float
    run_id: str
    offline: bool
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every required claim PASSes and no claim FAILs, else 1."""
        return 1 if any(v.blocks for v in self.verdicts) else 0

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(v.verdict for v in self.verdicts)
        return {k: c.get(k, 0) for k in VERDICTS}

    @property
    def blocking(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.blocks]

    def verdict(self, claim: str) -> Verdict:
        for v in self.verdicts:
            if v.claim == claim:
                return v
        raise KeyError(f"no claim {claim!r} in this report; claims: "
                       f"{[v.claim for v in self.verdicts]}")

    def headline(self) -> str:
        c = self.counts
        state = "READY" if self.exit_code == 0 else "NOT READY"
        why = ""
        if self.exit_code:
            why = ": " + ", ".join(
                f"{v.claim} {v.verdict}{' (required)' if v.required else ''}"
                for v in self.blocking)
        return (f"{state}: {c[PASS]} passed, {c[FAIL]} failed, {c[WARN]} warned, {c[SKIP]} "
                f"skipped in {self.seconds:.1f} s{why}")

    def to_dicts(self) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self.verdicts]


def environment() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for lib in ("research_lib", "numpy", "pandas", "onnxruntime", "scikit-learn"):
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def select(claims: list[Claim], only: Sequence[str] | None) -> list[Claim]:
    if not only:
        return claims
    names = [c.name for c in claims]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError(f"--only {unknown[0]!r} is not a claim of the checklist; claims: "
                          f"{', '.join(names)}")
    return [c for c in claims if c.name in only]


def run_claim(claim: Claim, ctx: Context) -> Verdict:
    t0 = time.perf_counter()
    try:
        with run_id_kept(), captured_logs():
            got = claim.function()(ctx, **dict(claim.params))
        if not isinstance(got, Verdict):
            got = failed(f"the check returned {type(got).__name__}, not a Verdict")
    except Exception as exc:  # fail closed: a check that cannot run shows nothing
        got = failed(f"the check raised {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    out = got.named(claim.name, required=claim.required, statement=claim.statement,
                    check=claim.check, seconds=seconds)
    log_event(log, "ready_claim", claim=claim.name, verdict=out.verdict, detail=out.detail,
              seconds=round(seconds, 3))
    return out


def run_ready(symbols: str | Sequence[str] | None = None, *, offline: bool = False,
              only: Sequence[str] | None = None) -> ReadyReport:
    """``research-lib ready``: every claim of the checklist, checked now, on this install.

    ``symbols``: the configured symbols instead of ``config/ready.yaml``'s; ``offline``:
    the live source is not asked (its claim WARNs "offline"); ``only``: these claims."""
    settings = load_ready()
    claims = select(load_checklist(), only)
    syms = parse_symbols(symbols) if symbols else list(settings.symbols)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="research-lib-ready-") as tmp:
        ctx = Context(home=project_root(), settings=settings, symbols=syms,
                      scratch_root=Path(tmp), offline=offline)
        for claim in claims:
            verdicts.append(run_claim(claim, ctx))
    return ReadyReport(verdicts=verdicts, symbols=syms, home=str(project_root()),
                       started=started.isoformat(timespec="seconds"),
                       seconds=time.perf_counter() - t0, run_id=get_run_id(), offline=offline,
                       environment=environment())
