"""``research-lib report paper_session --run RUN``: the tearsheet of an existing run (a
replay, a fast replay, a resumed run) as one self-contained HTML page: a real title, every
section, no script fetched from anywhere, no local path, no pandas printout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from research_lib.cli import main
from tests.kit.paper import write_config

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Key numbers", "Equity against the benchmarks", "Returns by month and year",
            "Drawdowns", "Rolling risk", "Return distribution", "Round-trip trades",
            "Attribution per symbol", "Exposure, turnover and costs", "Operations")
PAPER = ["paper", "--symbols", "SPY,BTC-USD", "--model", "baseline:sma_cross", "--start",
         "2017-01-01", "--end", "2018-06-30", "--json"]


def paper(capsys, *argv: str) -> dict:
    code = main([*PAPER, *argv])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return json.loads(cap.out)


@pytest.fixture
def cfg(tmp_path):
    return write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})


def make_run(kind: str, tmp_path: Path, cfg: Path, capsys) -> dict:
    runs = tmp_path / "runs"
    common = ["--run-dir", str(runs), "--config-dir", str(cfg), "--run-id", "r1"]
    if kind == "replay":
        return paper(capsys, *common)
    if kind == "fast":
        return paper(capsys, *common, "--fast")
    first = paper(capsys, *common, "--max-steps", "120")
    assert first["steps"] == 120
    code = main(["paper", "--resume", "r1", "--run-dir", str(runs), "--config-dir", str(cfg),
                 "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    out = json.loads(cap.out)
    assert out["steps"] > 120 and out["steps_this_session"] == out["steps"] - 120
    return out


def check_page(text: str, tmp_path: Path) -> None:
    title = re.search(r"<title>([^<]*)</title>", text).group(1)
    assert title.startswith("Paper session: SPY, BTC-USD, 2017-01-0"), title
    # read back from the ledger, as the session's summary stamped it (a rule baseline has
    # no training window to overlap)
    assert title.endswith("[OUT-OF-SAMPLE]"), title
    for s in SECTIONS:
        assert f">{s}<" in text, s
    # nothing fetched: no script with a src, no module import from a URL
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)
    assert not re.search(r"import\(\s*[\"']https?://", text)
    assert "cdnjs" not in text  # require.js, MathJax, mermaid: nbconvert's CDN defaults
    # plotly.js names its CDN once, as the default topojson folder of geo maps (none here)
    assert text.count("cdn.plot.ly") == 1 and 'dflt:"https://cdn.plot.ly/un/"' in text
    assert text.count("plotly.js v") == 1  # the library once, inline
    assert text.count("Plotly.newPlot(") >= 4  # the zoomable charts
    assert len(re.findall(r"data:image/png;base64,", text)) >= 8  # the statistical figures
    for bad in ("Series([]", "Empty DataFrame", str(tmp_path), str(ROOT)):
        assert bad not in text, bad
    assert not re.search(r"dtype: (float|int|object|bool)", text)  # a pandas printout
    assert 'download="trades_r1.csv"' in text
    for unit in ("drawdown (%)", "equity (account currency, log)", "exposure (% of equity)",
                 "L (account currency)\""):
        assert unit in text, unit
    assert "Win rate of closed round trips" in text and "Time in market" in text


@pytest.mark.parametrize("kind", ["replay", "fast", "resumed"])
def test_report_run_when_an_existing_run_then_html_tearsheet_of_that_run(
        kind, tmp_path, cfg, capsys, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(ROOT))
    summary = make_run(kind, tmp_path, cfg, capsys)
    out = tmp_path / "html" / "ps.html"
    code = main(["report", "paper_session", "--run", "r1", "--run-dir", str(tmp_path / "runs"),
                 "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    text = out.read_text()
    check_page(text, tmp_path)
    # the report shows that run, not a new replay
    m = re.search(r"steps=(\d+) orders=(\d+) fills=(\d+)", text)
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == \
        (summary["steps"], summary["orders"], summary["fills"])
    assert f"engine {'fast' if kind == 'fast' else 'step'}" in text
    assert not (ROOT / "runs" / "reports" / "r1").exists()


def test_report_run_when_unknown_run_then_exit_2_naming_it_and_no_html(tmp_path, capsys):
    out = tmp_path / "x.html"
    code = main(["report", "paper_session", "--run", "nope", "--run-dir", str(tmp_path),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "run 'nope'" in err and "ledger.sqlite" in err
    assert not out.exists()


def test_report_run_when_also_given_as_parameter_then_refused(tmp_path, capsys):
    code = main(["report", "paper_session", "--run", "a", "-p", "run", "b"])
    assert code == 2 and "--run RUN or -p run RUN" in capsys.readouterr().err


def test_data_sanity_html_when_exported_then_no_cdn_script_and_a_real_title(tmp_path):
    from research_lib.notebooks import run_report

    text = run_report("data_sanity", {"symbols": "SPY"}, out=tmp_path / "ds.html",
                      progress=False).read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)  # was require.js and MathJax
    assert "https://cdnjs" not in text  # nor mermaid's dynamic import
    assert re.search(r"<title>([^<]*)</title>", text).group(1) == "Data sanity"


@pytest.mark.parametrize("sample, stamp", [
    ({"stamp": "OUT-OF-SAMPLE", "in_sample_decisions": 0, "models": {}}, "OUT-OF-SAMPLE"),
    ({"stamp": "IN-SAMPLE", "in_sample_decisions": 37,
      "models": {"universal_v1": "trained to 2020-01-17"}}, "IN-SAMPLE"),
    (None, "sample: unknown"),
])
def test_header_when_summary_carries_a_sample_stamp_then_title_and_header_show_it(
        sample, stamp, tmp_path):
    from research_lib.paper.session import run_session
    from research_lib.tearsheet import tearsheet

    res = run_session(symbols=["SPY", "BTC-USD"], model="baseline:buy_and_hold",
                      start="2018-01-01",
                      end="2018-03-31", run_dir=tmp_path / "runs", log_file=False)
    summary = dict(res.summary, sample=sample) if sample else dict(res.summary)
    summary.pop("sample", None) if sample is None else None
    ts = tearsheet(res.ledger_path, summary=summary)
    assert ts.title.endswith(f"[{stamp}]")
    head = ts.header()
    assert head.title == ts.title and stamp in head.body
    if sample and sample["in_sample_decisions"]:
        assert "37 decision(s) inside a deciding model" in head.body
        assert "universal_v1: trained to 2020-01-17" in head.body
    for row in ("Period", "Symbols", "Models", "Config", "Version", "engine step"):
        assert row in head.body, row
    assert "baseline:buy_and_hold" in head.body
    assert "SPY: proxy: S&amp;P 500 index ^GSPC" in head.body
    assert "BTC-USD:" not in head.body  # served as itself: no proxy line
    assert ts.proxy_notes() == [ts.meta["labels"]["SPY"]]


@pytest.mark.parametrize("start, end, stamp", [
    ("2015-10-01", "2016-03-31", "IN-SAMPLE"),  # universal_v1 is trained to 2015-12-31
    ("2017-01-01", "2017-03-31", "OUT-OF-SAMPLE"),
])
def test_tearsheet_when_only_the_run_is_given_then_the_sample_stamp_as_the_session_gave_it(
        start, end, stamp, tmp_path):
    from research_lib.paper.session import run_session
    from research_lib.tearsheet import tearsheet

    res = run_session(symbols=["SPY"], start=start, end=end, flag="0",
                      run_dir=tmp_path / "runs", run_id="r1", log_file=False)
    assert res.summary["sample"]["stamp"] == stamp
    ts = tearsheet("r1", run_dir=tmp_path / "runs")  # no summary: `report --run` does this
    assert ts.sample == res.summary["sample"]
    assert ts.title.endswith(f"[{stamp}]")
    head = ts.header().body
    # the sentence beside the stamp: the window as dates, not a dict, the stamp said once
    assert "universal_v1: trained 1999-01-04 to 2015-12-31" in head
    assert "train_start" not in head and head.count(stamp) == 2  # h1 title and the badge
    if stamp == "IN-SAMPLE":
        n = res.summary["sample"]["in_sample_decisions"]
        assert n > 0 and f"{n} decision(s) inside a deciding model" in head


def test_table_css_when_a_symbol_has_a_hyphen_then_the_first_column_does_not_wrap():
    # seen in a Chromium screenshot: "BTC-USD" broke after the hyphen in the trade list
    # (text cells wrap, so that "served as" notes stay narrow; the symbol column must not)
    from research_lib.tearsheet.html import CSS

    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", CSS))
    first = {k.strip(): v for k, v in rules.items()}[".rl-table td.rl-text:first-child"]
    assert "white-space: nowrap" in first
    assert CSS.index(".rl-table td.rl-text {") < CSS.index(".rl-table td.rl-text:first-child")


def test_to_html_when_cell_ids_are_random_then_the_same_page_and_the_title_from_output(
        tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from research_lib.notebooks import to_html

    pages = []
    for k in range(2):
        cell = new_code_cell("ts.header()", outputs=[new_output(
            "display_data", data={"text/html": "<b>header</b>", "text/plain": "header"},
            metadata={"research_lib_title": "Paper session: AAA [OUT-OF-SAMPLE]"})])
        nb = new_notebook(cells=[new_markdown_cell("# Heading"), cell])
        for j, c in enumerate(nb.cells):
            c["id"] = f"random{k}{j}"  # papermill gives its injected cell a random id
        path = tmp_path / f"nb{k}.ipynb"
        nbformat.write(nb, str(path))
        pages.append(to_html(path, tmp_path / "page.html").read_text())
    assert pages[0] == pages[1]
    assert "<title>Paper session: AAA [OUT-OF-SAMPLE]</title>" in pages[0]
