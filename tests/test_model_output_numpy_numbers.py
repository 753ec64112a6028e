"""A model that gives its probabilities as numpy numbers (np.float32 from an ONNX or
sklearn model, np.int64 0/1 from a classifier) is recorded as plain REAL numbers by both
engines: the step loop bound np.float32 to SQLite as a 4-byte BLOB (``b'fff?'``), so the
two engines' ledgers differed and the summary's readers of the step ledger failed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kit.paper import FrameSource, ScriptedModel, ledger_rows, random_walk, write_config
from tests.test_fast_replay import _u, equivalent

SYMS = ["AAA", "BBB-USD"]


def _numpy_probs(kind: type) -> object:
    values = [0.9, 0.1, 0.5, 0.5, 0.5, 1.0, 0.0] if kind is not np.int64 else [1, 0, 0, 1]

    def prob(s: str, n: int, c: float) -> object:
        return kind(values[int(_u(kind.__name__, s, n // 5) * len(values))])
    return prob


@pytest.mark.parametrize("kind", [np.float32, np.float16, np.int64])
def test_numpy_number_probabilities_are_stored_as_real_numbers_by_both_engines(tmp_path,
                                                                                kind):
    src = FrameSource({"AAA": random_walk(120, seed=41, symbol="AAA"),
                       "BBB-USD": random_walk(120, seed=42, price=900.0, symbol="BBB-USD")})
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 10})
    step, fast = equivalent(tmp_path, lambda: {"router": ScriptedModel(SYMS, _numpy_probs(kind))},
                            symbols=SYMS, source=src, start="2021-01-20", config_dir=cfg,
                            what=f"{kind.__name__} probabilities")
    types = dict(ledger_rows(step.ledger_path, "SELECT typeof(probability), COUNT(*) "
                                               "FROM decisions GROUP BY 1"))
    assert set(types) <= {"real", "null"} and types.get("real"), types
    assert step.summary["fills"] > 0
