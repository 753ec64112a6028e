"""``research-lib ready``: the readiness gate. Each claim of the checklist
(``research_lib/checklists/paper_ready.yaml`` with a project's ``config/checklists/*.yaml``
on top) is checked now, on this install, in scratch folders, into a :class:`Verdict` with
its evidence in numbers; :func:`run_ready` returns the :class:`ReadyReport`.

One module per family of checks: ``checks_data`` (sample, cache, live source, data sanity),
``checks_features``, ``checks_models``, ``checks_router``, ``checks_risk``, ``checks_kill``,
``checks_crash``, ``checks_runtime`` (logs, latency, headless), ``checks_venue`` (a configured
venue reconciles with its latest run). The text table and the self-contained HTML report
are in ``render``.
"""

from __future__ import annotations

from .runner import ReadyReport, run_ready
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

__all__ = ["FAIL", "PASS", "SKIP", "WARN", "ReadyReport", "Verdict", "run_ready"]
