"""Market data: sources behind one interface, exchange calendars and sanity checks.

``load(["SPY", "BTC-USD"], source="sample")`` returns ``{symbol: DataFrame}`` with
float64 columns ``open, high, low, close, volume`` on a tz-aware UTC index named
``timestamp``. ``frame.attrs`` carries ``symbol`` (as asked), ``served_as``, ``proxy``,
``label``, ``source`` and ``adjustment``.
"""

from .frames import FramesSource
from .sources import (
    COLUMNS,
    CacheSource,
    CsvSource,
    SampleSource,
    Source,
    YFinanceSource,
    get_source,
    load,
    sample_symbols,
)

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
