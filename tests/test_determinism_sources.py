"""Two runs of the same inputs, seed and config write the same ledger, also when the data
comes from a source object (a notebook's frames): the run records the source by name, not
by its repr (which held a memory address)."""

from __future__ import annotations

import numpy as np

from research_lib.data.frames import FramesSource
from research_lib.data.source_base import source_label
from research_lib.ledger_read import deterministic_dump
from research_lib.session import run_session
from tests.kit.paper import random_walk


def _frames() -> dict:
    return {s: random_walk(120, seed=k, symbol=s, freq="B") for k, s in enumerate(["AAA", "BBB"])}


def test_two_runs_on_two_frames_sources_of_the_same_frames_then_identical_ledgers(tmp_path):
    dumps = []
    for k in range(2):
        res = run_session(symbols=["AAA", "BBB"], source=FramesSource(_frames()),
                          model="baseline:sma_cross", start="2021-03-01",
                          run_dir=str(tmp_path / f"runs{k}"), run_id="same", log_file=False)
        dumps.append(deterministic_dump(res.ledger_path))
    assert dumps[0] == dumps[1]
    assert np.any([r for r in dumps[0]["fills"]])  # it traded: the comparison means something


def test_source_label_when_an_object_then_its_name_and_never_an_address():
    assert source_label("csv:/data/x") == "csv:/data/x"
    assert source_label(FramesSource({"A": None, "B": None}, name="mine")) == "mine:A,B"

    class NoName:
        pass

    label = source_label(NoName())
    assert label == "<NoName>" and "0x" not in label
