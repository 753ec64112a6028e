"""What to run (RunSpec, frozen) apart from the wiring (Wiring); SessionSpec is both."""

from __future__ import annotations

import dataclasses

import pytest

from research_lib.paper.session import Session
from research_lib.paper.spec import RUN_FIELDS, WIRING_FIELDS, RunSpec, SessionSpec, Wiring


def test_session_spec_splits_each_keyword_to_the_run_spec_or_the_wiring():
    assert not set(RUN_FIELDS) & set(WIRING_FIELDS)
    ks = object()
    spec = SessionSpec(symbols=["AAA"], model="baseline:sma_cross", max_steps=3,
                       kill_switch=ks, log_file=False)
    run, wiring = spec.split()
    assert run == RunSpec(symbols=["AAA"], model="baseline:sma_cross", max_steps=3)
    assert wiring.kill_switch is ks and wiring.log_file is False


def test_specs_are_frozen():
    for obj in (RunSpec(), Wiring(), SessionSpec()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.symbols = ("X",) if hasattr(obj, "symbols") else None  # type: ignore[misc]
            obj.log_file = False  # type: ignore[misc]


def test_session_takes_a_run_spec_and_wiring_or_the_keyword_form():
    s = Session(RunSpec(symbols=["AAA"]), Wiring(log_file=False))
    assert s.spec == RunSpec(symbols=["AAA"]) and s.wiring.log_file is False
    t = Session(SessionSpec(symbols=["AAA"], log_file=False))
    assert t.spec == s.spec and t.wiring == s.wiring


def test_resume_reads_the_recorded_values_and_leaves_the_spec_as_asked(tmp_path):
    from tests.kit.paper import FrameSource, make_session, random_walk

    src = FrameSource({"AAA": random_walk(60, symbol="AAA")})
    make_session(tmp_path, symbols=["AAA"], source=src, start="2021-02-01",
                 model="baseline:sma_cross", dry_run=True, run_id="r", max_steps=3).run()
    s = make_session(tmp_path, resume="r", source=src, max_steps=1)
    s.run()
    assert s.spec.model is None and s.spec.dry_run is False and s.spec.start is None
    v = s.run_values
    assert (v.model, v.dry_run, v.mode) == ("baseline:sma_cross", True, "replay")
    assert v.start.startswith("2021-02-01") and (s.model_name, s.dry_run) == (v.model, True)
