"""The issue's live commands on a machine without network fail clearly: words on stderr,
exit 2, the failure in the ledger. "No network" is made without touching the network
(tests/_no_network.py refuses any non-loopback address): ccxt's real binance class and
alpaca-py's real client are pointed at a closed port on 127.0.0.1 (connection refused,
as offline); yfinance's curl cannot be, so its ``Ticker.history`` raises the error
curl_cffi raises offline (recorded on this machine, which has no network: ``curl: (6)
Could not resolve host: query2.finance.yahoo.com``)."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from pathlib import Path

import pytest

from research_lib.cli import main
from tests.kit.fake_venues import point_binance_at
from tests.kit.paper import edit_yaml, write_config

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with block ends


@pytest.fixture
def offline(monkeypatch):
    """Every source and venue this package reaches fails as it does with no network."""
    import ccxt
    import yfinance
    from curl_cffi.requests.exceptions import DNSError

    dead = f"http://127.0.0.1:{closed_port()}"
    real_binance = ccxt.binance

    class Binance(real_binance):
        def __init__(self, config=None):
            super().__init__(config or {})
            point_binance_at(self, dead)

    class Ticker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, **kw):
            raise DNSError("Failed to perform, curl: (6) Could not resolve host: "
                           "query2.finance.yahoo.com. See https://curl.se/libcurl/c/"
                           "libcurl-errors.html first for more details.")

    monkeypatch.setattr(ccxt, "binance", Binance)
    monkeypatch.setattr(yfinance, "Ticker", Ticker)
    monkeypatch.setenv("APCA_API_DATA_URL", dead)
    return dead


def config(tmp: Path) -> Path:
    cfg = write_config(tmp / "config", session={"kill_file": str(tmp / "kill")})
    shutil.copy(ROOT / "config" / "assets.yaml", cfg / "assets.yaml")  # the 1m models
    return cfg


def feed_failed(runs: Path) -> int:
    (ledger,) = runs.glob("*/ledger.sqlite")
    with sqlite3.connect(ledger) as conn:
        return conn.execute("SELECT COUNT(*) FROM risk_events WHERE code='FEED_FAILED'"
                            ).fetchone()[0]


@pytest.mark.parametrize(("argv", "words"), [
    (["--symbols", "SPY,QQQ", "--duration", "5min", "--interval", "1m", "--source",
      "yfinance"], "yfinance: download of 'SPY' failed: DNSError"),
    (["--symbols", "BTCUSDT,ETHUSDT", "--duration", "60min", "--dry-run", "--source",
      "ccxt:binance", "--interval", "1m"],
     "ccxt:binance: load_markets failed: NetworkError"),
])
def test_the_issues_live_commands_without_network_exit_2_saying_so_in_words(
        tmp_path, capsys, monkeypatch, offline, argv, words):
    monkeypatch.setenv("FLAG_ASSET_SPECIFIC_MODELS", "1")
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    code = main(["paper", *argv, "--run-dir", str(tmp_path / "runs"),
                 "--config-dir", str(config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2
    assert "research-lib paper: error: live: no symbol could be fetched at the first poll" in err
    assert words in err
    assert "no network" in err and "check the network and the symbols" in err
    assert feed_failed(tmp_path / "runs") == 1


def test_broker_alpaca_without_network_exits_2_before_any_run_saying_so(
        tmp_path, capsys, monkeypatch, offline):
    """`... --broker alpaca`: the venue is opened (keys, account) before anything is
    written; unreachable, it fails closed after the bounded retries, naming the venue."""
    monkeypatch.setenv("APCA_API_KEY_ID", "PKOFFLINEKEY0000TEST")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "offlineSECRETvalue0000TESTONLY")
    cfg = config(tmp_path)
    edit_yaml(cfg / "session.yaml", "venue", max_attempts=2, backoff_seconds=0.0,
              max_backoff_seconds=0.0, timeout_seconds=2.0, alpaca_url=offline)
    code = main(["paper", "--symbols", "SPY,QQQ", "--duration", "5min", "--interval", "1m",
                 "--source", "yfinance", "--broker", "alpaca", "--run-dir",
                 str(tmp_path / "runs"), "--config-dir", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"alpaca ({offline}): GET /v2/account failed 2 times, the last with " \
           "ConnectionError" in err
    assert "stopping (fail closed)" in err
    assert "offlineSECRET" not in err and "PKOFFLINEKEY" not in err
    assert not list((tmp_path / "runs").glob("*/ledger.sqlite"))
