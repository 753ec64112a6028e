"""HTML pieces of the tearsheet: formatting with units, tables, a download link, and
:class:`Html`, a displayable fragment (a notebook shows it; the HTML export keeps it).

Everything here is deterministic: no random element ids, no timestamps, no local paths.
"""

from __future__ import annotations

import base64
import html as _html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

TITLE_KEY = "research_lib_title"  # output metadata the HTML export reads the page title from

CSS = """
<style>
.rl-header { border: 1px solid #ccd; border-radius: 6px; padding: 10px 14px; margin: 4px 0 10px;
  background: #f8f9fc; font-size: 13px; }
.rl-header h1 { font-size: 20px; margin: 0 0 6px; }
.rl-header table { border-collapse: collapse; }
.rl-header td { padding: 2px 10px 2px 0; vertical-align: top; text-align: left !important; }
.rl-header td:first-child { color: #556; white-space: nowrap; }
.rl-stamp { display: inline-block; padding: 1px 8px; border-radius: 4px; font-weight: 600; }
.rl-stamp-in { background: #fde2e1; color: #9b1c1c; }
.rl-stamp-out { background: #def7ec; color: #03543f; }
.rl-stamp-unknown { background: #eee; color: #444; }
.rl-table { border-collapse: collapse; font-size: 12px; margin: 4px 0 8px; }
.rl-table th, .rl-table td { padding: 3px 8px; border-bottom: 1px solid #e3e3e8; }
.rl-table td { white-space: nowrap !important; }
.rl-table td.rl-text { white-space: normal !important; min-width: 4em; }
.rl-table td.rl-text:first-child { white-space: nowrap !important; }
.rl-table th { background: #f2f3f7; text-align: right !important; position: sticky; top: 0; }
.rl-table td { text-align: right !important; font-variant-numeric: tabular-nums; }
.rl-table th:first-child, .rl-table td:first-child, .rl-table td.rl-text,
.rl-table th.rl-text { text-align: left !important; }
.rl-neg { color: #b42318; }
.rl-scroll { max-height: 420px; overflow: auto; border: 1px solid #e3e3e8; }
.rl-note { color: #555; font-size: 12px; margin: 2px 0 8px; }
</style>
"""


class Html:
    """An HTML fragment a notebook displays as it is (and the export keeps as it is)."""

    def __init__(self, body: str, title: str | None = None) -> None:
        self.body = body
        self.title = title

    def _repr_html_(self) -> str:
        return self.body

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        data = {"text/html": self.body, "text/plain": _plain(self.body)}
        if self.title:
            return data, {TITLE_KEY: self.title}
        return data

    def __str__(self) -> str:
        return _plain(self.body)


def _plain(body: str) -> str:
    import re

    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", body, flags=re.S)
    text = re.sub(r"<br\s*/?>|</(p|div|tr|h\d|li)>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return _html.unescape(re.sub(r"[ \t]+", " ", text)).strip()


# ------------------------------------------------------------------------- formats
def fmt(value: Any, unit: str) -> str:
    """A number with its unit: ``%`` (fractions shown as percent), ``ratio``, ``$``
    (currency of the account), ``x`` (multiple of equity), ``days``, ``count``, or text."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return "" if value is pd.NaT else value.strftime("%Y-%m-%d")
    if unit == "%":
        return f"{value * 100:,.2f} %"
    if unit == "bps":
        return f"{value * 1e4:,.2f} bps"
    if unit == "ratio":
        return f"{value:,.2f}"
    if unit == "$":
        return f"{value:,.2f}"
    if unit == "x":
        return f"{value:,.2f}x"
    if unit == "days":
        return f"{value:,.1f} d"
    if unit == "count":
        return f"{int(value):,d}"
    if unit == "price":
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    if unit == "qty":
        return f"{value:,.6g}"
    if unit == "date":
        return "" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")
    return str(value)


def esc(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def table(df: pd.DataFrame, units: Mapping[str, str] | None = None, *,
          index: bool = False, scroll: bool = False, caption: str | None = None,
          text_columns: Sequence[str] = (), rename: Mapping[str, str] | None = None) -> Html:
    """``df`` as a plain HTML table, each column formatted by its unit (``units``: column
    -> unit, default text) and then renamed for display (``rename``); numbers right-aligned,
    negative ones in red; the first column and ``text_columns`` left-aligned."""
    units = dict(units or {})
    if df is None or df.empty:
        return Html(f'<p class="rl-note">{esc(caption or "")} none.</p>')
    d = df.reset_index() if index else df
    names = dict(rename or {})
    head = "".join(f'<th class="rl-text">{esc(names.get(str(c), c))}</th>'
                   if c in text_columns else f"<th>{esc(names.get(str(c), c))}</th>"
                   for c in d.columns)
    rows = []
    for rec in d.itertuples(index=False):
        cells = []
        for c, v in zip(d.columns, rec, strict=True):
            unit = units.get(str(c), "text")
            text = fmt(v, unit) if unit != "text" else ("" if v is None or v is pd.NaT
                                                         else str(v))
            neg = isinstance(v, (int, float)) and not isinstance(v, bool) and \
                math.isfinite(v) and v < 0 and unit in ("%", "$", "ratio")
            cls = ' class="rl-text"' if c in text_columns else (' class="rl-neg"' if neg else "")
            cells.append(f"<td{cls}>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<p class="rl-note">{esc(caption)}</p>' if caption else ""
    body = f'<table class="rl-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}' \
           "</tbody></table>"
    if scroll:
        body = f'<div class="rl-scroll">{body}</div>'
    return Html(cap + body)


def download_link(data: bytes, filename: str, label: str, mime: str = "text/csv") -> str:
    """A link that saves ``data`` as ``filename``, carried inside the page (a data URI):
    the HTML stays one self-contained file."""
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<a download="{esc(filename)}" href="data:{mime};base64,{b64}">{esc(label)}</a>')


def join(*parts: Html | str) -> Html:
    return Html("".join(p.body if isinstance(p, Html) else p for p in parts))
