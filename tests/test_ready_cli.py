"""``research-lib ready`` as a whole: it passes on this install (offline), prints one JSON
object per claim, writes a self-contained HTML report, leaves a user's runs/ byte-identical;
its checklist merges a project's files; its settings are validated; its exit code."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from research_lib.cli import main
from research_lib.errors import ConfigError
from research_lib.ready import FAIL, PASS, SKIP, WARN, Verdict
from research_lib.ready.checklist import load_checklist
from research_lib.ready.render import html_page, text
from research_lib.ready.runner import ReadyReport
from research_lib.ready.settings import load_ready, parse_ready

ROOT = Path(__file__).resolve().parents[1]


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and mtime (ns); folders by name."""
    out: dict[str, tuple[str, int]] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        st = p.lstat()
        out[rel] = ((hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"),
                    st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def user_runs(tmp_path_factory) -> Path:
    """A user's working folder with a real run in runs/ (and a note beside it)."""
    from research_lib.flags import KillSwitch
    from research_lib.paper.session import run_session

    cwd = tmp_path_factory.mktemp("user")
    run_session(symbols=["SPY"], model="baseline:sma_cross", start="2018-06-01",
                end="2018-06-29", run_dir=cwd / "runs", run_id="users-own-run",
                kill_switch=KillSwitch(cwd / "kill.flag", env={}))
    (cwd / "runs" / "NOTES.txt").write_text("my runs\n")
    return cwd


@pytest.fixture(scope="module")
def fresh(user_runs) -> dict:
    """``research-lib ready --offline --json --html`` on this install, from the user's
    folder; the runs/ tree before and after."""
    before = tree(user_runs / "runs")
    root_runs = tree(ROOT / "runs") if (ROOT / "runs").is_dir() else None
    env = {**os.environ, "RESEARCH_LIB_HOME": str(ROOT)}
    for k in ("FLAG_TRADING_HALTED", "FLAG_ASSET_SPECIFIC_MODELS"):
        env.pop(k, None)
    html = user_runs / "reports" / "ready.html"
    proc = subprocess.run([sys.executable, "-m", "research_lib.cli", "ready", "--offline",
                           "--json", "--html", str(html)], cwd=user_runs, env=env,
                          capture_output=True, text=True, timeout=600)
    return {"proc": proc, "before": before, "after": tree(user_runs / "runs"), "html": html,
            "root_runs": (root_runs, tree(ROOT / "runs") if root_runs is not None else None)}


def test_ready_when_run_on_this_install_then_every_required_claim_passes_and_exit_0(fresh):
    proc = fresh["proc"]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, (proc.stderr[-2000:], [
        (r["claim"], r["verdict"], r["detail"]) for r in rows if r["verdict"] != PASS])
    assert [r["claim"] for r in rows] == [c.name for c in load_checklist()]
    for r in rows:
        assert {"claim", "verdict", "evidence", "seconds"} <= set(r)
        assert isinstance(r["evidence"], dict) and r["seconds"] >= 0
        if r["required"]:
            assert r["verdict"] == PASS, r
    by = {r["claim"]: r for r in rows}
    assert by["data.live_source"]["verdict"] == WARN  # offline is never a PASS
    assert by["venue.reconciles"]["verdict"] == SKIP and by["venue.reconciles"]["detail"]
    assert by["latency.e2d_p99"]["evidence"]["p99_ms"] <= by["latency.e2d_p99"]["evidence"][
        "budget_ms"] == 150.0
    assert by["crash.kill_resume"]["evidence"]["killed_after_steps"] > 0


def test_ready_when_run_then_a_users_runs_folder_is_byte_identical(fresh):
    assert fresh["proc"].returncode in (0, 1)
    assert fresh["after"] == fresh["before"]
    assert "users-own-run/ledger.sqlite" in fresh["before"]
    before, after = fresh["root_runs"]
    assert after == before


def test_ready_html_when_written_then_self_contained_with_every_claim_coloured(fresh):
    page = fresh["html"].read_text(encoding="utf-8")
    assert "wrote " in fresh["proc"].stderr  # stdout holds only the JSON lines
    for c in load_checklist():
        assert f"<b>{c.name}</b>" in page
    assert page.count("class='v' style='background:#1a7f37'>PASS") >= 15
    assert "style='background:#9a6700'>WARN" in page
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"(src|href)\s*=|url\(|@import", page)


def test_html_when_a_detail_holds_markup_then_it_is_escaped():
    v = Verdict("x.claim", FAIL, "<script>alert(1)</script> broke", {"n": 1, "m": {"a": 0.5}},
                1.25, True, "a <b> claim", "x.check")
    rep = ReadyReport([v], ["SPY"], "/home", "2026-01-01T00:00:00+00:00", 2.0, "run-x", True)
    page = html_page(rep)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; broke" in page
    assert "<dt>m.a</dt><dd>0.5</dd>" in page and "NOT READY" in page
    assert "x.claim" in text(rep) and "evidence: n=1  m.a=0.5" in text(rep)


# -------------------------------------------------------------------- exit code
def _report(*vs: tuple[str, bool]) -> ReadyReport:
    verdicts = [Verdict(f"c{i}", verdict, "why", {}, 0.0, required)
                for i, (verdict, required) in enumerate(vs)]
    return ReadyReport(verdicts, ["SPY"], "/home", "t", 0.0, "run", False)


@pytest.mark.parametrize("verdicts, code", [
    ([(PASS, True), (WARN, False), (SKIP, False)], 0),
    ([(PASS, True), (FAIL, False)], 1),   # a FAIL anywhere blocks
    ([(WARN, True)], 1),                  # a required claim must PASS
    ([(SKIP, True)], 1),
    ([(FAIL, True)], 1),
])
def test_exit_code_when_verdicts_given_then_0_only_if_required_pass_and_nothing_fails(
        verdicts, code):
    rep = _report(*verdicts)
    assert rep.exit_code == code
    assert rep.headline().startswith("READY" if code == 0 else "NOT READY")


def test_cli_ready_when_symbols_given_then_checks_use_them(monkeypatch, capsys):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(ROOT))
    assert main(["ready", "--offline", "--json", "--symbols", "BTC-USD,SPY",
                 "--only", "router.flag_1"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["evidence"]["served"] == {"BTC-USD": "crypto_v1", "SPY": "equities_v1"}


def test_cli_ready_when_only_names_an_unknown_claim_then_exit_2_naming_the_claims(
        monkeypatch, capsys):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(ROOT))
    assert main(["ready", "--only", "risk.limit"]) == 2
    err = capsys.readouterr().err
    assert "--only 'risk.limit' is not a claim" in err and "risk.limits" in err


# --------------------------------------------------------------------- settings
def test_ready_settings_when_no_file_then_defaults_with_a_150ms_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(tmp_path))
    s = load_ready()
    assert s.e2d_p99_budget_ms == 150.0 and s.symbols == ("SPY", "QQQ", "BTC-USD", "ETH-USD")
    assert load_ready(ROOT / "config" / "ready.yaml") == s  # the shipped file says the same


@pytest.mark.parametrize("section, message", [
    ({"e2d_p99_budget_ms": -1}, "ready.e2d_p99_budget_ms must be in (0, 60000], got -1"),
    ({"e2d_p99_budget_ms": ".nan"}, "ready.e2d_p99_budget_ms must be a number, got '.nan'"),
    ({"e2d_p99_budget_ms": True}, "ready.e2d_p99_budget_ms must be a number, got True"),
    ({"budget": 150}, "unknown key ready.budget; allowed keys: cache_max_age, e2d_p99_budget_ms"),
    ({"symbols": ["SPY", True]}, "ready.symbols[1] parsed as boolean True"),
    ({"cache_max_age": "soon"}, "ready.cache_max_age must be a duration such as 5D"),
    ({"live_timeout_s": 0}, "ready.live_timeout_s must be in (0, 120], got 0"),
    ({"live_probe_symbol": " "}, "ready.live_probe_symbol must be a ticker"),
    ({"live_venue": "alpaca-paper"}, "ready.live_venue must be empty (paper only) or a venue "
     "research_lib has an adapter for: alpaca"),
])
def test_ready_settings_when_a_value_is_bad_then_refused_naming_file_key_value(section, message):
    with pytest.raises(ConfigError) as err:
        parse_ready({"ready": section}, "config/ready.yaml")
    assert str(err.value).startswith("config/ready.yaml: ") and message in str(err.value)


def test_cli_ready_when_ready_yaml_is_bad_then_exit_2_naming_the_key(tmp_path, monkeypatch,
                                                                    capsys):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "ready.yaml").write_text("ready:\n  e2d_p99_budget_ms: 0\n")
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    assert main(["ready", "--offline"]) == 2
    assert "ready.e2d_p99_budget_ms must be in (0, 60000], got 0" in capsys.readouterr().err


# -------------------------------------------------------------------- checklist
def test_checklist_when_shipped_then_package_data_with_a_claim_per_subject_of_the_issue():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "checklists/*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["research_lib"]
    names = {c.name for c in load_checklist([])}
    assert names == {
        "data.sample_loads", "data.cache_fresh", "data.live_source", "data.sanity",
        "features.batch_equals_incremental", "features.causal", "models.pins",
        "models.parity", "models.out_of_sample", "router.flag_0", "router.flag_1",
        "router.fallback", "risk.limits", "kill.env_flag", "kill.kill_file",
        "crash.kill_resume", "logs.json_run_id", "latency.e2d_p99", "runtime.headless",
        "venue.reconciles"}


def test_checklist_when_a_project_file_overrides_and_adds_then_merged_by_name(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump({"claims": [
        {"name": "latency.e2d_p99", "params": {"steps": 50}},
        {"name": "data.cache_fresh", "required": True},
        {"name": "latency.e2d_p99_crypto", "statement": "E2D on crypto alone",
         "required": False, "check": "latency.e2d_p99", "params": {"steps": 20}},
    ]}))
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump({"claims": [{"name": "latency.e2d_p99",
                                             "statement": "E2D p99 on our box"}]}))
    claims = {c.name: c for c in load_checklist([a, b])}
    e2d = claims["latency.e2d_p99"]
    assert e2d.params == {"steps": 50} and e2d.statement == "E2D p99 on our box"
    assert e2d.required is True and str(b) in e2d.source and str(a) in e2d.source
    assert claims["data.cache_fresh"].required is True
    assert list(claims)[-1] == "latency.e2d_p99_crypto"


def test_checklist_when_project_files_exist_then_run_ready_merges_them(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "config" / "checklists").mkdir(parents=True)
    (home / "config" / "checklists" / "ours.yaml").write_text(
        "claims:\n  - name: venue.reconciles\n    required: true\n")
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    from research_lib.ready import run_ready

    rep = run_ready(only=["venue.reconciles"])
    v = rep.verdict("venue.reconciles")
    assert v.required and v.verdict == SKIP and rep.exit_code == 1


@pytest.mark.parametrize("entry, message", [
    ({"name": "x.new", "statement": "s", "required": True, "check": "nope"},
     "claim x.new: check 'nope' is not known; known: crash.kill_resume"),
    ({"name": "latency.e2d_p99", "params": {"stepz": 5}},
     "claim latency.e2d_p99: check latency.e2d_p99 takes no parameter 'stepz'; it takes: steps"),
    ({"name": "risk.limits", "required": "yes"},
     "claim risk.limits: required must be true or false, got 'yes'"),
    ({"name": "x.new", "required": True, "check": "risk.limits"},
     "claim x.new: statement must say the claim in words, got None"),
    ({"name": "risk.limits", "severity": "high"},
     "claims[0] has unknown key 'severity'; allowed: check, name, params, required, statement"),
    ({"name": "../x", "required": True}, "claims[0].name '../x' is not a valid name"),
])
def test_checklist_when_an_entry_is_bad_then_refused_naming_file_claim_and_fix(
        tmp_path, entry, message):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"claims": [entry]}))
    with pytest.raises(ConfigError) as err:
        load_checklist([f])
    assert str(f) in str(err.value) and message in str(err.value)


def test_checklist_when_a_file_carries_a_python_tag_then_refused_and_nothing_runs(tmp_path):
    f = tmp_path / "evil.yaml"
    f.write_text("claims: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_checklist([f])
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_run_ready_when_imported_from_the_package_then_the_public_face():
    import research_lib as rl
    from research_lib.ready import run_ready

    assert rl.run_ready is run_ready


def test_fills_vs_orders_when_a_fill_row_is_lost_then_drill_error_naming_it(user_runs, tmp_path):
    import shutil
    import sqlite3

    from research_lib.faults import FaultDrillError, fills_vs_orders

    ledger = tmp_path / "ledger.sqlite"
    shutil.copyfile(user_runs / "runs" / "users-own-run" / "ledger.sqlite", ledger)
    counts = fills_vs_orders(ledger)
    assert counts["fills"] > 0
    con = sqlite3.connect(ledger)
    con.execute("DELETE FROM fills WHERE rowid = (SELECT MIN(rowid) FROM fills)")
    con.commit()
    con.close()
    with pytest.raises(FaultDrillError, match=f"fills {counts['fills'] - 1} != OrderFilled "
                                              f"{counts['fills']}"):
        fills_vs_orders(ledger)
