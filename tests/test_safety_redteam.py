"""Issue 10, red team of the merged round 2: interactions between the classes' fixes.

Each test failed on the merged code before its fix (see the commit that added it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import yaml

from tests.acceptance.paper_kit import make_session, write_config


def _bump(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_resume_after_an_assets_reload_that_remaps_a_model_then_it_continues(tmp_path):
    """A hot reload of assets.yaml that maps the run's class to another model (allowed: no
    symbol changes class) recorded the digests of the models mapped at the start, so the
    resume with that very file was refused ('model file equities_v1 sha256: ... ->
    <absent>')."""
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    calls = {"n": 0}

    def clock() -> float:  # asked once per step by the bar gate: edit mid-run
        calls["n"] += 1
        if calls["n"] == 80:
            p = cfg / "assets.yaml"
            d = yaml.safe_load(p.read_text())
            d["classes"]["equities"]["model"] = "universal_v1"
            p.write_text(yaml.safe_dump(d))
            _bump(p)
        return time.time()

    first = make_session(tmp_path, symbols=["SPY"], source="sample", start="2017-01-01",
                         end="2017-12-31", run_id="a1", max_steps=40, clock=clock).run()
    with sqlite3.connect(first.ledger_path) as c:
        assert c.execute("SELECT to_state FROM state_changes WHERE scope='config'"
                         ).fetchall() == [("RELOADED",)]
        [(inputs,)] = c.execute("SELECT inputs FROM config_history").fetchall()
    import json

    assert sorted(json.loads(inputs)["models"]) == ["universal_v1"]  # what it decides with
    again = make_session(tmp_path, resume="a1", max_steps=3).run()
    assert again.exit_code == 0 and again.summary["steps"] == 43
