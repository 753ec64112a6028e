"""Out of sample by default (issue 14): the shipped models keep a held-out tail, the default
windows of ``paper``, reports and ``make run`` start after the deciding models' training,
and every session is stamped IN-SAMPLE (with its count of decisions) or OUT-OF-SAMPLE."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

import research_lib as rl
from research_lib.cli import main
from research_lib.config import load_assets
from research_lib.data import load
from research_lib.ledger_read import read_run
from research_lib.models.windows import (
    TrainWindow,
    default_start,
    registry_windows,
    sample_section,
    window_from_card,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("universal_v1", "equities_v1", "crypto_v1", "options_v1")


def card(name: str) -> dict:
    return json.loads((ROOT / "models" / f"{name}.json").read_text())


def paper(capsys, tmp_path, *args: str, json_out: bool = True):
    code = main(["paper", *args, "--run-dir", str(tmp_path / "runs"),
                 *(["--json"] if json_out else [])])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out) if json_out else out


# ------------------------------------------------------------------ shipped models
@pytest.mark.parametrize("name", MODELS)
def test_shipped_card_when_read_then_names_its_training_window_and_a_held_out_tail(name):
    c = card(name)
    tw, ow = c["training_window"], c["out_of_sample_window"]
    assert (tw["start"], tw["end"]) == (c["data"]["span"]["first"], c["data"]["span"]["last"])
    assert ow["start"] == str((pd.Timestamp(tw["end"]) + pd.Timedelta(days=1)).date())
    assert ow["end"] is not None and ow["end"] > ow["start"]
    # the held-out tail is real data the sample ships, after the training window
    syms = [s["symbol"] for s in c["data"]["symbols"]] if c["data"]["source"] == "sample" \
        else ["^GSPC"]
    last = max(f.index.max() for f in load(syms).values())
    assert last.strftime("%Y-%m-%d") == ow["end"] and last > pd.Timestamp(tw["end"], tz="UTC")


@pytest.mark.parametrize("name", MODELS)
def test_shipped_card_when_read_then_headline_fills_at_next_open_close_fill_labelled(name):
    t = card(name)["trading"]
    assert t["fill"].startswith("next_open")
    side = t["close_fill_for_comparison"]
    assert side["label"].startswith("OPTIMISTIC: filled at the signal bar's own close")
    assert set(side["portfolio"]) == set(t["portfolio"])  # the same baselines beside it
    assert side["portfolio"]["model"] != t["portfolio"]["model"]
    assert "filled at the next open as the paper broker fills" in card(name)["verdict"]


def test_shipped_models_when_pinned_then_pin_card_and_file_agree():
    assets = load_assets(ROOT / "config" / "assets.yaml")
    golden = load_assets(ROOT / "tests" / "golden" / "config" / "assets.yaml")
    for name in MODELS:
        sha = hashlib.sha256((ROOT / "models" / f"{name}.onnx").read_bytes()).hexdigest()
        assert assets.models[name].sha256 == card(name)["sha256"] == sha
        assert golden.models[name].sha256 in (sha, None)  # the golden config leaves one out


def test_shipped_models_when_retrained_by_make_models_then_windows_as_documented():
    text = (ROOT / "Makefile").read_text()
    for name in MODELS:
        spec = card(name)["spec"]
        line = next(ln for ln in text.splitlines() if f"--out models/{name}.onnx" in ln)
        assert f"--start {spec['start']} --end {spec['end']}" in line  # the same cut
    assert card("equities_v1")["training_window"]["end"] == "2015-12-31"
    assert card("universal_v1")["training_window"]["end"] == "2015-12-31"
    assert card("options_v1")["training_window"]["end"] == "2015-12-31"
    assert card("crypto_v1")["training_window"]["end"] == "2018-12-31"


# ------------------------------------------------------------------ default windows
def test_paper_when_no_start_then_replays_after_universal_training_out_of_sample(capsys,
                                                                              tmp_path):
    s = paper(capsys, tmp_path, "--symbols", "SPY,QQQ")
    assert s["sample"]["stamp"] == "OUT-OF-SAMPLE"
    assert s["sample"]["in_sample_decisions"] == 0
    assert s["sample"]["models"] == {"universal_v1": {"train_start": "1999-01-04",
                                                      "train_end": "2015-12-31"}}
    assert s["first_step_ts"] > "2016-01-01"


def test_paper_when_no_start_and_crypto_models_decide_then_starts_after_2018(capsys, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    s = paper(capsys, tmp_path, "--symbols", "BTC-USD,ETH-USD")
    assert s["first_step_ts"].startswith("2019-01-01")
    assert s["sample"]["stamp"] == "OUT-OF-SAMPLE"
    assert list(s["sample"]["models"]) == ["crypto_v1"]
    assert any("the default window starts on 2019-01-01, after the deciding models' "
               "training (crypto_v1 to 2018-12-31)" in n for n in s["notes"])
    # the same with the model forced by name
    forced = paper(capsys, tmp_path, "--symbols", "BTC-USD", "--model", "crypto_v1")
    assert forced["first_step_ts"].startswith("2019-01-01")


def test_paper_when_no_start_with_a_baseline_then_the_last_two_years_as_before(capsys,
                                                                             tmp_path):
    s = paper(capsys, tmp_path, "--symbols", "BTC-USD", "--model", "baseline:sma_cross")
    assert s["first_step_ts"].startswith("2018-01-1")  # two years before 2020-01-17
    assert s["sample"] == {"stamp": "OUT-OF-SAMPLE", "in_sample_decisions": 0,
                           "decisions": s["sample"]["decisions"], "models": {},
                           "unknown_window": []}


def test_paper_when_the_data_ends_before_training_does_then_in_sample_and_said(capsys,
                                                                             tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    s = paper(capsys, tmp_path, "--symbols", "SPY,BTC-USD")
    assert s["sample"]["stamp"] == "IN-SAMPLE" and s["sample"]["in_sample_decisions"] > 0
    assert any(n.startswith("IN-SAMPLE: the data ends on 2018-12-31, before the deciding "
                            "models' training ends") for n in s["notes"])


def test_paper_when_start_inside_training_then_in_sample_with_the_count(capsys, tmp_path):
    text = paper(capsys, tmp_path, "--symbols", "SPY,QQQ", "--start", "2015-07-01", "--end",
                 "2016-03-31", json_out=False)
    ledger = next((tmp_path / "runs").glob("*/ledger.sqlite"))
    d = read_run(ledger)["decisions"].dropna(subset=["probability"])
    n = int((d["ts"] <= pd.Timestamp("2015-12-31", tz="UTC")).sum())
    assert n > 200
    assert (f"sample     IN-SAMPLE: {n} of {len(d)} decisions on bars the deciding model was "
            "trained on (universal_v1 trained 1999-01-04..2015-12-31)") in text


def test_reports_when_run_as_make_run_does_then_out_of_sample(tmp_path):
    spy = rl.paper_session("SPY,QQQ", run_dir=str(tmp_path / "a"))
    btc = rl.paper_session("BTC-USD,ETH-USD", flag=1, run_dir=str(tmp_path / "b"))
    for res in (spy, btc):
        assert res.summary["sample"]["stamp"] == "OUT-OF-SAMPLE"
        assert res.summary["sample"]["decisions"] > 500
    assert btc.summary["first_step_ts"].startswith("2019-01-01")
    assert "FLAG_ASSET_SPECIFIC_MODELS=1" in (ROOT / "Makefile").read_text()


# ------------------------------------------------------------------ units
def test_default_start_when_years_window_is_later_then_unchanged_else_moved_or_in_sample():
    w = {"m": TrainWindow("2010-01-01", "2015-12-31")}
    end = pd.Timestamp("2018-12-31", tz="UTC")
    late = pd.Timestamp("2017-01-01", tz="UTC")
    assert default_start(end, late, w) == (late, None)
    start, note = default_start(end, pd.Timestamp("2014-01-01", tz="UTC"), w)
    assert start == pd.Timestamp("2016-01-01", tz="UTC") and "starts on 2016-01-01" in note
    early_end = pd.Timestamp("2015-06-30", tz="UTC")
    start, note = default_start(early_end, pd.Timestamp("2014-01-01", tz="UTC"), w)
    assert start == pd.Timestamp("2014-01-01", tz="UTC") and note.startswith("IN-SAMPLE")
    assert default_start(end, late, {"x": TrainWindow()}) == (late, None)


def _ledger(rows: list[tuple[str, str | None, float | None]]) -> sqlite3.Connection:
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE steps (step INTEGER, ts TEXT)")
    c.execute("CREATE TABLE decisions (ts TEXT, model TEXT, probability REAL)")
    for i, ts in enumerate(sorted({r[0] for r in rows})):
        c.execute("INSERT INTO steps VALUES (?, ?)", (i, ts))
    c.executemany("INSERT INTO decisions VALUES (?, ?, ?)", rows)
    return c


def test_sample_section_when_the_flag_flips_mid_run_then_each_decision_counts_by_its_model():
    t = "2016-01-{:02d}T00:00:00+00:00".format
    conn = _ledger([
        (t(4), "universal_v1", 0.6), (t(5), "universal_v1", 0.4),   # universal to 01-04
        (t(5), "crypto_v1", 0.7), (t(6), "crypto_v1", 0.5),          # crypto to 01-06
        (t(6), "crypto_v1", None),                                   # no signal: not counted
        (t(7), "baseline:sma_cross", 1.0),                          # fits nothing
        (t(7), "mine", 0.5),                                         # window unknown
    ])
    windows = {"universal_v1": TrainWindow("2010-01-01", "2016-01-04"),
               "crypto_v1": TrainWindow("2015-01-01", "2016-01-06")}
    s = sample_section(conn, windows, deciding=["universal_v1"])
    assert s["stamp"] == "IN-SAMPLE"
    assert s["in_sample_decisions"] == 3  # universal 01-04, crypto 01-05 and 01-06
    assert s["decisions"] == 6
    assert set(s["models"]) == {"universal_v1", "crypto_v1", "mine"}
    assert s["unknown_window"] == ["mine"]
    later = sample_section(conn, {k: TrainWindow("2010-01-01", "2015-12-31") for k in windows})
    assert (later["stamp"], later["in_sample_decisions"]) == ("OUT-OF-SAMPLE", 0)


def test_window_from_card_when_an_older_card_then_its_data_span_and_a_legacy_card_unknown():
    old = {"name": "x", "data": {"span": {"first": "2001-01-02", "last": "2010-12-31"}}}
    assert window_from_card(old) == TrainWindow("2001-01-02", "2010-12-31")
    assert not window_from_card({"name": "legacy", "origin": {"kind": "legacy_pickle"}}).known


def test_registry_windows_when_a_card_is_not_the_pinned_files_then_unknown(tmp_path):
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(ROOT / "models", folder)
    c = card("crypto_v1")
    c["sha256"] = "0" * 64
    (folder / "crypto_v1.json").write_text(json.dumps(c))
    assets = load_assets(ROOT / "config" / "assets.yaml")
    w = registry_windows(assets, folder)
    assert not w["crypto_v1"].known
    assert w["universal_v1"] == TrainWindow("1999-01-04", "2015-12-31")
    data = yaml.safe_load((ROOT / "config" / "assets.yaml").read_text())
    assert data["models"]["crypto_v1"]["sha256"] != "0" * 64


def test_sample_when_fast_engine_then_the_same_stamp_and_count_as_the_step_engine(capsys,
                                                                                  tmp_path):
    args = ("--symbols", "SPY,QQQ", "--start", "2015-09-01", "--end", "2016-02-29")
    step = paper(capsys, tmp_path, *args)
    fast = paper(capsys, tmp_path, *args, "--fast")
    assert fast["engine"] == "fast"
    assert fast["sample"] == step["sample"]
    assert step["sample"]["stamp"] == "IN-SAMPLE" and step["sample"]["in_sample_decisions"] > 0


def test_sample_of_run_when_read_back_from_the_ledger_then_as_the_session_stamped(capsys,
                                                                                 tmp_path):
    from research_lib.models.windows import sample_of_run

    s = paper(capsys, tmp_path, "--symbols", "SPY,QQQ", "--start", "2015-10-01", "--end",
              "2016-01-29")
    assert sample_of_run(Path(s["ledger"]).parent) == s["sample"]
    assert s["sample"]["stamp"] == "IN-SAMPLE"
