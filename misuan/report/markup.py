"""HTML building blocks of the report: escaping, number formats, tables, sections and party badges.

Every piece of text from the summary goes through :func:`esc` (feature and party names come from
user data); :func:`html_table` and :func:`section` escape their headings, their cells and bodies are
HTML already built from escaped text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from misuan.report.schema import Summary

__all__ = [
    "PARTY_COLORS",
    "Parties",
    "byte_size",
    "duration",
    "esc",
    "explain",
    "html_table",
    "parse_time",
    "percent",
    "section",
    "shape_text",
    "signed",
    "thousands",
]

PARTY_COLORS = ("#1f5fa8", "#d9822b", "#2a9d8f", "#8e44ad", "#7f8c8d")


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def thousands(n: int) -> str:
    return f"{n:,}"


def percent(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


def byte_size(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - loop always returns


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def parse_time(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def shape_text(shape: Sequence[int]) -> str:
    return "one value" if not shape else " × ".join(thousands(s) for s in shape)


def signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def html_table(head: Sequence[str], rows: Iterable[Sequence[str]], css: str = "", numeric: Sequence[int] = ()) -> str:
    """A table; ``head`` is escaped here, cells must already be HTML; ``numeric`` columns align right."""
    cls = f' class="{css}"' if css else ""
    th = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table{cls}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def explain(officer: str, auditor: str) -> str:
    """Two short plain-language notes; the arguments are trusted prose written in this module."""
    return (
        '<div class="explain"><div><h4>For the risk officer</h4><p>'
        + officer
        + '</p></div><div><h4>For the auditor</h4><p>'
        + auditor
        + "</p></div></div>"
    )


class Parties:
    """Colours and roles of the job's parties, for badges and bars."""

    def __init__(self, summary: Summary) -> None:
        self.parties = summary.job.parties
        self.color = {p.name: PARTY_COLORS[i % len(PARTY_COLORS)] for i, p in enumerate(self.parties)}
        self.label_party = next(p.name for p in self.parties if p.role == "label_party")

    def badge(self, name: str) -> str:
        return f'<span class="badge" style="background:{self.color.get(name, "#777")}">{esc(name)}</span>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'
