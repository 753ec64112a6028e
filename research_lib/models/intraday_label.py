"""The label's dead zone on intraday bars. ``config/models.yaml`` sets it for daily bars (10
bps); a 1-minute move of the S&P 500 is rarely that large, so on 1m bars nearly every row
would be dead zone and nothing would be trained. A random walk's move grows with the square
root of time, so the dead zone is scaled by the square root of the bar's share of a trading
day on the symbols' calendar (an NYSE day trades 6.5 h: 1m -> 10 bps x sqrt(1/390) = 0.51
bps, 1h -> 3.9 bps; a 24/7 or FX day 24 h: 1h -> 2.0 bps). Daily and longer bars keep the
configured value. The card records the value used (``label.dead_zone`` and the settings a
retrain reuses)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..data.market_hours import session_seconds
from ..data.sanity import interval_length


def label_calendar(symbols: Sequence[str], assets: Any = None) -> str:
    """The calendar most of the symbols trade on (``config/assets.yaml``)."""
    from ..config import load_assets

    a = assets or load_assets()
    cals = Counter()
    for s in symbols:
        try:
            cals[a.calendar_for(s)] += 1
        except Exception:  # a synthetic chain root (SPX) or an unknown symbol: the default
            cals["XNYS"] += 1
    return cals.most_common(1)[0][0] if cals else "XNYS"


def scaled_label(label: Any, interval: str, symbols: Sequence[str], assets: Any = None) -> Any:
    step = interval_length(interval)
    if step is None or step.total_seconds() >= 86400:
        return label
    day = session_seconds(label_calendar(symbols, assets))
    share = min(1.0, step.total_seconds() / day)
    return dataclasses.replace(label, dead_zone=float(f"{label.dead_zone * math.sqrt(share):.6g}"))
