"""``decision_log: changes`` (issue 15, big universes): HOLD and NO_SIGNAL decisions are
recorded only when they change; everything else, and both engines, as with ``full``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from research_lib.errors import ConfigError
from research_lib.ledger_read import deterministic_dump
from research_lib.paper.decision_log import QUIET_VERDICTS
from tests.kit.paper import ledger_rows, make_session, write_config

KW = dict(symbols=["^GSPC", "BTC-USD"], source="sample", start="2016-01-01",
          end="2017-12-31", model="baseline:sma_cross")


def _run(tmp_path: Path, level: str | None, fast: bool = False, **kw):
    cfg = tmp_path.parent / "config"
    if not cfg.exists():
        write_config(cfg)
    res = make_session(tmp_path, config_dir=cfg, decision_log=level, fast=fast, run_id="dl",
                       log_file=True, **{**KW, **kw}).run()
    assert res.exit_code == 0, res.summary
    return res


def _dump(res) -> dict:
    d = deterministic_dump(res.ledger_path)
    d["meta"] = [m for m in d["meta"] if m[0] != "decision_log"]
    return d


def test_changes_keeps_every_order_and_drops_repeated_holds(tmp_path: Path) -> None:
    full = _run(tmp_path / "full", None)
    ch = _run(tmp_path / "changes", "changes")
    a, b = _dump(full), _dump(ch)
    for table in a:  # the same run, row for row, but for the decisions
        if table != "decisions":
            assert a[table] == b[table], table
    n_full, n_ch = len(a["decisions"]), len(b["decisions"])
    assert n_ch < n_full / 3, (n_ch, n_full)  # most bars are repeated holds
    verdict = 10  # DecisionRow order (the dump leaves out latency_ms only)
    acting = [r for r in a["decisions"] if r[verdict] not in QUIET_VERDICTS]
    assert acting and acting == [r for r in b["decisions"] if r[verdict] not in QUIET_VERDICTS]
    # every kept quiet decision differs from that symbol's previous kept one
    last: dict[str, tuple] = {}
    for r in b["decisions"]:
        key = (r[verdict], (r[11] or "").split(":")[0], r[4], r[6],
               None if r[5] is None else (1 if r[5] > 0.52 else -1 if r[5] < 0.48 else 0))
        if r[verdict] in QUIET_VERDICTS:
            assert last.get(r[2]) != key, r
        last[r[2]] = key
    # the log: fewer decision records as well
    def decisions_logged(res) -> int:
        path = Path(res.ledger_path).parent / "events.jsonl"
        return sum(json.loads(line).get("event") == "decision"
                   for line in path.read_text().splitlines())
    assert decisions_logged(ch) < decisions_logged(full) / 3
    # full is the default and leaves no trace in the ledger (ledgers stay byte-identical)
    meta = dict(ledger_rows(full.ledger_path, "SELECT key, value FROM meta"))
    assert "decision_log" not in meta
    meta = dict(ledger_rows(ch.ledger_path, "SELECT key, value FROM meta"))
    assert json.loads(meta["decision_log"]) == "changes"


def test_both_engines_keep_the_same_decisions(tmp_path: Path) -> None:
    step = _run(tmp_path / "step", "changes")
    fast = _run(tmp_path / "fast", "changes", fast=True)
    assert _dump(step) == _dump(fast)


def test_a_resume_keeps_the_level_and_the_same_ledger(tmp_path: Path) -> None:
    whole = _run(tmp_path / "whole", "changes")
    cfg = tmp_path / "config"
    part = make_session(tmp_path / "part", config_dir=cfg, decision_log="changes", run_id="dl",
                        max_steps=150, **KW).run()
    assert part.exit_code == 0
    with pytest.raises(ConfigError, match="decision_log 'full' cannot be used with --resume"):
        make_session(tmp_path / "part", config_dir=cfg, resume="dl",
                     decision_log="full").run()
    rest = make_session(tmp_path / "part", config_dir=cfg, resume="dl").run()
    assert rest.exit_code == 0
    assert _dump(rest) == _dump(whole)


def test_an_unknown_level_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="decision_log 'some'.*'full'.*'changes'"):
        make_session(tmp_path, decision_log="some", **KW).run()


def test_changes_folds_repeated_clips_into_one_row_a_step_and_keeps_the_count(
        tmp_path: Path) -> None:
    from tests.kit.paper import FrameSource, ScriptedModel, random_walk

    syms = ["AAA", "BBB", "CCC", "DDD"]
    cfg = write_config(tmp_path / "config", session={"warmup_bars": 5},
                       signal={"target_weight": 0.2})  # above the 0.15 limit: clipped
    src = FrameSource({s: random_walk(60, seed=k, symbol=s) for k, s in enumerate(syms)})
    out = {}
    for level in ("full", "changes"):
        out[level] = make_session(
            tmp_path / level, config_dir=cfg, symbols=syms, source=src, start="2021-01-15",
            router=ScriptedModel(syms, prob=lambda s, n, c: 0.9), decision_log=level,
            run_id="fold").run()
    full, ch = out["full"], out["changes"]
    rows_f = ledger_rows(full.ledger_path, "SELECT step, symbol, code FROM risk_events "
                                           "WHERE code='TARGET_CLIPPED'")
    rows_c = ledger_rows(ch.ledger_path, "SELECT step, symbol, code, reason FROM risk_events "
                                         "WHERE code='TARGET_CLIPPED'")
    steps = sorted({r[0] for r in rows_f})
    assert len(rows_f) == 4 * len(steps)  # every symbol, every bar
    assert [r[0] for r in rows_c] == steps  # one row a step
    assert all(r[1] is None and r[3].startswith("TARGET_CLIPPED: symbols=4 first=TARGET_CLIPPED")
               for r in rows_c)
    # the count is kept: the summaries agree
    assert full.summary["clips_by_reason"] == ch.summary["clips_by_reason"]
    assert ch.summary["clips_by_reason"]["TARGET_CLIPPED"] == len(rows_f)
    # and the trades are the same
    assert (ledger_rows(full.ledger_path, "SELECT * FROM fills")
            == ledger_rows(ch.ledger_path, "SELECT * FROM fills"))


def test_filter_drops_repeated_no_order_verdicts_and_keeps_any_change() -> None:
    from types import SimpleNamespace

    from research_lib.config import SignalConfig
    from research_lib.paper.decision_log import DecisionFilter

    desk = SimpleNamespace(settings=SimpleNamespace(signal=SignalConfig()))
    f = DecisionFilter()
    seq = [("HOLD", None, 0.5, True), ("HOLD", None, 0.51, False),  # same side, same verdict
           ("HOLD", None, 0.6, True),  # the signal went long
           ("HOLD", "WITHIN_REBALANCE_BAND: band=0.05 target=0.1 weight=0.09", 0.6, True),
           ("HOLD", "WITHIN_REBALANCE_BAND: band=0.05 target=0.1 weight=0.08", 0.7, False),
           ("SUBMITTED", None, 0.7, True), ("SUBMITTED", None, 0.7, True),  # orders: always
           ("HALTED", "HALTED: no position to close", None, True),
           ("HALTED", "HALTED: no position to close", None, False),
           ("NO_SIGNAL", "FEATURES_NOT_READY: 3 bars", None, True),
           ("NO_SIGNAL", "FEATURES_NOT_READY: 4 bars", None, False)]
    for verdict, reason, prob, kept in seq:
        assert f.keep_values(desk, "AAA", "m", prob, None, verdict, reason) is kept, verdict
    assert f.keep_values(desk, "AAA", "other", 0.2, None, "NO_SIGNAL", "FEATURES_NOT_READY")


@pytest.mark.parametrize("rest_fast", [False, True])
def test_a_fast_run_resumed_keeps_the_filter_primed_from_its_column_blocks(
        tmp_path: Path, rest_fast: bool) -> None:
    """A --fast run stores its decisions as column blocks: the resume primes the
    changes filter from them (it read plain rows only, found none, and re-recorded every
    symbol's unchanged hold on the first resumed step)."""
    whole = _run(tmp_path / "whole", "changes")
    cfg = tmp_path / "config"
    part = make_session(tmp_path / "part", config_dir=cfg, decision_log="changes", run_id="dl",
                        max_steps=225, fast=True, **KW).run()  # inside a run of holds
    assert part.exit_code == 0
    rest = make_session(tmp_path / "part", config_dir=cfg, resume="dl", fast=rest_fast).run()
    assert rest.exit_code == 0
    assert _dump(rest) == _dump(whole)
