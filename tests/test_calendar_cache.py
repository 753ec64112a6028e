"""The exchange calendar's session days, kept on disk, answer exactly as the calendar does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from research_lib.data import calendars
from research_lib.data.calendars import _xcal, is_session, sessions


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    calendars._DAYS.clear()
    yield tmp_path / "cache" / "calendars"
    calendars._DAYS.clear()


def _real_sessions(start: str, end: str) -> pd.DatetimeIndex:
    cal = _xcal("XNYS")
    s = max(pd.Timestamp(start), pd.Timestamp(cal.first_session))
    e = min(pd.Timestamp(end), pd.Timestamp(cal.last_session))
    if s > e:
        return pd.DatetimeIndex([], tz="UTC")
    return pd.DatetimeIndex(cal.sessions_in_range(s, e)).tz_localize("UTC")


RANGES = [("1980-01-01", "1990-01-10"), ("1999-01-01", "2018-12-31"), ("2001-09-07", "2001-09-20"),
          ("2012-10-26", "2012-11-02"), ("2020-01-01", "2020-01-01"), ("2021-06-18", "2021-06-21"),
          ("2022-06-17", "2022-06-21"), ("2030-01-01", "2030-02-01"), ("2018-12-31", "2018-01-01")]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_sessions_when_answered_from_the_cache_then_same_days_as_the_calendar(cache_dir, start,
                                                                              end):
    want = _real_sessions(start, end)
    first = sessions("XNYS", start, end)  # builds the calendar and writes the cache
    calendars._DAYS.clear()
    again = sessions("XNYS", start, end)  # read back from the file
    assert (cache_dir / "XNYS.json").is_file()
    for got in (first, again):
        assert list(got) == list(want) and str(got.tz) == "UTC"


def test_is_session_when_answered_from_the_cache_then_same_as_the_calendar(cache_dir):
    cal = _xcal("XNYS")
    days = pd.date_range("1989-12-20", "2028-01-10", freq="D")
    first, last = pd.Timestamp(cal.first_session), pd.Timestamp(cal.last_session)
    want = [d < first or d > last or bool(cal.is_session(d)) for d in days]
    calendars._DAYS.clear()
    assert [is_session("XNYS", d) for d in days] == want


def test_cache_when_file_is_corrupt_or_from_another_version_then_rebuilt(cache_dir):
    sessions("XNYS", "2018-01-01", "2018-12-31")
    path = cache_dir / "XNYS.json"
    doc = json.loads(path.read_text())
    for bad in ("{not json", json.dumps({**doc, "exchange_calendars": "0.0"}),
                json.dumps({**doc, "days": doc["days"][::-1]})):
        path.write_text(bad)
        calendars._DAYS.clear()
        got = sessions("XNYS", "2018-01-01", "2018-12-31")
        assert list(got) == list(_real_sessions("2018-01-01", "2018-12-31"))
        assert json.loads(path.read_text())["days"] == doc["days"]  # written again


def test_cache_when_folder_is_not_writable_then_answers_from_the_calendar(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(blocker / "cache"))  # under a file: no mkdir
    calendars._DAYS.clear()
    try:
        assert len(sessions("XNYS", "2018-01-01", "2018-12-31")) == 251
    finally:
        calendars._DAYS.clear()


def test_cache_when_warm_then_sanity_checks_do_not_import_exchange_calendars(cache_dir):
    sessions("XNYS", "2018-01-01", "2018-12-31")
    code = ("import sys; from research_lib.data import load; from research_lib.data.sanity import "
            "check_frame, SanityConfig; df = load(['SPY'])['SPY']; "
            "check_frame(df, 'SPY', SanityConfig(calendar='XNYS')); "
            "print('exchange_calendars' in sys.modules)")
    env = {**__import__("os").environ, "RESEARCH_LIB_CACHE": str(cache_dir.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "False"


def test_session_days_when_a_later_date_is_asked_on_a_later_day_then_rebuilt(cache_dir):
    sessions("XNYS", "2018-01-01", "2018-12-31")
    d = calendars._DAYS["XNYS"]
    calendars._DAYS["XNYS"] = calendars._SessionDays(d.days[:-300], d.first,
                                                     int(d.days[-301]), "2000-01-01", d.version)
    got = sessions("XNYS", "2018-01-01", pd.Timestamp(_xcal("XNYS").last_session))
    assert np.array_equal(calendars._DAYS["XNYS"].days, d.days) and got[-1].tz_localize(None) == \
        pd.Timestamp(_xcal("XNYS").last_session)
