"""Benchmarks of research_lib (issue 6): scripts that print figures, never timed tests.

``python -m benchmarks`` (or ``make bench``) runs them all; see ``benchmarks/__main__.py``.
"""
