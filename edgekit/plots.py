"""Charts as standalone SVG strings, with no plotting library: bars, lines, histograms and rooflines for HTML reports.

Every chart is one `<svg xmlns=... viewBox=...>` element with a `<title>`; every bar and point carries a
`<title>` child with its exact value, which browsers show as a tooltip. Output is deterministic: the same
numbers give the same bytes. Styling is done with presentation attributes (not CSS) so that a chart looks
the same inline in a page, opened on its own, or converted by a tool that ignores stylesheets.
"""

from __future__ import annotations

import bisect
import html
import itertools
import math
from collections.abc import Sequence

FONT = 'font-family="sans-serif" font-size="12"'
TEXT_COLOUR = "#333333"
AXIS_COLOUR = "#8a8a8a"
GRID_COLOUR = "#e4e4e4"
BAR_COLOUR = "#5b84b1"
HIGHLIGHT_COLOUR = "#d9822b"
GUIDE_COLOUR = "#9a9a9a"
SERIES_COLOURS = ("#5b84b1", "#d9822b", "#5a9e6f", "#8e6bb3", "#b5515b")
CHAR_WIDTH = 6.8  # average advance of a 12 px sans-serif character, for laying out labels without a font
MAX_LABEL_CHARS = 60  # longer bar labels are cut in the middle
MIN_PLOT_WIDTH = 360  # a bar chart grows wider rather than squeeze its bars behind long labels
NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten.

    The first tick is at or below `lo` and the last at or above `hi`. An empty range is widened around
    its value. Raises ValueError for non-finite bounds or count < 2.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tick range must be finite, got [{lo}, {hi}]")
    if count < 2:
        raise ValueError(f"need at least 2 ticks, got {count}")
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / (count - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in NICE_STEPS if s * magnitude >= raw * (1 - 1e-9))
    decimals = _decimals(step)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [_clean(round(i * step, decimals)) for i in range(first, last + 1)]


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    highlight: set[int] | None = None,
    guides: dict[str, float] | None = None,
    width: int = 720,
    height: int | None = None,
) -> str:
    """Horizontal bars, one per label, top to bottom in the order given; labels on the left.

    x_label names the value axis (horizontal), y_label the categories. highlight: indices of bars drawn
    in the warning colour. guides: name -> value, dashed reference lines across the bars. height: None
    sizes the chart to the number of bars. Bars grow from zero, so negative values point left. The
    chart grows wider than `width` when long labels need the room; labels beyond 60 characters are
    cut in the middle, the full name staying in the tooltip.
    Raises ValueError when labels and values differ in length or a value is not finite.
    """
    _check_values(values)
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    highlight, guides = highlight or set(), guides or {}
    row = 22.0
    top = 34 + (16 if guides else 0)
    bottom = 30 + (18 if x_label else 0)
    height = height or int(top + max(len(values), 1) * row + bottom)
    row = (height - top - bottom) / max(len(values), 1)
    label_room = min(max((len(s) for s in labels), default=0), MAX_LABEL_CHARS) * CHAR_WIDTH + 12
    left = label_room + (22 if y_label else 0) + 4
    width = max(width, int(left + MIN_PLOT_WIDTH + 56))
    right = width - 56
    parts = [_open(width, height, title, "chart bar-chart")]
    if not values:
        return _finish(parts + [_no_data(width, height)])
    ticks = nice_ticks(min(0.0, *values, *guides.values()), max(0.0, *values, *guides.values()))
    scale = _Scale(ticks[0], ticks[-1], left, right)
    plot_top, plot_bottom = top, height - bottom
    for tick, text in zip(ticks, _tick_labels(ticks)):
        x = scale(tick)
        parts.append(_line(x, plot_top, x, plot_bottom, GRID_COLOUR, "grid"))
        parts.append(_text(x, plot_bottom + 16, text, "tick", anchor="middle"))
    for index, (label, value) in enumerate(zip(labels, values)):
        y = plot_top + index * row
        x0, x1 = sorted((scale(0.0), scale(value)))
        colour = HIGHLIGHT_COLOUR if index in highlight else BAR_COLOUR
        marker = ' data-highlight="true"' if index in highlight else ""
        tip = f"{label}: {_exact(value)}"
        parts.append(
            f'<rect class="bar" x="{_f(x0)}" y="{_f(y + row * 0.15)}" width="{_f(max(x1 - x0, 0.5))}" height="{_f(row * 0.7)}" '
            f'fill="{colour}"{marker}><title>{_esc(tip)}</title></rect>'
        )
        middle = y + row / 2 + 4
        parts.append(_text(left - 8, middle, _fit(label, label_room - 12), "label", anchor="end", tip=label))
        # The number sits right of the bar's zero-side end for negative bars, never over the labels.
        parts.append(_text(scale(max(value, 0.0)) + 4, middle, _short(value), "value", fill="#555555"))
    parts.append(_line(scale(0.0), plot_top, scale(0.0), plot_bottom, AXIS_COLOUR, "axis"))
    for name, value in sorted(guides.items(), key=lambda item: item[1]):
        x = scale(value)
        parts.append(_line(x, plot_top - 4, x, plot_bottom, GUIDE_COLOUR, "guide", dash=True))
        parts.append(_text(x, plot_top - 8, name, "guide-label", anchor="middle", fill="#666666", size=11))
    if x_label:
        parts.append(_text((left + right) / 2, height - 8, x_label, "axis-label", anchor="middle"))
    if y_label:
        parts.append(_vertical_text(14, (plot_top + plot_bottom) / 2, y_label))
    return _finish(parts)


def line_chart(
    xs_labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    y_label: str = "",
    x_label: str = "",
    guides: dict[str, float] | None = None,
    width: int = 720,
    height: int = 360,
) -> str:
    """One polyline with points per series over evenly spaced categories `xs_labels`.

    The y axis spans the data (not necessarily zero) plus any `guides` (name -> value, dashed lines).
    Category labels are rotated when they do not fit side by side and thinned when even rotated they
    would overlap. A legend appears for more than one series. Raises ValueError when a series' length
    differs from the number of categories or a value is not finite.
    """
    guides = guides or {}
    for name, values in series.items():
        _check_values(values)
        if len(values) != len(xs_labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(xs_labels)} categories")
    left, right, top = 64, width - (48 if guides else 20), 40 + (18 if len(series) > 1 else 0)
    slot = (right - left) / max(len(xs_labels), 1)
    longest = min(max((len(s) for s in xs_labels), default=0), 24) * CHAR_WIDTH
    rotated = longest > slot - 6
    every = max(1, math.ceil(16 / slot)) if rotated else 1
    bottom = 26 + (longest * 0.71 if rotated else 0) + (20 if x_label else 0)
    plot_bottom = height - bottom
    parts = [_open(width, height, title, "chart line-chart")]
    values = [v for vs in series.values() for v in vs] + list(guides.values())
    if not xs_labels or not values:
        return _finish(parts + [_no_data(width, height)])
    ticks = nice_ticks(min(values), max(values))
    scale = _Scale(ticks[0], ticks[-1], plot_bottom, top)
    for tick, text in zip(ticks, _tick_labels(ticks)):
        y = scale(tick)
        parts.append(_line(left, y, right, y, GRID_COLOUR, "grid"))
        parts.append(_text(left - 6, y + 4, text, "tick", anchor="end"))
    parts.append(_line(left, plot_bottom, right, plot_bottom, AXIS_COLOUR, "axis"))
    xs = [left + slot * (i + 0.5) for i in range(len(xs_labels))]
    for index, (x, label) in enumerate(zip(xs, xs_labels)):
        if index % every:
            continue
        shown = _fit(label, 24 * CHAR_WIDTH)
        if rotated:
            parts.append(
                f'<text class="tick" x="{_f(x)}" y="{_f(plot_bottom + 12)}" text-anchor="end" fill="{TEXT_COLOUR}" '
                f'transform="rotate(-45 {_f(x)} {_f(plot_bottom + 12)})">{_esc(shown)}<title>{_esc(label)}</title></text>'
            )
        else:
            parts.append(_text(x, plot_bottom + 16, shown, "tick", anchor="middle", tip=label))
    for name, value in sorted(guides.items(), key=lambda item: item[1]):
        y = scale(value)
        parts.append(_line(left, y, right, y, GUIDE_COLOUR, "guide", dash=True))
        parts.append(_text(right + 4, y + 4, name, "guide-label", fill="#666666", size=11))
    for number, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[number % len(SERIES_COLOURS)]
        points = " ".join(f"{_f(x)},{_f(scale(v))}" for x, v in zip(xs, values))
        parts.append(f'<polyline class="line" points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, label, value in zip(xs, xs_labels, values):
            tip = f"{label} ({name}): {_exact(value)}" if len(series) > 1 else f"{label}: {_exact(value)}"
            parts.append(f'<circle class="point" cx="{_f(x)}" cy="{_f(scale(value))}" r="3.5" fill="{colour}"><title>{_esc(tip)}</title></circle>')
        if len(series) > 1:
            lx = left + number * 160
            parts.append(_line(lx, top - 22, lx + 18, top - 22, colour, "legend", thick=True))
            parts.append(_text(lx + 24, top - 18, name, "legend"))
    if y_label:
        parts.append(_vertical_text(16, (top + plot_bottom) / 2, y_label))
    if x_label:
        parts.append(_text((left + right) / 2, height - 8, x_label, "axis-label", anchor="middle"))
    return _finish(parts)


def histogram_chart(values: Sequence[float], bins: int | Sequence[float], title: str, x_label: str, *, width: int = 720, height: int = 320) -> str:
    """Counts of `values` in `bins` (a number of equal bins over the data, or increasing bin edges).

    Bins are half open [a, b) except the last, which includes its upper edge; with explicit edges,
    values outside them are not counted. Raises ValueError for non-finite values or bad bins.
    """
    _check_values(values)
    parts = [_open(width, height, title, "chart histogram")]
    if not values:
        return _finish(parts + [_no_data(width, height)])
    edges = _edges(values, bins)
    counts = [0] * (len(edges) - 1)
    for value in values:
        if edges[0] <= value <= edges[-1]:
            counts[min(bisect.bisect_right(edges, value) - 1, len(counts) - 1)] += 1
    left, right, top, bottom = 56, width - 28, 34, height - (48 if x_label else 30)
    x_ticks = nice_ticks(edges[0], edges[-1])
    y_ticks = [float(i) for i in range(max(counts) + 1)] if max(counts) <= 5 else nice_ticks(0, max(counts))
    x_scale, y_scale = _Scale(x_ticks[0], x_ticks[-1], left, right), _Scale(0, max(y_ticks[-1], 1.0), bottom, top)
    for tick, text in zip(y_ticks, _tick_labels(y_ticks)):
        parts.append(_line(left, y_scale(tick), right, y_scale(tick), GRID_COLOUR, "grid"))
        parts.append(_text(left - 6, y_scale(tick) + 4, text, "tick", anchor="end"))
    for tick, text in zip(x_ticks, _tick_labels(x_ticks)):
        parts.append(_text(x_scale(tick), bottom + 16, text, "tick", anchor="middle"))
    for index, count in enumerate(counts):
        lo, hi = edges[index], edges[index + 1]
        x0, x1, y = x_scale(lo), x_scale(hi), y_scale(count)
        closing = "]" if index == len(counts) - 1 else ")"
        tip = f"[{_exact(lo)}, {_exact(hi)}{closing}: {count}"
        parts.append(
            f'<rect class="bar" x="{_f(x0 + 0.5)}" y="{_f(y)}" width="{_f(max(x1 - x0 - 1, 0.5))}" height="{_f(bottom - y)}" '
            f'fill="{BAR_COLOUR}"><title>{_esc(tip)}</title></rect>'
        )
    parts.append(_line(left, bottom, right, bottom, AXIS_COLOUR, "axis"))
    parts.append(_vertical_text(14, (top + bottom) / 2, "count"))
    if x_label:
        parts.append(_text((left + right) / 2, height - 8, x_label, "axis-label", anchor="middle"))
    return _finish(parts)


def roofline_chart(
    labels: Sequence[str],
    intensity: Sequence[float],
    achieved: Sequence[float],
    *,
    title: str,
    peaks: dict[str, float],
    bandwidth: float,
    groups: Sequence[str] | None = None,
    marks: Sequence[str] | None = None,
    width: int = 720,
    height: int = 420,
) -> str:
    """A roofline: one point per kernel at (arithmetic intensity, achieved GFLOP/s) on log-log axes, under the roofs.

    peaks: name -> peak compute (GFLOP/s or GOP/s), one horizontal roof each, starting at its ridge point
    (peak / bandwidth); bandwidth: GB/s, the sloped memory roof. groups: a name per point (e.g. its
    precision), one colour each with a legend; a roof named like a group takes its colour. marks: short
    text drawn beside each point (e.g. its row number in a table); `labels` go in the tooltips.
    Raises ValueError for mismatched lengths, or values, peaks or bandwidth that are not positive and finite.
    """
    count = len(labels)
    if len(intensity) != count or len(achieved) != count or (groups is not None and len(groups) != count) or (marks is not None and len(marks) != count):
        raise ValueError(f"{count} labels for {len(intensity)} intensities and {len(achieved)} achieved values")
    numbers = [*intensity, *achieved, *peaks.values(), bandwidth]
    _check_values(numbers)
    if any(v <= 0 for v in numbers):
        raise ValueError("a log-log roofline needs positive intensities, achieved values, peaks and bandwidth")
    names = list(dict.fromkeys(groups)) if groups is not None else []
    colours = {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(names)}
    left, right, top, bottom = 64, width - 24, 40 + (18 if len(names) > 1 else 0), height - 48
    parts = [_open(width, height, title, "chart roofline")]
    if not peaks:
        return _finish(parts + [_no_data(width, height)])
    ridges = [peak / bandwidth for peak in peaks.values()]
    x_lo, x_hi = _decades([*intensity, *ridges])
    y_lo, y_hi = _decades([*achieved, *peaks.values()])
    x_scale = _LogScale(x_lo, x_hi, left, right)
    y_scale = _LogScale(y_lo, y_hi, bottom, top)
    for power in range(x_lo, x_hi + 1):
        x = x_scale(10.0**power)
        parts.append(_line(x, top, x, bottom, GRID_COLOUR, "grid"))
        parts.append(_text(x, bottom + 16, _decade_label(power), "tick", anchor="middle"))
    for power in range(y_lo, y_hi + 1):
        y = y_scale(10.0**power)
        parts.append(_line(left, y, right, y, GRID_COLOUR, "grid"))
        parts.append(_text(left - 6, y + 4, _decade_label(power), "tick", anchor="end"))
    parts.append(_line(left, bottom, right, bottom, AXIS_COLOUR, "axis"))
    parts.append(_line(left, top, left, bottom, AXIS_COLOUR, "axis"))
    # The memory roof rises from the plot's left (or bottom) edge to the highest ridge point.
    start = max(10.0**x_lo, 10.0**y_lo / bandwidth)
    ridge = max(ridges)
    x0, y0, x1, y1 = x_scale(start), y_scale(start * bandwidth), x_scale(ridge), y_scale(ridge * bandwidth)
    parts.append(_line(x0, y0, x1, y1, AXIS_COLOUR, "roof memory-roof", thick=True))
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    parts.append(
        f'<text class="roof-label" x="{_f(x0 + 8)}" y="{_f(y0 - 6)}" fill="#666666" font-size="11" '
        f'transform="rotate({_f(angle)} {_f(x0 + 8)} {_f(y0 - 6)})">{_esc(f"{bandwidth:g} GB/s")}</text>'
    )
    for name, peak in sorted(peaks.items(), key=lambda item: -item[1]):
        y = y_scale(peak)
        colour = colours.get(name, AXIS_COLOUR)
        parts.append(_line(x_scale(peak / bandwidth), y, right, y, colour, "roof compute-roof", thick=True))
        parts.append(_text(right - 4, y - 5, f"{name} {peak:g}", "roof-label", anchor="end", fill="#666666", size=11))
    for index, (label, x_value, y_value) in enumerate(zip(labels, intensity, achieved)):
        group = groups[index] if groups is not None else ""
        colour = colours.get(group, BAR_COLOUR)
        x, y = x_scale(x_value), y_scale(y_value)
        tip = f"{label}: {x_value:.3g} FLOP/byte, {y_value:.3g} GFLOP/s" + (f" ({group})" if group else "")
        parts.append(f'<circle class="point" cx="{_f(x)}" cy="{_f(y)}" r="4" fill="{colour}" fill-opacity="0.85"><title>{_esc(tip)}</title></circle>')
        if marks is not None and marks[index]:
            parts.append(_text(x + 6, y - 5, marks[index], "mark", size=10, fill="#555555"))
    if len(names) > 1:
        for number, name in enumerate(names):
            lx = left + number * 120
            parts.append(f'<circle class="legend" cx="{_f(lx + 6)}" cy="{_f(top - 22)}" r="4" fill="{colours[name]}"/>')
            parts.append(_text(lx + 16, top - 18, name, "legend"))
    parts.append(_vertical_text(16, (top + bottom) / 2, "achieved GFLOP/s"))
    parts.append(_text((left + right) / 2, height - 8, "arithmetic intensity, FLOP per byte moved", "axis-label", anchor="middle"))
    return _finish(parts)


class _LogScale:
    """Map from the decades [10^lo, 10^hi] to pixels [start, end], logarithmically."""

    def __init__(self, lo: int, hi: int, start: float, end: float):
        self.lo, self.span, self.start, self.extent = lo, max(hi - lo, 1), start, end - start

    def __call__(self, value: float) -> float:
        return self.start + (math.log10(value) - self.lo) / self.span * self.extent


def _decades(values: Sequence[float]) -> tuple[int, int]:
    """The powers of ten just below the smallest and just above the largest value (at least one decade apart)."""
    lo, hi = math.floor(math.log10(min(values)) + 1e-9), math.ceil(math.log10(max(values)) - 1e-9)
    return lo, max(hi, lo + 1)


def _decade_label(power: int) -> str:
    if -4 <= power < 0:
        return f"{10.0**power:.{-power}f}"
    return f"{10**power}" if 0 <= power <= 5 else f"1e{power}"


class _Scale:
    """Linear map from the data interval [lo, hi] to pixels [start, end] (end < start for a y axis)."""

    def __init__(self, lo: float, hi: float, start: float, end: float):
        self.lo, self.span, self.start, self.extent = lo, (hi - lo) or 1.0, start, end - start

    def __call__(self, value: float) -> float:
        return self.start + (value - self.lo) / self.span * self.extent


def _edges(values: Sequence[float], bins: int | Sequence[float]) -> list[float]:
    if isinstance(bins, int):
        if bins < 1:
            raise ValueError(f"need at least one bin, got {bins}")
        lo, hi = min(values), max(values)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return [lo + (hi - lo) * i / bins for i in range(bins)] + [hi]
    edges = [float(e) for e in bins]
    _check_values(edges)
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError("bin edges must be at least two increasing numbers")
    return edges


def _check_values(values: Sequence[float]) -> None:
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"cannot plot non-finite values: {bad[:3]}")


def _open(width: int, height: int, title: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'{FONT} role="img"><title>{_esc(title)}</title>'
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text class="chart-title" x="12" y="20" font-size="14" font-weight="bold" fill="{TEXT_COLOUR}">{_esc(title)}</text>'
    )


def _finish(parts: list[str]) -> str:
    return "\n".join(parts) + "\n</svg>\n"


def _no_data(width: int, height: int) -> str:
    return _text(width / 2, height / 2, "no data", "no-data", anchor="middle", fill="#888888")


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, css_class: str, dash: bool = False, thick: bool = False) -> str:
    style = ' stroke-dasharray="5 4"' if dash else ""
    return f'<line class="{css_class}" x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{colour}" stroke-width="{2 if thick else 1}"{style}/>'


def _text(x: float, y: float, text: str, css_class: str, anchor: str = "start", fill: str = TEXT_COLOUR, size: int | None = None, tip: str | None = None) -> str:
    font = f' font-size="{size}"' if size else ""
    title = f"<title>{_esc(tip)}</title>" if tip is not None and tip != text else ""
    return f'<text class="{css_class}" x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" fill="{fill}"{font}>{_esc(text)}{title}</text>'


def _vertical_text(x: float, y: float, text: str) -> str:
    return f'<text class="axis-label" x="{_f(x)}" y="{_f(y)}" text-anchor="middle" fill="{TEXT_COLOUR}" transform="rotate(-90 {_f(x)} {_f(y)})">{_esc(text)}</text>'


def _fit(label: str, room: float) -> str:
    """`label` shortened to about `room` pixels; the full text goes in the tooltip.

    The ellipsis goes in the middle: node names like /encoder/layers.11/attn/MatMul differ at both ends.
    """
    chars = max(int(room / CHAR_WIDTH), 5)
    if len(label) <= chars:
        return label
    tail = (chars - 1) // 2
    return label[: chars - 1 - tail] + "\u2026" + label[len(label) - tail :]


def _tick_labels(ticks: list[float]) -> list[str]:
    decimals = max(_decimals(t) for t in ticks)
    return [f"{t:.{decimals}f}" for t in ticks]


def _decimals(value: float) -> int:
    """Digits after the point needed to write `value` (a tick) exactly."""
    for decimals in range(12):
        if abs(round(value, decimals) - value) <= 1e-9 * max(abs(value), 1e-12):
            return decimals
    return 12


def _clean(value: float) -> float:
    return 0.0 if value == 0 else value  # no "-0" tick


def _exact(value: float) -> str:
    """Shortest text that reads back as the same float (Python's repr); integers without '.0'."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _short(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _f(value: float) -> str:
    """A pixel coordinate with at most two decimals, so output is compact and byte-stable."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
