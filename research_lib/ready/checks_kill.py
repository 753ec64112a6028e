"""Kill-switch claims: in a scratch session that buys at its first decision, the environment
flag (``FLAG_TRADING_HALTED=1``) and the kill file each stop every order, while the same
session with neither set places orders (so the switch, not the data, stopped them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .context import Context, env_set, ledger_counts, scratch_session
from .verdict import Verdict, failed, passed

MODEL = "baseline:buy_and_hold"  # long every symbol at the first decision
BARS = 8


def _run(ctx: Context, name: str, *, flag: str, kill_file: bool) -> dict[str, Any]:
    from ..flags import KillSwitch

    folder = ctx.scratch(name)
    kill = folder / "kill.flag"
    if kill_file:
        kill.write_text("ready: kill switch drill\n", encoding="utf-8")
    with env_set(FLAG_TRADING_HALTED=flag):  # the real environment, read before each order
        res = scratch_session(ctx, folder, run_id=f"ready-{name}", bars=BARS, model=MODEL,
                              kill_switch=KillSwitch(kill))
    return {**ledger_counts(Path(res.ledger_path)), "steps": res.summary["steps"]}


def _stopped(ctx: Context, name: str, reason_word: str, *, flag: str,
             kill_file: bool) -> Verdict:
    control = _run(ctx, f"{name}-control", flag="0", kill_file=False)
    if control["submitted"] == 0:
        return failed(f"the control session (no switch set) placed no order in "
                      f"{control['steps']} steps, so it cannot show the switch stopping one",
                      control_orders=0)
    got = _run(ctx, name, flag=flag, kill_file=kill_file)
    evidence = {"control_orders": control["submitted"], "orders": got["submitted"],
                "fills": got["filled"], "denied": got["denied"], "steps": got["steps"],
                "denial": got["denials"][0] if got["denials"] else None}
    what = "FLAG_TRADING_HALTED=1" if flag != "0" else "the kill file"
    if got["submitted"] or got["filled"]:
        return failed(f"with {what} set, {got['submitted']} order(s) were submitted "
                      f"({', '.join(got['submitted_symbols'])}) and {got['filled']} filled: "
                      "the switch did not stop them", **evidence)
    named = [d for d in got["denials"] if d and d.startswith("KILL_SWITCH:") and reason_word in d]
    if not named:
        return failed(f"with {what} set no order passed, but no denial names the switch "
                      f"({reason_word}); denials: {got['denials'][:3]}", **evidence)
    return passed(f"{what} denied all {len(named)} order attempts (the same session without it "
                  f"placed {control['submitted']} orders): {named[0]}", **evidence)


def env_flag(ctx: Context) -> Verdict:
    return _stopped(ctx, "kill-env", "FLAG_TRADING_HALTED=1", flag="1", kill_file=False)


def kill_file(ctx: Context) -> Verdict:
    return _stopped(ctx, "kill-file", "KILL_FILE", flag="0", kill_file=True)
