"""An in-memory frames source: ``FramesSource({"SYM": df, ...})``.

A data source over frames already in memory (a notebook's own frames, tests, benchmarks
timed without file I/O). It speaks the :class:`~research_lib.data.source_base.Source`
interface: ``symbols()`` and ``fetch(symbol, start, end, interval)``, the window inclusive
at both ends; each fetch returns a copy that carries the frame's ``attrs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


class FramesSource:
    """A data source over in-memory frames keyed by symbol."""

    name = "frames"

    def __init__(self, frames: Mapping[str, pd.DataFrame], name: str | None = None) -> None:
        self.frames = dict(frames)
        if name is not None:
            self.name = name

    def __repr__(self) -> str:
        """``frames:SPY,QQQ``: what a run's ledger records as its source (the same frames
        give the same ledger; an object's address would not)."""
        return f"{self.name}:{','.join(self.frames)}"

    def symbols(self) -> list[str]:
        return sorted(self.frames)

    def fetch(self, symbol: str, start: Any = None, end: Any = None, interval: str = "1d"):
        df = self.frames[symbol]
        if start is not None:
            df = df[df.index >= pd.Timestamp(start)]
        if end is not None:
            df = df[df.index <= pd.Timestamp(end)]
        out = df.copy()
        out.attrs = dict(self.frames[symbol].attrs)
        return out
