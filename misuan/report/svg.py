"""Small inline-SVG charts for the HTML report: no plotting library, no scripts, every text escaped.

Each function returns one ``<svg>`` element as a string. Coordinates are rounded to 0.1 px to keep
the file small; long curves are thinned to a few hundred points (:func:`thin`), which is invisible at
report size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from html import escape

import numpy as np

__all__ = ["Bar", "Series", "hbar_chart", "histogram", "line_chart", "nice_ticks", "thin", "woe_sparkbars"]

FONT = "font-family=\"inherit\" font-size=\"12\""
AXIS = "#444"
GRID = "#e3e6ea"
LEGEND_ROW = 18
# not the parties' colours: a WOE bar says nothing about who holds the feature
WOE_POSITIVE = "#3b8a5a"
WOE_NEGATIVE = "#c0504d"


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    xs: np.ndarray
    ys: np.ndarray
    color: str
    dash: str = ""  # SVG stroke-dasharray, "" for solid
    width: float = 2.0


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str
    note: str = ""  # text after the value, e.g. "41 splits"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def thin(n: int, max_points: int = 400, keep: Sequence[int] = ()) -> np.ndarray:
    """Indices of at most about ``max_points`` evenly spaced points of ``n``, always with both ends and ``keep``."""
    if n <= max_points:
        return np.arange(n)
    idx = np.unique(np.r_[np.round(np.linspace(0, n - 1, max_points)).astype(np.int64), list(keep)])
    return idx.astype(np.int64)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] with about ``target`` intervals (steps of 1, 2 or 5 x 10^k)."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:g}"


@dataclasses.dataclass(frozen=True)
class _Frame:
    """The plotting area of a chart and its data ranges."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float | np.ndarray) -> float | np.ndarray:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def y(self, v: float | np.ndarray) -> float | np.ndarray:
        return self.height - self.bottom - (v - self.y0) / (self.y1 - self.y0) * (
            self.height - self.top - self.bottom
        )

    def axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str,
             x_fmt: str = "") -> list[str]:
        out = []
        for t in y_ticks:
            y = float(self.y(t))
            out.append(f'<line x1="{self.left}" y1="{_f(y)}" x2="{self.width - self.right}" y2="{_f(y)}" stroke="{GRID}"/>')
            out.append(f'<text x="{self.left - 6}" y="{_f(y + 4)}" text-anchor="end" {FONT} fill="{AXIS}">{_e(_fmt_tick(t))}</text>')
        for t in x_ticks:
            x = float(self.x(t))
            label = format(t, x_fmt) if x_fmt else _fmt_tick(t)
            out.append(f'<line x1="{_f(x)}" y1="{self.top}" x2="{_f(x)}" y2="{self.height - self.bottom}" stroke="{GRID}"/>')
            out.append(f'<text x="{_f(x)}" y="{self.height - self.bottom + 16}" text-anchor="middle" {FONT} fill="{AXIS}">{_e(label)}</text>')
        base = self.height - self.bottom
        out.append(f'<line x1="{self.left}" y1="{base}" x2="{self.width - self.right}" y2="{base}" stroke="{AXIS}"/>')
        out.append(f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{base}" stroke="{AXIS}"/>')
        mid_x = (self.left + self.width - self.right) / 2
        out.append(f'<text x="{_f(mid_x)}" y="{self.height - 6}" text-anchor="middle" {FONT} fill="{AXIS}">{_e(x_label)}</text>')
        mid_y = (self.top + self.height - self.bottom) / 2
        out.append(
            f'<text x="14" y="{_f(mid_y)}" text-anchor="middle" transform="rotate(-90 14 {_f(mid_y)})" '
            f'{FONT} fill="{AXIS}">{_e(y_label)}</text>'
        )
        return out


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float) -> list[str]:
    """Legend lines (name, colour, dash) stacked downwards from (x, y), below the plot."""
    out = []
    for i, (name, color, dash) in enumerate(items):
        yy = y + LEGEND_ROW * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{_f(x)}" y1="{_f(yy - 4)}" x2="{_f(x + 24)}" y2="{_f(yy - 4)}" stroke="{_e(color)}" '
            f'stroke-width="3" stroke-linecap="round"{dash_attr}/>'
        )
        out.append(f'<text class="legend" x="{_f(x + 32)}" y="{_f(yy)}" {FONT} fill="#222">{_e(name)}</text>')
    return out


def _svg(width: int, height: int, label: str, body: list[str], css_class: str = "chart") -> str:
    return (
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
    diagonal: bool = False,
    marks: Sequence[tuple[float, float, float, str]] = (),
    width: int = 520,
    height: int = 400,
) -> str:
    """Curves on shared axes. ``marks``: vertical segments (x, y_from, y_to, label), e.g. the KS gap."""
    fr = _Frame(width, height, 56, 18, 14, 44, *x_range, *y_range)
    body = fr.axes(nice_ticks(*x_range), nice_ticks(*y_range), x_label, y_label)
    if diagonal:
        body.append(
            f'<line x1="{_f(float(fr.x(x_range[0])))}" y1="{_f(float(fr.y(y_range[0])))}" '
            f'x2="{_f(float(fr.x(x_range[1])))}" y2="{_f(float(fr.y(y_range[1])))}" stroke="#999" stroke-dasharray="4 4"/>'
        )
    for s in series:
        idx = thin(len(s.xs))
        xs = np.asarray(fr.x(np.asarray(s.xs, dtype=float)[idx]), dtype=float)
        ys = np.asarray(fr.y(np.asarray(s.ys, dtype=float)[idx]), dtype=float)
        pts = " ".join(f"{_f(a)},{_f(b)}" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        body.append(
            f'<polyline class="series" fill="none" stroke="{_e(s.color)}" stroke-width="{s.width}"{dash} '
            f'stroke-linejoin="round" stroke-linecap="round" points="{pts}"><title>{_e(s.name)}</title></polyline>'
        )
    for x, y_a, y_b, label in marks:
        px = float(fr.x(x))
        pa, pb = float(fr.y(y_a)), float(fr.y(y_b))
        body.append(f'<line class="mark" x1="{_f(px)}" y1="{_f(pa)}" x2="{_f(px)}" y2="{_f(pb)}" stroke="#c0392b" stroke-width="2.5"/>')
        for py in (pa, pb):
            body.append(f'<circle cx="{_f(px)}" cy="{_f(py)}" r="3.5" fill="#c0392b"/>')
        anchor = "start" if px < width * 0.6 else "end"
        dx = 8 if anchor == "start" else -8
        body.append(
            f'<text x="{_f(px + dx)}" y="{_f((pa + pb) / 2 + 4)}" text-anchor="{anchor}" font-size="13" '
            # a white halo keeps the label readable where a curve runs behind it
            f'font-weight="600" fill="#c0392b" stroke="#fff" stroke-width="4" paint-order="stroke">{_e(label)}</text>'
        )
    body += _legend([(s.name, s.color, s.dash) for s in series], fr.left, height + 10)
    return _svg(width, height + 10 + LEGEND_ROW * len(series), title, body)


def histogram(
    edges: np.ndarray,
    groups: Sequence[tuple[str, np.ndarray, str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 520,
    height: int = 400,
) -> str:
    """Overlaid histograms: ``groups`` of (name, height per bin, colour) over the same ``edges``."""
    top = max(float(np.max(h)) for _, h, _ in groups) if groups else 1.0
    y_ticks = nice_ticks(0.0, top if top > 0 else 1.0)
    fr = _Frame(width, height, 56, 18, 14, 44, float(edges[0]), float(edges[-1]), 0.0, y_ticks[-1])
    body = fr.axes(nice_ticks(float(edges[0]), float(edges[-1])), y_ticks, x_label, y_label)
    for name, heights, color in groups:
        for lo, hi, h in zip(edges[:-1], edges[1:], heights, strict=True):
            if h <= 0:
                continue
            x0, x1 = float(fr.x(lo)), float(fr.x(hi))
            y = float(fr.y(h))
            body.append(
                f'<rect class="bar" x="{_f(x0 + 0.5)}" y="{_f(y)}" width="{_f(max(x1 - x0 - 1, 0.5))}" '
                f'height="{_f(height - fr.bottom - y)}" fill="{_e(color)}" fill-opacity="0.55" stroke="{_e(color)}">'
                f"<title>{_e(name)}: {lo:.2f}-{hi:.2f}: {h:.3f}</title></rect>"
            )
    body += _legend([(name, color, "") for name, _, color in groups], fr.left, height + 10)
    return _svg(width, height + 10 + LEGEND_ROW * len(groups), title, body)


def hbar_chart(bars: Sequence[Bar], *, title: str, value_label: str, width: int = 760, fmt: str = ",.1f") -> str:
    """Horizontal bars, one row per :class:`Bar`, longest scale = the largest value."""
    row, label_w, value_w = 24, 190, 170
    height = 28 + row * len(bars) + 22
    top = max((b.value for b in bars), default=1.0) or 1.0
    plot_w = width - label_w - value_w
    body = []
    for i, b in enumerate(bars):
        y = 14 + i * row
        w = max(plot_w * b.value / top, 1.0)
        label = b.label if len(b.label) <= 26 else b.label[:25] + "…"
        body.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" {FONT} fill="#222">{_e(label)}<title>{_e(b.label)}</title></text>')
        body.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{_f(w)}" height="{row - 8}" fill="{_e(b.color)}" rx="2">'
            f"<title>{_e(b.label)}: {_e(format(b.value, fmt))}</title></rect>"
        )
        note = f" · {b.note}" if b.note else ""
        body.append(f'<text x="{_f(label_w + w + 6)}" y="{y + 15}" {FONT} fill="#444">{_e(format(b.value, fmt) + note)}</text>')
    body.append(f'<text x="{label_w}" y="{height - 6}" {FONT} fill="{AXIS}">{_e(value_label)}</text>')
    return _svg(width, height, title, body)


def woe_sparkbars(woes: Sequence[float], labels: Sequence[str], *, width: int = 150, height: int = 34) -> str:
    """WOE per bin as small bars around a zero line (above: positive WOE, below: negative)."""
    n = max(len(woes), 1)
    top = max((abs(w) for w in woes), default=1.0) or 1.0
    mid = height / 2
    slot = width / n
    body = [f'<line x1="0" y1="{_f(mid)}" x2="{width}" y2="{_f(mid)}" stroke="#888" stroke-width="0.8"/>']
    for i, (w, label) in enumerate(zip(woes, labels, strict=True)):
        h = max(abs(w) / top * (mid - 2), 0.8)
        y = mid - h if w >= 0 else mid
        color = WOE_POSITIVE if w >= 0 else WOE_NEGATIVE
        body.append(
            f'<rect x="{_f(i * slot + 1)}" y="{_f(y)}" width="{_f(max(slot - 2, 1))}" height="{_f(h)}" fill="{color}">'
            f"<title>{_e(label)}: WOE {w:+.3f}</title></rect>"
        )
    return _svg(width, height, "WOE per bin: " + ", ".join(f"{lb} {w:+.2f}" for lb, w in zip(labels, woes, strict=True)),
                body, css_class="spark")
