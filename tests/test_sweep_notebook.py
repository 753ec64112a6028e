"""Notebook sweeps (issue 15): the paper-session notebook run over a tiny parameter grid
with papermill through the sweep backends: one HTML page per point plus an index page."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import research_lib as rl
from research_lib.cli import main
from research_lib.errors import ConfigError

GRID = {"symbols": ["QQQ", "BTC-USD"], "start": ["2017-01-01"], "end": ["2017-03-31"]}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("nbsweep") / "out"
    return rl.notebook_sweep("paper_session", GRID, out=out, jobs=2, backend="local")


def test_notebook_sweep_when_run_on_loky_then_one_page_per_point_and_an_index(pages):
    res = pages
    t = pd.read_parquet(res.results_path)
    assert t["status"].tolist() == ["ok", "ok"], t["error"].tolist()
    assert t["symbols"].tolist() == ["QQQ", "BTC-USD"]
    texts = [(res.out / "pages" / p).read_text(encoding="utf-8") for p in t["page"]]
    assert all("data:image/png;base64," in x for x in texts)  # figures were kept
    # each page is its own point's report: the other point's symbol is nowhere in it
    assert "BTC-USD" not in texts[0] and "BTC-USD" in texts[1]
    assert all('src="http' not in x for x in texts)  # offline pages
    index = res.index_path.read_text(encoding="utf-8")
    for page in t["page"]:
        assert f'href="pages/{page}"' in index
    assert (res.ran, res.skipped, res.failed) == (2, 0, 0)


def test_notebook_sweep_when_rerun_then_written_pages_are_skipped(pages, capsys):
    res = pages
    stamps = [(res.out / "pages" / p).stat().st_mtime_ns for p in res.table["page"]]
    rc = main(["sweep", "--notebook", "paper_session", "--grid", "symbols=QQQ;BTC-USD",
               "--grid", "start=2017-01-01", "--grid", "end=2017-03-31",
               "--out", str(res.out), "--backend", "serial", "--json"])
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    assert [r["page"] for r in rows] == res.table["page"].tolist()  # same sweep, same id
    assert [(res.out / "pages" / p).stat().st_mtime_ns for p in res.table["page"]] == stamps


def test_notebook_sweep_when_a_key_is_not_a_parameter_then_refused_before_running(tmp_path,
                                                                                  capsys):
    with pytest.raises(ConfigError, match="notebook 'paper_session' has no parameter "
                                          "'window'; its parameters: dry_run, end"):
        rl.notebook_sweep("paper_session", {"window": [3]}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()
    assert main(["sweep", "--notebook", "paper_session", "--symbols", "SPY", "--grid",
                 "start=2017-01-01", "--out", str(tmp_path / "p")]) == 2
    assert "--symbols cannot go with --notebook" in capsys.readouterr().err
    assert main(["sweep", "--notebook", "../etc", "--grid", "start=2017-01-01",
                 "--out", str(tmp_path / "q")]) == 2
