"""The readiness report as text (what ``research-lib ready`` prints), as JSON-ready dicts,
and as one self-contained HTML page (inline CSS, no script, nothing fetched: the evidence a
reviewer reads)."""

from __future__ import annotations

import html
import os
import textwrap
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .runner import ReadyReport
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e", WARN: "#9a6700", SKIP: "#57606a"}


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.6g}"
    return str(v)


def flat_evidence(evidence: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"rows": {"SPY": 5031}}`` -> ``[("rows.SPY", "5031")]`` (lists joined by commas)."""
    out: list[tuple[str, str]] = []
    for k, v in evidence.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flat_evidence(v, key + ".") if v else [(key, "{}")]
        elif isinstance(v, list | tuple):
            out.append((key, ", ".join(_num(x) for x in v) if v else "[]"))
        else:
            out.append((key, _num(v)))
    return out


def text(report: ReadyReport, width: int = 100) -> str:
    """One block per claim (verdict, name, required, seconds, detail; then its evidence),
    and the headline last."""
    name_w = max((len(v.claim) for v in report.verdicts), default=10)
    lines = [f"research-lib ready: {len(report.verdicts)} claims on {report.home} "
             f"(symbols {','.join(report.symbols)})"]
    for v in report.verdicts:
        req = "required" if v.required else "optional"
        lines.append(f"{v.verdict:<4}  {v.claim:<{name_w}}  {req}  {v.seconds:6.2f} s  {v.detail}")
        ev = "  ".join(f"{k}={val}" for k, val in flat_evidence(v.evidence))
        if ev:
            parts = textwrap.wrap(ev, width - 16, break_on_hyphens=False) or [ev]
            if len(parts) > 4:
                parts = parts[:4]
                parts[-1] += " ..."
            lines += [f"      evidence: {parts[0]}", *(f"{' ' * 16}{p}" for p in parts[1:])]
    lines.append(report.headline())
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin-bottom:.2rem} .head{font-size:1.1rem;font-weight:600;margin:.6rem 0}
table{border-collapse:collapse;width:100%;font-size:.9rem} th,td{border:1px solid #d0d7de;
padding:.4rem .5rem;vertical-align:top;text-align:left} th{background:#f6f8fa}
.v{color:#fff;font-weight:700;padding:.15rem .45rem;border-radius:.3rem;white-space:nowrap}
.num{text-align:right;white-space:nowrap} .stmt{color:#57606a;font-size:.85rem}
table.claims{table-layout:fixed} .claims td{overflow-wrap:anywhere}
.ev{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.78rem;margin:0}
.ev dt{font-weight:600;float:left;clear:left;margin-right:.4rem} .ev dd{margin:0}
.meta{font-size:.85rem;color:#57606a} .meta td{border:none;padding:.1rem .6rem .1rem 0}
"""


def _row(v: Verdict) -> str:
    e = html.escape
    ev = "".join(f"<dt>{e(k)}</dt><dd>{e(val)}</dd>" for k, val in flat_evidence(v.evidence))
    return (
        "<tr>"
        f"<td><b>{e(v.claim)}</b><div class='stmt'>{e(v.statement)}</div></td>"
        f"<td>{'required' if v.required else 'optional'}</td>"
        f"<td><span class='v' style='background:{COLOURS[v.verdict]}'>{v.verdict}</span></td>"
        f"<td>{e(v.detail)}</td>"
        f"<td><dl class='ev'>{ev}</dl></td>"
        f"<td class='num'>{v.seconds:.2f}</td>"
        "</tr>")


def html_page(report: ReadyReport) -> str:
    e = html.escape
    colour = COLOURS[PASS] if report.exit_code == 0 else COLOURS[FAIL]
    meta = [("when (UTC)", report.started), ("project", report.home),
            ("symbols", ", ".join(report.symbols)), ("run id", report.run_id),
            ("live source", "not asked (--offline)" if report.offline else "asked"),
            *report.environment.items()]
    rows = "\n".join(_row(v) for v in report.verdicts)
    meta_rows = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in meta)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>research-lib ready</title>"
        f"<style>{_CSS}</style></head><body>\n"
        "<h1>research-lib ready: readiness evidence</h1>\n"
        f"<div class='head' style='color:{colour}'>{e(report.headline())}</div>\n"
        f"<table class='meta'>{meta_rows}</table>\n"
        "<p class='meta'>Each claim was checked now, on this install, in scratch folders. "
        "PASS: shown; FAIL: shown broken (the detail names what broke); WARN: could not be "
        "shown and is not known broken (never a PASS); SKIP: its subject is not configured "
        "here. <code>research-lib ready</code> exits 0 only when every required claim "
        "passes and no claim fails.</p>\n"
        "<table class='claims'><colgroup><col style='width:19%'><col style='width:7%'>"
        "<col style='width:6%'><col style='width:30%'><col style='width:32%'>"
        "<col style='width:6%'></colgroup>"
        "<thead><tr><th>claim</th><th>required</th><th>verdict</th><th>detail</th>"
        "<th>evidence</th><th>seconds</th></tr></thead><tbody>\n"
        f"{rows}\n</tbody></table>\n</body></html>\n")


def write_html(report: ReadyReport, path: str | Path) -> Path:
    """The HTML report at ``path`` (folders made), written beside it and renamed over it."""
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--html {str(path)!r} must end in .html")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html_page(report), encoding="utf-8")
        os.replace(tmp, p)
    except OSError as exc:
        raise ConfigError(f"--html {str(path)!r}: cannot write it ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return p
