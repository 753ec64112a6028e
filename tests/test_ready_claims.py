"""``research-lib ready``: each claim FAILs when its subject is broken, in a temporary home
(a copy of the project's config and models), and the verdict names what broke.

Each test breaks one subject (a tampered model, a kill switch whose check is patched out, a
leaking feature, a corrupt cache ...) and runs only that claim (``run_ready(only=[...])``).
The whole checklist passing on the shipped install is tests/test_ready_cli.py.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from research_lib.config import load_assets
from research_lib.errors import EmptyDataError
from research_lib.ready import FAIL, PASS, SKIP, WARN, run_ready
from research_lib.ready.verdict import Verdict
from tests.kit.paper import edit_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary project: copies of config/ and models/, RESEARCH_LIB_HOME pointing at it."""
    h = tmp_path / "home"
    shutil.copytree(ROOT / "config", h / "config", ignore=shutil.ignore_patterns("checklists"))
    shutil.copytree(ROOT / "models", h / "models")
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(h))
    monkeypatch.chdir(tmp_path)
    return h


def verdict(name: str, symbols: str | None = None, offline: bool = True) -> Verdict:
    return run_ready(symbols, offline=offline, only=[name]).verdict(name)


def checklist(home: Path, text: str) -> None:
    """A project checklist file merged on top of the shipped one."""
    (home / "config" / "checklists").mkdir(exist_ok=True)
    (home / "config" / "checklists" / "test.yaml").write_text(text, encoding="utf-8")


def model_file(home: Path, name: str) -> Path:
    assets = load_assets(home / "config" / "assets.yaml")
    return home / "models" / assets.models[name].path


def tamper(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


# ---------------------------------------------------------------------------- data
def test_sample_loads_when_a_series_lost_rows_then_fail_naming_the_symbol_and_counts(
        home, monkeypatch):
    from research_lib.data import sources

    full = sources._sample_long()
    btc = full.index[full["symbol"] == "BTC-USD"]
    monkeypatch.setattr(sources, "_sample_long", lambda: full.drop(btc[-10:]))
    v = verdict("data.sample_loads")
    assert v.verdict == FAIL
    assert "BTC-USD" in v.detail and "1855 rows, its provenance records 1865" in v.detail


def test_cache_fresh_when_no_cache_and_source_is_sample_then_skip_saying_why(home, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    v = verdict("data.cache_fresh")
    assert v.verdict == SKIP and "session.source is sample" in v.detail


def _cached(tmp_path: Path, monkeypatch, symbol: str, end: pd.Timestamp):
    from research_lib.data import load
    from research_lib.data.cache import CacheSource

    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    df = load([symbol])[symbol].iloc[-30:].copy()
    df.index = pd.date_range(end=end, periods=len(df), freq="D", tz="UTC", name="timestamp")
    cache = CacheSource()
    cache.write(symbol, "1d", df)
    return cache


def test_cache_fresh_when_a_cached_file_is_corrupt_then_fail_naming_the_file(
        home, tmp_path, monkeypatch):
    today = pd.Timestamp.now(tz="UTC").normalize()
    cache = _cached(tmp_path, monkeypatch, "SPY", today)
    assert verdict("data.cache_fresh", "SPY").verdict == PASS  # fresh and readable first
    cache.path("SPY", "1d").write_bytes(b"PAR1 not a parquet file")
    v = verdict("data.cache_fresh", "SPY")
    assert v.verdict == FAIL
    assert "SPY: unreadable" in v.detail and str(cache.path("SPY", "1d")) in v.detail


def test_cache_fresh_when_the_last_cached_bar_is_old_then_fail_with_its_age(
        home, tmp_path, monkeypatch):
    _cached(tmp_path, monkeypatch, "SPY", pd.Timestamp("2018-12-31", tz="UTC"))
    v = verdict("data.cache_fresh", "SPY")
    assert v.verdict == FAIL
    assert "SPY: last bar 2018-12-31" in v.detail and "older than ready.cache_max_age 5D" in v.detail
    assert v.evidence["age_days"]["SPY"] > 365


def test_cache_fresh_when_the_source_is_the_cache_and_a_symbol_has_no_file_then_fail(
        home, tmp_path, monkeypatch):
    _cached(tmp_path, monkeypatch, "SPY", pd.Timestamp.now(tz="UTC").normalize())
    edit_yaml(home / "config" / "session.yaml", "session", source="cache")
    v = verdict("data.cache_fresh", "SPY,BTC-USD")
    assert v.verdict == FAIL and "BTC-USD: no cache file" in v.detail


def test_live_source_when_offline_then_warn_offline_never_pass(home, monkeypatch):
    from research_lib.ready import checks_data

    asked = []
    monkeypatch.setattr(checks_data, "reachable", lambda host, timeout: "no route to host")
    monkeypatch.setattr(checks_data, "probe_live", lambda *a: asked.append(a))
    v = verdict("data.live_source", offline=False)
    assert v.verdict == WARN and v.detail.startswith("offline: no route to host")
    assert asked == []  # an unreachable host is never asked for bars
    v = verdict("data.live_source", offline=True)
    assert v.verdict == WARN and "offline" in v.detail


def test_live_source_when_it_answers_without_bars_or_with_old_bars_then_fail(home, monkeypatch):
    from research_lib.ready import checks_data

    monkeypatch.setattr(checks_data, "reachable", lambda host, timeout: None)

    def empty(symbol, timeout, cache_dir):
        raise EmptyDataError(symbol, "yfinance", "possibly delisted")

    monkeypatch.setattr(checks_data, "probe_live", empty)
    v = verdict("data.live_source", offline=False)
    assert v.verdict == FAIL and "answered without bars for SPY" in v.detail

    def old(symbol, timeout, cache_dir):
        return pd.DataFrame({"close": [1.0]}, index=pd.DatetimeIndex(["2020-01-02"], tz="UTC"))

    monkeypatch.setattr(checks_data, "probe_live", old)
    v = verdict("data.live_source", offline=False)
    assert v.verdict == FAIL and "days old" in v.detail

    def fresh(symbol, timeout, cache_dir):
        assert Path(cache_dir).is_dir()  # a scratch cache, never the user's
        now = pd.Timestamp.now(tz="UTC").normalize()
        return pd.DataFrame({"close": [1.0, 2.0]},
                            index=pd.DatetimeIndex([now - pd.Timedelta(days=1), now]))

    monkeypatch.setattr(checks_data, "probe_live", fresh)
    v = verdict("data.live_source", offline=False)
    assert v.verdict == PASS and v.evidence["bars"] == 2


def test_sanity_when_a_configured_series_has_a_negative_price_then_fail_naming_code_and_symbol(
        home, tmp_path):
    from research_lib.data import load

    df = load(["SPY"])["SPY"].iloc[-300:].copy()
    bad_at = df.index[200]
    df.loc[bad_at, ["open", "low", "close"]] = -5.0
    folder = tmp_path / "csv"
    folder.mkdir()
    df.to_csv(folder / "SPY.csv", index_label="timestamp")
    edit_yaml(home / "config" / "session.yaml", "session", source=f"csv:{folder}")
    v = verdict("data.sanity", "SPY")
    assert v.verdict == FAIL
    assert f"NON_POSITIVE_PRICE SPY at {bad_at.isoformat()}" in v.detail
    assert v.evidence["errors"] >= 1


# ------------------------------------------------------------------------ features
def test_batch_equals_incremental_when_batch_is_off_by_one_bar_then_fail_naming_feature(
        home, monkeypatch):
    from research_lib import features

    real = features.build
    monkeypatch.setattr(features, "build", lambda df: real(df).shift(1))
    v = verdict("features.batch_equals_incremental", "SPY")
    assert v.verdict == FAIL
    assert v.detail.startswith("SPY: batch != incremental: ret_1 at ")


def test_causal_when_a_feature_leaks_the_next_bar_then_fail_naming_it_lookahead(
        home, monkeypatch):
    from research_lib import features

    real = features.build

    def leaky(df: pd.DataFrame) -> pd.DataFrame:
        f = real(df)
        f["ret_5"] = f["ret_5"].shift(-1)  # bar t sees bar t+1
        return f

    monkeypatch.setattr(features, "build", leaky)
    v = verdict("features.causal", "BTC-USD")
    assert v.verdict == FAIL
    assert "BTC-USD: bars after" in v.detail and "feature ret_5 at" in v.detail
    assert "(lookahead)" in v.detail


def test_causal_when_a_model_decision_depends_on_later_rows_then_fail_naming_the_model(
        home, monkeypatch):
    """Features intact, but the served model looks across rows (a decision that uses the
    future): the claim names the model whose decision moved."""
    from research_lib.models.onnx import OnnxModel

    real = OnnxModel.predict_proba_up

    def peeking(self, X):
        p = real(self, X)
        return np.full_like(p, 0.9 if X[-1, 0] > 0 else 0.1)  # the last row decides all

    monkeypatch.setattr(OnnxModel, "predict_proba_up", peeking)
    v = verdict("features.causal", "SPY")
    assert v.verdict == FAIL and "decision at" in v.detail and "_v1's decision" in v.detail


# -------------------------------------------------------------------------- models
def test_pins_when_a_model_file_is_tampered_then_fail_naming_the_model_and_both_digests(home):
    path = model_file(home, "crypto_v1")
    pinned = load_assets(home / "config" / "assets.yaml").models["crypto_v1"].sha256
    tamper(path)
    v = verdict("models.pins")
    assert v.verdict == FAIL and "crypto_v1" in v.evidence["broken"]
    assert "models.crypto_v1.sha256 mismatch" in v.detail and pinned in v.detail


def test_pins_when_a_card_records_another_digest_then_fail_naming_the_card(home):
    card = model_file(home, "equities_v1").with_suffix(".json")
    data = json.loads(card.read_text())
    data["sha256"] = "0" * 64
    card.write_text(json.dumps(data))
    v = verdict("models.pins")
    assert v.verdict == FAIL
    assert "equities_v1: card models/equities_v1.json records sha256 " + "0" * 64 in v.detail


def test_parity_when_a_model_file_is_swapped_for_another_then_fail_naming_it(home):
    """crypto_v1.onnx replaced by universal_v1's bytes, pin and card updated to match: only
    parity can tell that the file is not the card's model."""
    from research_lib.models.onnx import sha256_file

    crypto = model_file(home, "crypto_v1")
    shutil.copyfile(model_file(home, "universal_v1"), crypto)
    new = sha256_file(crypto)
    assets = home / "config" / "assets.yaml"
    text = assets.read_text()
    old = load_assets(assets).models["crypto_v1"].sha256
    assets.write_text(text.replace(old, new))
    card = crypto.with_suffix(".json")
    data = json.loads(card.read_text())
    data["sha256"] = new
    card.write_text(json.dumps(data))
    assert verdict("models.pins").verdict == PASS  # the pins alone cannot see it
    v = verdict("models.parity")
    assert v.verdict == FAIL and v.evidence["broken"] == ["crypto_v1"]
    assert "crypto_v1: parity FAILED: max |dp|" in v.detail


def test_out_of_sample_when_a_card_lacks_its_metrics_then_fail_naming_the_model(home):
    card = model_file(home, "options_v1").with_suffix(".json")
    data = json.loads(card.read_text())
    del data["walk_forward"]["out_of_sample"]
    card.write_text(json.dumps(data))
    v = verdict("models.out_of_sample")
    assert v.verdict == FAIL
    assert "options_v1: its card has no walk_forward.out_of_sample metrics" in v.detail


# -------------------------------------------------------------------------- router
def test_router_flag_0_when_the_router_serves_class_models_then_fail_naming_symbols(
        home, monkeypatch):
    from research_lib.models.router import Router

    real = Router._class_route
    monkeypatch.setattr(Router, "_class_route",
                        lambda self, cls, err, mode, memo: real(self, cls, err, "1", memo))
    v = verdict("router.flag_0", "SPY,BTC-USD")
    assert v.verdict == FAIL
    assert "SPY: served by equities_v1, not the universal model universal_v1" in v.detail
    assert "BTC-USD: served by crypto_v1" in v.detail


def test_router_flag_1_when_a_class_model_is_tampered_then_fail_naming_the_reason(home):
    tamper(model_file(home, "crypto_v1"))
    v = verdict("router.flag_1", "SPY,BTC-USD")
    assert v.verdict == FAIL and v.evidence["broken"] == ["BTC-USD"]
    assert "BTC-USD: class crypto served by universal_v1, not its class model crypto_v1" in v.detail
    assert "models.crypto_v1.sha256 mismatch" in v.detail


def test_router_fallback_when_the_checksum_check_is_skipped_then_fail_tampered_still_served(
        home, monkeypatch):
    from research_lib.models import router
    from research_lib.models.registry import ModelStatus

    monkeypatch.setattr(router, "status_for_sha", lambda assets, name, shown, path, actual:
                        ModelStatus(name, shown, "ok", None, path, actual))
    v = verdict("router.fallback", "BTC-USD")
    assert v.verdict == FAIL
    assert "crypto_v1 tampered: BTC-USD still served by crypto_v1" in v.detail
    assert v.evidence["broken"] == ["crypto_v1 tampered"]  # the missing copy still falls back
    # the project's own file was never touched: the copy was broken
    assert verdict("models.pins").verdict == PASS


def test_router_fallback_when_it_passes_then_each_reason_names_the_broken_model(home):
    v = verdict("router.fallback", "SPY,BTC-USD")
    assert v.verdict == PASS
    assert set(v.evidence["reasons"]) == {"equities_v1 tampered", "equities_v1 missing",
                                          "crypto_v1 tampered", "crypto_v1 missing"}
    assert "crypto_v1" in v.evidence["reasons"]["crypto_v1 missing"]


# ---------------------------------------------------------------------------- risk
def test_risk_limits_when_the_gross_rule_is_gone_then_fail_naming_the_limit(home, monkeypatch):
    from research_lib import risk

    monkeypatch.setattr(risk, "RULES", tuple(r for r in risk.RULES if r is not risk.rule_max_gross))
    v = verdict("risk.limits")
    assert v.verdict == FAIL and v.evidence["broken"] == ["max_gross_leverage"]
    assert "max_gross_leverage: the order breaking it was not denied (expected " \
           "MAX_GROSS_EXCEEDED)" in v.detail


def test_risk_limits_when_the_latched_states_are_not_enforced_then_fail_naming_both(
        home, monkeypatch):
    from research_lib import risk

    monkeypatch.setattr(risk, "RULES",
                        tuple(r for r in risk.RULES if r is not risk.rule_trading_state))
    v = verdict("risk.limits")
    assert v.verdict == FAIL
    assert v.evidence["broken"] == ["daily_loss_stop_pct", "max_drawdown_pct"]


def test_risk_limits_read_the_projects_limits(home):
    edit_yaml(home / "config" / "risk.yaml", "risk", max_position_pct=0.05)
    v = verdict("risk.limits")
    assert v.verdict == PASS and v.evidence["limits"]["max_position_pct"] == 0.05


# ---------------------------------------------------------------------- kill switch
def test_kill_env_flag_when_the_switch_check_is_patched_out_then_fail_orders_passed(
        home, monkeypatch):
    from research_lib.flags import HaltStatus, KillSwitch

    monkeypatch.setattr(KillSwitch, "check", lambda self: HaltStatus(False, None))
    v = verdict("kill.env_flag")
    assert v.verdict == FAIL
    assert "with FLAG_TRADING_HALTED=1 set, " in v.detail and "the switch did not stop them" in v.detail
    assert v.evidence["orders"] > 0


def test_kill_file_when_the_kill_file_is_not_read_then_fail_orders_passed(home, monkeypatch):
    from research_lib.flags import KillSwitch

    monkeypatch.setattr(KillSwitch, "_kill_file_reason", lambda self: None)
    assert verdict("kill.env_flag").verdict == PASS  # the flag still works
    v = verdict("kill.kill_file")
    assert v.verdict == FAIL and "with the kill file set, " in v.detail
    assert v.evidence["fills"] > 0


def test_kill_switch_claims_leave_the_environment_as_it_was(home, monkeypatch):
    import os

    monkeypatch.delenv("FLAG_TRADING_HALTED", raising=False)
    assert verdict("kill.env_flag").verdict == PASS
    assert "FLAG_TRADING_HALTED" not in os.environ


# --------------------------------------------------------------------- crash safety
def test_crash_when_a_resume_drops_the_open_orders_then_fail_naming_the_table(home, monkeypatch):
    """A resume that forgets the orders open at the kill (a lost order on restart). The
    steps are slowed (40 ms) so the kill lands right after a step that left orders open."""
    from research_lib.broker import PaperBroker

    real = PaperBroker.restore
    monkeypatch.setattr(PaperBroker, "restore",
                        lambda self, fills, open_orders, known: real(self, fills, [], known))
    checklist(home, "claims:\n  - name: crash.kill_resume\n    params: {start: '2018-06-01', "
                    "end: '2018-09-30', delay_ms: 40.0}\n")
    v = verdict("crash.kill_resume", "SPY,BTC-USD")
    assert v.verdict == FAIL
    assert v.evidence["open_orders_at_kill"] > 0
    assert "and resumed: table " in v.detail and "differs from the uninterrupted run" in v.detail


# ------------------------------------------------------------------------- runtime
def test_logs_when_records_lose_their_run_id_then_fail_naming_the_line(home, monkeypatch):
    from research_lib import telemetry

    monkeypatch.setattr(telemetry, "get_run_id", lambda: "")
    v = verdict("logs.json_run_id")
    assert v.verdict == FAIL and v.detail.startswith("log line ") and "has no run_id" in v.detail
    assert "\"event\":\"decision\"" in v.detail  # the line is shown


def test_logs_when_a_record_is_not_json_then_fail_naming_the_line(home, monkeypatch):
    from research_lib import telemetry

    monkeypatch.setattr(telemetry.JsonFormatter, "format",
                        lambda self, record: f"{record.levelname} {record.getMessage()}")
    v = verdict("logs.json_run_id")
    assert v.verdict == FAIL and "log line 1 is not JSON" in v.detail


def test_e2d_when_a_slow_model_exceeds_the_budget_then_fail_showing_the_figure(home, monkeypatch):
    from research_lib.models.router import Router

    real = Router.predict

    def slow(self, symbols, X):
        time.sleep(0.02)
        return real(self, symbols, X)

    monkeypatch.setattr(Router, "predict", slow)
    edit_yaml(home / "config" / "ready.yaml", "ready", e2d_p99_budget_ms=10.0)
    checklist(home, "claims:\n  - name: latency.e2d_p99\n    params: {steps: 20}\n")
    v = verdict("latency.e2d_p99", "SPY")
    assert v.verdict == FAIL
    assert v.evidence["budget_ms"] == 10.0 and v.evidence["p99_ms"] >= 20.0
    assert f"E2D p99 {v.evidence['p99_ms']:.3f} ms is over the budget " \
           "ready.e2d_p99_budget_ms 10 ms" in v.detail


def test_headless_when_a_module_imports_pyplot_and_a_gui_toolkit_then_fail_naming_it(
        home, tmp_path, monkeypatch):
    plug = tmp_path / "plugins"
    plug.mkdir()
    (plug / "ready_gui_leak.py").write_text(
        "import matplotlib.pyplot  # noqa: F401\n"
        "try:\n    import tkinter  # noqa: F401\nexcept ImportError:\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(plug))
    checklist(home, "claims:\n  - name: runtime.headless\n    params: {extra_modules: "
                    "[ready_gui_leak]}\n")
    v = verdict("runtime.headless")
    assert v.verdict == FAIL
    assert v.detail.startswith("not headless: ready_gui_leak imported ")
    assert "matplotlib.pyplot" in v.evidence["gui_modules"]["ready_gui_leak"]


def test_venue_when_one_is_configured_without_keys_then_fail_closed_naming_them(
        home, monkeypatch):
    # the reconciliation itself is tests/test_ready_venue.py (against a fake venue)
    assert verdict("venue.reconciles").verdict == SKIP
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    edit_yaml(home / "config" / "ready.yaml", "ready", live_venue="alpaca")
    v = verdict("venue.reconciles")
    assert v.verdict == FAIL and "the alpaca venue cannot be opened" in v.detail
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY are not set" in v.detail


def test_a_check_that_raises_is_a_fail_naming_the_exception(home, monkeypatch):
    from research_lib.ready import checks_models

    def boom(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(checks_models, "out_of_sample", boom)
    v = verdict("models.out_of_sample")
    assert v.verdict == FAIL and v.detail == "the check raised RuntimeError: disk on fire"


def test_no_claim_writes_into_the_project(home):
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    rep = run_ready(offline=True, only=["router.fallback", "kill.kill_file", "logs.json_run_id"])
    assert [v.verdict for v in rep.verdicts] == [PASS, PASS, PASS]
    after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert after == before
    assert yaml.safe_load((home / "config" / "session.yaml").read_text())["session"][
        "kill_file"] == "kill.flag"


def test_scratch_sessions_when_the_project_trades_live_hourly_then_replay_the_daily_sample(
        home):
    """The drills replay the shipped (daily) sample whatever source and interval the
    project's session.yaml sets for its own sessions."""
    edit_yaml(home / "config" / "session.yaml", "session", source="yfinance", interval="1h")
    rep = run_ready(offline=True, only=["kill.env_flag", "logs.json_run_id"])
    assert [v.verdict for v in rep.verdicts] == [PASS, PASS], [v.detail for v in rep.verdicts]


def test_live_source_when_the_host_does_not_answer_in_time_then_warn_offline(home, monkeypatch):
    import threading

    from research_lib.ready import checks_data

    edit_yaml(home / "config" / "ready.yaml", "ready", live_timeout_s=0.1)
    release = threading.Event()

    def hang(host, timeout):
        release.wait(30)  # a resolver with no timeout of its own
        return "released by the test"  # then unreachable: the probe is never asked

    monkeypatch.setattr(checks_data, "reachable", hang)
    t0 = time.monotonic()
    try:
        v = verdict("data.live_source", offline=False)
        waited = time.monotonic() - t0
    finally:
        release.set()
    assert v.verdict == WARN and v.detail.startswith("offline: no answer for SPY within 5.1 s")
    assert waited < 7.5
    worker = [t for t in threading.enumerate() if t.name == "research-lib-ready-live-probe"]
    assert all(t.daemon for t in worker)  # never joined at exit
