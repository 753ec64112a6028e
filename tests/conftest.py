"""Shared fixtures. Every test runs offline, in UTC-agnostic fashion, with the project's
config folder; tests that write use tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.kit import make_bars

# every test runs offline: a non-loopback connection fails the test (tests/_no_network.py)
pytest_plugins = ["tests._no_network", "tests.kit.venue"]  # the kit's fixtures (venue)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RESEARCH_LIB_HOME", str(ROOT))
os.environ.pop("FLAG_ASSET_SPECIFIC_MODELS", None)
os.environ.pop("FLAG_TRADING_HALTED", None)


@pytest.fixture
def project_root() -> Path:
    return ROOT


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()
