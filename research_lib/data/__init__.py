"""Market data: sources behind one interface, exchange calendars and sanity checks.

``load(["SPY", "BTC-USD"], source="sample")`` returns ``{symbol: DataFrame}`` with
float64 columns ``open, high, low, close, volume`` on a tz-aware UTC index named
``timestamp``. ``frame.attrs`` carries ``symbol`` (as asked), ``served_as``, ``proxy``,
``label``, ``source`` and ``adjustment``.
"""

from .cache import CacheSource
from .csv_source import CsvSource
from .frames import FramesSource
from .source_base import COLUMNS, Source
from .sources import SampleSource, get_source, load, sample_symbols
from .yfinance_source import YFinanceSource

__all__ = [
    "COLUMNS",
    "CacheSource",
    "CsvSource",
    "FramesSource",
    "SampleSource",
    "Source",
    "YFinanceSource",
    "get_source",
    "load",
    "sample_symbols",
]
