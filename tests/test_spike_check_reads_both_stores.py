"""``python -m benchmarks.spikes.check`` compares the prototypes with research_lib's fast
replay read back from its ledger: the fast replay keeps decisions and positions as column
blocks (research_lib.ledger_columns), so a raw ``SELECT ... FROM decisions`` saw none and
the check printed ``verdicts {...} vs {}`` and ``positions rows N vs 0``."""

from __future__ import annotations

from benchmarks._common import frames_for
from benchmarks.spikes.check import configs, reference


def test_the_spike_checks_reference_holds_the_fast_replays_decisions_and_positions():
    frames = frames_for([("^GSPC", "^GSPC")])
    ref = reference(frames, configs(1)["relaxed"], fast=True)
    steps = len(ref["equity"])
    assert steps > 1000
    assert ref["positions"] == steps  # one symbol: a position row per step
    assert len(ref["decisions"]) > 0.9 * steps
    assert {r[2] for r in ref["decisions"]} >= {"HOLD"}
