"""Issue 10, classes 2 and 3: a config reload never loosens a limit by omission and never
claims what it did not do; the kill switch stops everything that would trade.

* A reload is the whole file or nothing: a file that leaves out a key the running one named
  (an emptied ``risk.yaml`` included) is refused, the previous config kept and the refusal
  recorded (``state_changes`` scope ``config``, ``REJECTED``).
* A running session only tightens its risk limits; loosening needs a restart.
* A key read only at start (``session.kill_file``, ``run_dir``, ``initial_cash`` ...) is
  refused at reload, never recorded as ``RELOADED``.
* While a kill switch is set no order fills: open orders are cancelled
  (``OrderCancelled``, reason ``KILL_SWITCH: ...``).
* Anything at the kill path halts (file, folder, fifo, symlink, dangling or looping); a
  kill path that cannot be checked halts mid-run and is a config error at start; an empty
  kill-file setting is a config error. The halt reason names what was seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from research_lib.cli import main
from research_lib.config import ConfigWatcher, load_risk, load_session
from research_lib.errors import ConfigError
from research_lib.flags import KillSwitch
from research_lib.ledger import Ledger
from research_lib.ledger_read import read_run
from tests.kit.crash import fills_vs_orders
from tests.kit.paper import (
    FlipEnv,
    FrameSource,
    ScriptedModel,
    make_session,
    quiet_switch,
    random_walk,
    write_config,
)


def two_symbols(n: int = 40) -> FrameSource:
    return FrameSource({"AAA": random_walk(n, seed=3, symbol="AAA"),
                        "BBB": random_walk(n, seed=4, price=40.0, symbol="BBB")})


def bump(path: Path, seconds: int = 1) -> None:
    """Move the file's mtime on, so the watcher sees the edit whatever the clock's grain."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def config_rows(path: Path) -> list[Any]:
    sc = read_run(path)["state_changes"]
    return list(sc[sc["scope"] == "config"].itertuples())


def run_with_edit(tmp_path: Path, edit, *, call: int = 3, risk: dict | None = None,
                  session: dict | None = None, **kw: Any):
    """A session on AAA whose config is edited by ``edit(cfg)`` inside predict call
    ``call`` (during step ``call - 1``: a reload applies from step ``call``)."""
    cfg = write_config(tmp_path / "config", risk=risk, session=session,
                       signal={"target_weight": 0.04})

    def hook(n: int) -> None:
        if n == call:
            edit(cfg)

    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     router=ScriptedModel(["AAA"], hook=hook), run_id="rl", **kw)
    s.run()
    return s, cfg


def write(cfg: Path, name: str, text: str) -> None:
    (cfg / name).write_text(text)
    bump(cfg / name)


def edit_keys(cfg: Path, name: str, section: str, **changes: Any) -> None:
    data = yaml.safe_load((cfg / name).read_text())
    data[section].update(changes)
    write(cfg, name, yaml.safe_dump(data))


TIGHT = {"max_position_pct": 0.05, "max_drawdown_pct": 0.05}


# =================================================================== 2. config reload
def test_reload_when_risk_yaml_is_emptied_then_rejected_and_tight_limits_kept(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: write(cfg, "risk.yaml", ""), risk=TIGHT)
    [row] = config_rows(s.ledger.path)
    assert (row.step, row.to_state) == (3, "REJECTED")
    assert "risk.yaml" in row.reason and "a reload must be the whole file" in row.reason
    assert "risk.max_position_pct" in row.reason and "kept previous" in row.reason
    assert s.engine.limits.max_position_pct == 0.05  # not the built-in 0.15
    assert s.engine.limits.max_drawdown_pct == 0.05  # not the built-in 0.20
    assert s.limits == s.engine.limits


def test_reload_when_risk_yaml_leaves_out_keys_then_rejected_naming_each(tmp_path):
    s, _ = run_with_edit(
        tmp_path, lambda cfg: write(cfg, "risk.yaml", "risk:\n  max_position_pct: 0.05\n"),
        risk=TIGHT)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED"
    for key in ("risk.max_drawdown_pct", "risk.max_gross_leverage", "risk.allow_short"):
        assert key in row.reason
    assert "risk.max_position_pct," not in row.reason  # present: not listed as missing
    assert s.engine.limits.max_drawdown_pct == 0.05


def test_reload_when_a_limit_is_loosened_then_rejected_naming_key_values_and_restart(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(cfg, "risk.yaml", "risk",
                                                         max_position_pct=0.10), risk=TIGHT)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED"
    assert "risk.max_position_pct: 0.05 -> 0.1" in row.reason
    assert "restart the session to loosen" in row.reason
    assert s.engine.limits.max_position_pct == 0.05


@pytest.mark.parametrize("key,tight,loose", [
    ("max_gross_leverage", 1.0, 1.5), ("daily_loss_stop_pct", 0.02, 0.03),
    ("max_drawdown_pct", 0.05, 0.2), ("price_band_pct", 0.1, 0.25),
    ("cash_buffer_pct", 0.05, 0.01), ("allow_short", False, True)])
def test_reload_when_any_risk_limit_loosens_then_rejected_and_kept(tmp_path, key, tight, loose):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(cfg, "risk.yaml", "risk",
                                                         **{key: loose}), risk={key: tight})
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED" and f"risk.{key}: {tight!r} -> {loose!r}" in row.reason
    assert getattr(s.engine.limits, key) == tight


def test_reload_when_one_limit_tightens_and_another_loosens_then_whole_file_rejected(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(
        cfg, "risk.yaml", "risk", max_position_pct=0.04, max_drawdown_pct=0.5), risk=TIGHT)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED" and "risk.max_drawdown_pct: 0.05 -> 0.5" in row.reason
    assert s.engine.limits.max_position_pct == 0.05  # the tightening is not half-applied


def test_reload_when_limits_only_tighten_then_applied_and_recorded(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(
        cfg, "risk.yaml", "risk", max_position_pct=0.03, cash_buffer_pct=0.05), risk=TIGHT)
    [row] = config_rows(s.ledger.path)
    assert (row.step, row.to_state) == (3, "RELOADED")
    assert "risk.max_position_pct: 0.05 -> 0.03" in row.reason
    assert (s.engine.limits.max_position_pct, s.engine.limits.cash_buffer_pct) == (0.03, 0.05)


def test_reload_when_kill_file_changes_then_rejected_not_reloaded_and_old_path_still_halts(
        tmp_path):
    old, new = tmp_path / "kill.flag", tmp_path / "other.flag"

    def edit(cfg: Path) -> None:
        edit_keys(cfg, "session.yaml", "session", kill_file=str(new), slippage_bps=9.0)

    s, _ = run_with_edit(tmp_path, edit, session={"kill_file": str(old)},
                         kill_switch=None)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED"
    assert f"session.kill_file: {str(old)!r} -> {str(new)!r}" in row.reason
    assert "restart the session" in row.reason
    assert s.settings.session.kill_file == str(old)
    assert s.settings.session.slippage_bps == 2.0  # the whole file is refused
    assert s.ks.kill_file == old


@pytest.mark.parametrize("key,value", [("run_dir", "elsewhere"), ("initial_cash", 5e6),
                                       ("interval", "1h"), ("source", "yfinance"),
                                       ("warmup_bars", 5), ("seed", 8), ("replay_years", 9.0)])
def test_reload_when_a_restart_only_key_changes_then_rejected_never_reloaded(
        tmp_path, key, value):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(cfg, "session.yaml", "session",
                                                         **{key: value}))
    rows = config_rows(s.ledger.path)
    assert [r.to_state for r in rows] == ["REJECTED"]
    assert f"session.{key}:" in rows[0].reason
    assert getattr(s.settings.session, key) != value


def test_reload_when_a_hot_session_key_changes_then_reloaded_and_applied(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: edit_keys(cfg, "session.yaml", "session",
                                                         slippage_bps=7.0))
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "RELOADED" and "session.slippage_bps: 2.0 -> 7.0" in row.reason
    assert s.broker.costs.slippage_bps == 7.0


def test_reload_when_session_yaml_is_emptied_then_rejected_and_settings_kept(tmp_path):
    s, _ = run_with_edit(tmp_path, lambda cfg: write(cfg, "session.yaml", "# emptied\n"),
                         session={"slippage_bps": 5.0})
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED" and "session.slippage_bps" in row.reason
    assert s.broker.costs.slippage_bps == 5.0


def test_reload_when_assets_yaml_drops_the_overrides_then_rejected(tmp_path):
    def edit(cfg: Path) -> None:
        data = yaml.safe_load((cfg / "assets.yaml").read_text())
        assert "overrides" in data
        del data["overrides"]
        write(cfg, "assets.yaml", yaml.safe_dump(data))

    s, _ = run_with_edit(tmp_path, edit)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED" and "leaves out overrides" in row.reason
    assert s.assets.overrides  # kept


def test_reload_when_assets_yaml_moves_a_traded_symbol_to_another_class_then_rejected(
        tmp_path):
    def edit(cfg: Path) -> None:
        data = yaml.safe_load((cfg / "assets.yaml").read_text())
        data["overrides"]["AAA"] = "crypto"  # 24/7, fractional lots, a 60% jump gate
        write(cfg, "assets.yaml", yaml.safe_dump(data))

    s, _ = run_with_edit(tmp_path, edit)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "REJECTED"
    assert "AAA: class 'equities' (XNYS) -> 'crypto' (24/7)" in row.reason
    assert s.classes["AAA"] == "equities" and not s.crypto[0]


def test_reload_when_assets_yaml_changes_no_traded_symbol_then_reloaded(tmp_path):
    def edit(cfg: Path) -> None:
        data = yaml.safe_load((cfg / "assets.yaml").read_text())
        data["overrides"]["ZZZ"] = "crypto"  # not traded here
        write(cfg, "assets.yaml", yaml.safe_dump(data))

    s, _ = run_with_edit(tmp_path, edit)
    [row] = config_rows(s.ledger.path)
    assert row.to_state == "RELOADED" and s.assets.overrides["ZZZ"] == "crypto"


def test_watcher_when_an_edit_keeps_size_and_mtime_then_still_seen(tmp_path):
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_position_pct: 0.15\n")
    w = ConfigWatcher(p, load_risk)
    st = os.stat(p)
    p.write_text("risk:\n  max_position_pct: 0.05\n")  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime back
    assert w.current().max_position_pct == 0.05


def test_watcher_when_a_refused_edit_is_fixed_then_the_fixed_file_applies(tmp_path):
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_position_pct: 0.05\n  max_drawdown_pct: 0.05\n")
    w = ConfigWatcher(p, load_risk)
    p.write_text("risk:\n  max_position_pct: 0.04\n")
    bump(p)
    assert w.current().max_drawdown_pct == 0.05
    assert "risk.max_drawdown_pct" in (w.last_error or "")
    p.write_text("risk:\n  max_position_pct: 0.04\n  max_drawdown_pct: 0.05\n")
    bump(p, 2)
    assert w.current().max_position_pct == 0.04 and w.last_error is None


def test_watcher_when_a_key_absent_at_start_stays_absent_then_reload_applies(tmp_path):
    p = tmp_path / "risk.yaml"
    p.write_text("risk:\n  max_position_pct: 0.05\n")  # the rest from documented defaults
    w = ConfigWatcher(p, load_risk)
    p.write_text("risk:\n  max_position_pct: 0.04\n")
    bump(p)
    assert w.current().max_position_pct == 0.04 and w.last_error is None


# ======================================================================= 3. kill switch
class TouchAfter(KillSwitch):
    """A real kill switch whose file appears right after its ``n``-th check returned."""

    def __init__(self, kill_file: Path, n: int) -> None:
        super().__init__(kill_file, env={})
        self.n, self.calls = n, 0

    def check(self):
        st = super().check()
        self.calls += 1
        if self.calls == self.n:
            Path(self.kill_file).touch()
        return st


def test_open_order_when_kill_file_appears_before_its_fill_then_cancelled_not_filled(tmp_path):
    kill = tmp_path / "kill.flag"
    # check 1: at start; check 2: AAA's first order (passes); then the file is there
    s = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     model="baseline:buy_and_hold", run_id="kc",
                     kill_switch=TouchAfter(kill, 2))
    res = s.run()
    run = read_run(res.ledger_path)
    assert run["fills"].empty, "an open order filled while the kill file was present"
    ev = run["order_events"]
    cancelled = ev[ev["event"] == "OrderCancelled"]
    assert list(cancelled["step"]) == [1]
    assert cancelled["reason"].tolist() == [f"KILL_SWITCH: KILL_FILE: {kill} symbol=AAA"]
    o = run["orders"].set_index("step")
    assert o.loc[0, "status"] == "cancelled"
    risk = run["risk_events"]
    assert "cancellation" in set(risk["kind"]) and "KILL_SWITCH" in set(risk["code"])
    assert res.summary["cancelled"] == 1 and res.summary["fills"] == 0
    assert fills_vs_orders(res.ledger_path)["cancelled"] == 1
    with Ledger.open(res.ledger_path, readonly=True) as led:
        assert led.load_state().open_orders == []  # nothing left to fill on a resume


def test_open_order_when_trading_halted_flag_turns_on_then_cancelled_not_filled(tmp_path):
    env = FlipEnv(after=2)  # read 1: start; read 2: AAA's order; from read 3 on: halted
    s = make_session(tmp_path, symbols=["AAA", "BBB"], source=two_symbols(),
                     start="2021-01-20", model="baseline:buy_and_hold", run_id="kf",
                     kill_switch=quiet_switch(tmp_path, env))
    res = s.run()
    run = read_run(res.ledger_path)
    assert run["fills"].empty
    ev = run["order_events"]
    [reason] = ev[ev["event"] == "OrderCancelled"]["reason"].tolist()
    assert reason == "KILL_SWITCH: FLAG_TRADING_HALTED=1 symbol=AAA"


def test_open_order_when_kill_file_gone_again_then_not_refilled_later(tmp_path):
    kill = tmp_path / "kill.flag"

    class OnOff(TouchAfter):
        def check(self):
            st = super().check()
            if self.calls == 4:  # after the cancel at step 1 (check 3): cleared again
                Path(self.kill_file).unlink()
            return st

    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       model="baseline:buy_and_hold", run_id="oo",
                       kill_switch=OnOff(kill, 2)).run()
    run = read_run(res.ledger_path)
    first = run["orders"][run["orders"]["step"] == 0]
    assert first["status"].tolist() == ["cancelled"]
    fills = run["fills"]
    assert first["client_order_id"].iloc[0] not in set(fills["client_order_id"])


def test_resume_when_kill_file_set_with_an_order_open_then_cancelled_at_the_first_step(
        tmp_path):
    kill = tmp_path / "kill.flag"
    kw = dict(symbols=["AAA"], source=two_symbols(), start="2021-01-20",
              model="baseline:buy_and_hold", run_id="rs")
    first = make_session(tmp_path, max_steps=1, kill_switch=KillSwitch(kill, env={}), **kw)
    first.run()
    with Ledger.open(first.ledger.path, readonly=True) as led:
        assert len(led.load_state().open_orders) == 1  # decided at step 0, fills at step 1
    kill.touch()
    kw.pop("symbols")
    res = make_session(tmp_path, resume="rs", max_steps=1, kill_switch=KillSwitch(kill, env={}),
                       **{k: v for k, v in kw.items() if k == "source"}).run()
    run = read_run(res.ledger_path)
    assert run["fills"].empty
    ev = run["order_events"]
    assert ev[ev["event"] == "OrderCancelled"]["step"].tolist() == [1]


def test_fast_replay_when_kill_file_appears_with_open_orders_then_same_ledger_as_step_loop(
        tmp_path):
    from tests.test_fast_replay import equivalent

    kill = tmp_path / "kill.flag"

    def fresh() -> dict[str, Any]:  # each engine starts with no kill file
        kill.unlink(missing_ok=True)
        return {"kill_switch": TouchAfter(kill, 6)}

    cfg = write_config(tmp_path / "config")
    step, fast = equivalent(tmp_path, fresh,
                            symbols=["^GSPC", "BTC-USD"], source="sample",
                            start="2017-01-01", end="2017-12-31", model="baseline:sma_cross",
                            config_dir=cfg, what="kill file appears with open orders")
    ev = read_run(step.ledger_path)["order_events"]
    assert (ev["event"] == "OrderCancelled").sum() >= 1
    assert step.summary["cancelled"] == fast.summary["cancelled"] >= 1


# ------------------------------------------------------------- what counts at the kill path
def _make(kind: str, p: Path) -> str:
    if kind == "file":
        p.touch()
        return ""
    if kind == "folder":
        p.mkdir()
        return " (folder)"
    if kind == "fifo":
        os.mkfifo(p)
        return " (fifo)"
    if kind == "symlink":
        (p.parent / "target").touch()
        p.symlink_to(p.parent / "target")
        return " (symlink to"
    if kind == "dangling symlink":
        p.symlink_to(p.parent / "nowhere")
        return " (dangling symlink to"
    if kind == "looping symlink":
        p.symlink_to(p)
        return " (symlink to"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["file", "folder", "fifo", "symlink", "dangling symlink",
                                  "looping symlink"])
def test_kill_path_when_anything_is_there_then_halted_naming_what(tmp_path, kind):
    p = tmp_path / "kill.flag"
    shown = _make(kind, p)
    st = KillSwitch(p, env={}).check()
    assert st.halted, f"{kind} at the kill path did not halt"
    assert st.reason.startswith(f"KILL_FILE: {p}{shown}")


def test_kill_path_when_set_relative_then_reason_names_the_absolute_path_checked(
        tmp_path, monkeypatch):
    monkeypatch.delenv("RESEARCH_LIB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # no project home here: relative to the working folder
    ks = KillSwitch("kill.flag", env={})
    (tmp_path / "kill.flag").touch()
    assert ks.check().reason == f"KILL_FILE: {tmp_path / 'kill.flag'}"


def test_kill_path_when_relative_and_a_home_is_set_then_taken_from_the_home_not_the_cwd(
        tmp_path, monkeypatch):
    """The one rule for relative paths: a relative kill_file is the home's file, so a
    notebook whose working folder is <home>/notebooks watches the same file as the CLI
    (it watched <home>/notebooks/kill.flag, which no operator touches)."""
    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("RESEARCH_LIB_HOME", str(home))
    monkeypatch.chdir(home / "notebooks")
    ks = KillSwitch("kill.flag", env={})
    (home / "kill.flag").touch()
    assert ks.check().reason == f"KILL_FILE: {home / 'kill.flag'}"


def test_kill_path_when_nothing_is_there_then_not_halted(tmp_path):
    assert KillSwitch(tmp_path / "kill.flag", env={}).check().halted is False


def test_session_when_dangling_kill_symlink_at_start_then_no_order_passes(tmp_path):
    kill = tmp_path / "kill.flag"
    kill.symlink_to(tmp_path / "nowhere")
    res = make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                       model="baseline:buy_and_hold",
                       kill_switch=KillSwitch(kill, env={})).run()
    assert res.summary["orders"] == 0 and res.summary["fills"] == 0
    assert res.summary["denials_by_reason"] == {"KILL_SWITCH": res.summary["denied"]}


def test_kill_path_when_its_folder_is_missing_then_not_halted_until_made_and_set(tmp_path):
    folder = tmp_path / "flags"  # decided: nothing is there; `mkdir -p` + touch sets it
    ks = KillSwitch(folder / "kill.flag", env={})
    ks.ensure_usable()
    assert not ks.check().halted
    folder.mkdir()
    (folder / "kill.flag").touch()
    assert ks.check().halted


def test_kill_path_when_its_parent_is_a_file_then_halted(tmp_path):
    (tmp_path / "plain").write_text("x")
    st = KillSwitch(tmp_path / "plain" / "kill.flag", env={}).check()
    assert st.halted and "cannot be checked" in st.reason
    assert st.reason.startswith(f"KILL_FILE: {tmp_path / 'plain' / 'kill.flag'}")


def test_kill_path_when_the_folder_cannot_be_searched_then_halted_fail_closed(
        tmp_path, monkeypatch):
    p = tmp_path / "kill.flag"
    real = os.lstat

    def denied(path, *a, **k):
        if os.fspath(path) == str(p):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    ks = KillSwitch(p, env={})
    monkeypatch.setattr(os, "lstat", denied)
    st = ks.check()
    monkeypatch.undo()
    assert st.halted and "Permission denied" in st.reason and str(p) in st.reason


@pytest.mark.parametrize("where", ["parent is a file", "folder not searchable"])
def test_session_when_kill_path_unusable_at_start_then_config_error_and_no_run_folder(
        tmp_path, monkeypatch, where):
    (tmp_path / "plain").write_text("x")
    bad = tmp_path / "plain" / "kill.flag"
    if where == "folder not searchable":  # root ignores chmod: fake the EACCES
        bad = tmp_path / "locked" / "kill.flag"
        real = os.lstat

        def denied(path, *a, **k):
            if os.fspath(path) == str(bad):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(os, "lstat", denied)
    cfg = write_config(tmp_path / "config", session={"kill_file": str(bad)})
    with pytest.raises(ConfigError, match=r"session\.kill_file .* is unusable") as e:
        make_session(tmp_path, symbols=["AAA"], source=two_symbols(), start="2021-01-20",
                     model="baseline:buy_and_hold", config_dir=cfg, kill_switch=None).run()
    assert str(bad) in str(e.value)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- empty kill-file setting
@pytest.mark.parametrize("value", ["", "   "])
def test_kill_file_setting_when_empty_then_config_error_naming_the_key(tmp_path, value):
    p = tmp_path / "session.yaml"
    p.write_text(yaml.safe_dump({"session": {"kill_file": value}}))
    with pytest.raises(ConfigError, match=r"session\.kill_file must name a file"):
        load_session(p)
    with pytest.raises(ConfigError, match=r"session\.kill_file must name a file"):
        KillSwitch(value)


def test_cli_paper_when_kill_file_is_empty_then_exit_2_and_no_run(tmp_path, capsys):
    cfg = write_config(tmp_path / "config", session={"kill_file": ""})
    code = main(["paper", "--symbols", "SPY", "--config-dir", str(cfg), "--run-dir",
                 str(tmp_path / "runs"), "--model", "baseline:buy_and_hold",
                 "--start", "2018-01-01", "--end", "2018-02-01"])
    assert code == 2
    err = capsys.readouterr().err
    assert "research-lib paper: error:" in err and "session.kill_file" in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- the reason names the value
@pytest.mark.parametrize("raw,shown", [("1", "FLAG_TRADING_HALTED=1"),
                                       ("yes", "FLAG_TRADING_HALTED=yes"),
                                       ("halt now", "FLAG_TRADING_HALTED='halt now'"),
                                       (" 1", "FLAG_TRADING_HALTED=' 1'")])
def test_trading_halted_flag_when_set_then_reason_names_the_value_seen(raw, shown):
    st = KillSwitch(None, env={"FLAG_TRADING_HALTED": raw}).check()
    assert st.halted and st.reason == shown


# ---------------------------------------------------------------- red team (round 2 merged)
def test_kill_file_when_set_with_a_tilde_then_the_home_file_halts_not_a_literal_folder(
        tmp_path, capsys, monkeypatch):
    """``kill_file: ~/halt/kill.flag`` watched ``./~/halt/kill.flag`` (a literal folder
    named ``~``): touching the file in the home folder never halted, orders filled."""
    home = tmp_path / "home"
    (home / "halt").mkdir(parents=True)
    (home / "halt" / "kill.flag").touch()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / "config", session={"kill_file": "~/halt/kill.flag"})
    code = main(["paper", "--symbols", "SPY", "--config-dir", str(cfg), "--run-dir",
                 str(tmp_path / "runs"), "--model", "baseline:buy_and_hold", "--run-id", "t",
                 "--start", "2018-01-01", "--end", "2018-02-01", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    import json

    summary = json.loads(out.out)
    assert summary["fills"] == 0 and summary["orders"] == 0
    assert summary["denials_by_reason"].get("KILL_SWITCH", 0) >= 1
    run = read_run(tmp_path / "runs" / "t" / "ledger.sqlite")
    reasons = " ".join(run["state_changes"]["reason"].astype(str))
    assert str(home / "halt" / "kill.flag") in reasons
    assert KillSwitch("~/halt/kill.flag").kill_file == home / "halt" / "kill.flag"


@pytest.mark.parametrize("value", ["$HOME/kill.flag", "${RUN}/kill.flag"])
def test_kill_file_when_it_names_an_environment_variable_then_config_error(value):
    """``$HOME/kill.flag`` was a literal folder named ``$HOME``: never set by the user."""
    with pytest.raises(ConfigError, match="session.kill_file"):
        KillSwitch(value)


def test_reload_when_the_config_folder_cannot_be_searched_mid_run_then_rejected_not_a_crash(
        tmp_path, monkeypatch):
    """A config folder made unsearchable mid-run (``chmod``, a remount) made the watcher's
    ``os.stat`` raise PermissionError out of the step: the session died with a traceback.
    Now the reload is refused (recorded, previous config kept) and the run goes on."""
    import errno

    real = os.stat
    blocked: dict[str, Path] = {}

    def stat(p, *a, **k):
        if "cfg" in blocked and str(p).startswith(str(blocked["cfg"])):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real(p, *a, **k)

    real_read = Path.read_text

    def read_text(self, *a, **k):  # what an unsearchable folder does to a read
        if "cfg" in blocked and str(self).startswith(str(blocked["cfg"])):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self, *a, **k)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(Path, "read_text", read_text)
    s, _ = run_with_edit(tmp_path, lambda cfg: blocked.setdefault("cfg", cfg), risk=TIGHT)
    rows = config_rows(s.ledger.path)
    assert [r.to_state for r in rows] == ["REJECTED"] * 3  # risk, session, assets: once each
    assert all("Permission denied" in r.reason and "kept previous" in r.reason for r in rows)
    assert s.engine.limits.max_position_pct == 0.05
    assert read_run(s.ledger.path)["steps"].shape[0] > 5  # ran to the end of its data


def test_reload_when_a_config_file_becomes_a_fifo_then_rejected_without_blocking(tmp_path):
    """``risk.yaml`` replaced by a fifo (or a link to ``/dev/zero``) mid-run: the watcher's
    read blocked the running step forever (no writer) or read without end. A config file
    that is not a regular file is refused at once, the previous config kept."""
    import threading

    cfg = write_config(tmp_path / "config")
    w = ConfigWatcher(cfg / "risk.yaml", load_risk)
    before = w.value
    (cfg / "risk.yaml").unlink()
    os.mkfifo(cfg / "risk.yaml")  # (a link to /dev/zero is refused the same way)
    got: dict[str, Any] = {}
    t = threading.Thread(target=lambda: got.setdefault("value", w.current()), daemon=True)
    t.start()
    t.join(5)
    blocked = t.is_alive()
    if blocked:  # release the reader so the test run can end
        with open(cfg / "risk.yaml", "w") as f:
            f.write("risk: {}\n")
        t.join(5)
    assert not blocked, "the reload blocked on a file that is not a regular file"
    assert got["value"] == before
    assert w.last_error is not None and "not a regular file" in w.last_error
