"""Server-side SVG charts (pure Python, no Django): accuracy bars with interval whiskers,
the confusion matrix, and the reliability diagram. Every label is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH = 640
BAR_HEIGHT = 18
LABEL_WIDTH = 230
FLAG_COLOR = "#b42318"
BAR_COLOR = "#2f5bd3"
FEW_COLOR = "#a3acbf"
TICKS = (0, 0.25, 0.5, 0.75, 1)

# One row of a table the charts draw (keys as the docstrings say).
Row = dict[str, Any]


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def accuracy_bars_svg(
    rows: Sequence[Row], *, overall: float | None = None, title: str = "Accuracy by subgroup"
) -> str:
    """Horizontal bars (accuracy) with whiskers (ci_low–ci_high); flagged rows in red, rows
    with too few faces in grey, a dashed line at the overall accuracy.
    """
    plot = WIDTH - LABEL_WIDTH - 60
    height = 30 + BAR_HEIGHT * len(rows) + 24

    def x(value: float) -> float:
        return LABEL_WIDTH + plot * value

    parts = _svg_start(title, height)
    for i, row in enumerate(rows):
        y = 20 + i * BAR_HEIGHT
        accuracy = _num(row.get("accuracy"))
        label = f"{row.get('attribute', '')}: {row.get('group', '')}"
        color = FLAG_COLOR if row.get("flagged") else FEW_COLOR if row.get("too_few") else BAR_COLOR
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
            f"{escape(label[:40])}</text>"
        )
        if accuracy is None:
            continue
        parts.append(
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{plot * accuracy:.1f}" '
            f'height="{BAR_HEIGHT - 6}" fill="{color}" opacity="0.8"><title>'
            f"{escape(label)}: {accuracy:.3f} (n={row.get('n')})</title></rect>"
        )
        low, high = _num(row.get("ci_low")), _num(row.get("ci_high"))
        if low is not None and high is not None:
            mid = y + BAR_HEIGHT / 2
            parts.append(
                f'<path d="M{x(low):.1f} {mid}H{x(high):.1f}M{x(low):.1f} {mid - 4}V{mid + 4}'
                f'M{x(high):.1f} {mid - 4}V{mid + 4}" stroke="#1d2330" stroke-width="1.2"/>'
            )
        parts.append(f'<text x="{x(1) + 4}" y="{y + 13}" font-size="11">{accuracy:.0%}</text>')
    axis_y = 20 + BAR_HEIGHT * len(rows)
    for tick in TICKS:
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 16}" font-size="10" text-anchor="middle">'
            f"{tick:.0%}</text>"
        )
    overall = _num(overall)
    if overall is not None:
        parts.append(
            f'<line x1="{x(overall):.1f}" x2="{x(overall):.1f}" y1="14" y2="{axis_y}" '
            f'stroke="#067647" stroke-dasharray="4 3"><title>overall {overall:.3f}</title></line>'
        )
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(classes: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """A heat-mapped confusion matrix: rows are the human label, columns the prediction."""
    cell = 90
    left, top = 130, 50
    size_w = left + cell * len(classes) + 10
    size_h = top + cell * len(classes) + 10
    peak = max((v for row in matrix for v in row), default=0) or 1
    parts = _svg_start("Confusion matrix (rows: human label, columns: model)", size_h, size_w)
    parts += [
        f'<text x="{left}" y="14" font-size="11">columns: model predicted →</text>',
        f'<text x="14" y="{top + cell * len(classes) / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + cell * len(classes) / 2})">rows: human label →</text>',
    ]
    for j, name in enumerate(classes):
        parts.append(
            f'<text x="{left + cell * j + cell / 2}" y="{top - 8}" text-anchor="middle" '
            f'font-size="12">{escape(name)}</text>'
        )
    for i, name in enumerate(classes):
        parts.append(
            f'<text x="{left - 8}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end" '
            f'font-size="12">{escape(name)}</text>'
        )
        for j in range(len(classes)):
            value = int(matrix[i][j])
            shade = 0.12 + 0.78 * value / peak
            fill = "#067647" if i == j else "#b42318"
            parts.append(
                f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{fill}" opacity="{shade:.2f}"/>'
                f'<text x="{left + cell * j + cell / 2}" y="{top + cell * i + cell / 2 + 5}" '
                f'text-anchor="middle" font-size="16" font-weight="600">{value}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def reliability_svg(bins: Sequence[Row]) -> str:
    """Observed share female against mean predicted probability per bin; diagonal = ideal."""
    size, pad = 320, 40
    plot = size - 2 * pad

    def px(value: float) -> float:
        return pad + plot * value

    def py(value: float) -> float:
        return size - pad - plot * value

    parts = _svg_start("Reliability diagram", size, size)
    parts += [
        f'<rect x="{pad}" y="{pad}" width="{plot}" height="{plot}" fill="none" stroke="#c5cad6"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#5b6475" '
        'stroke-dasharray="4 3"/>',
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11">'
        "predicted P(female)</text>",
        f'<text x="12" y="{size / 2}" font-size="11" transform="rotate(-90 12 {size / 2})" '
        'text-anchor="middle">observed share female</text>',
    ]
    for tick in TICKS:
        parts.append(
            f'<path d="M{px(tick):.1f} {py(0)}v4M{px(0)} {py(tick):.1f}h-4" stroke="#5b6475"/>'
            f'<text x="{px(tick):.1f}" y="{py(0) + 14}" font-size="9" text-anchor="middle">'
            f"{tick:g}</text>"
            f'<text x="{px(0) - 6}" y="{py(tick) + 3:.1f}" font-size="9" text-anchor="end">'
            f"{tick:g}</text>"
        )
    points = []
    for row in bins:
        mean_p, observed = _num(row.get("mean_predicted")), _num(row.get("observed"))
        if mean_p is None or observed is None or not row.get("n"):
            continue
        points.append((px(mean_p), py(observed), row))
    if points:
        path = "M" + "L".join(f"{a:.1f} {b:.1f}" for a, b, _ in points)
        parts.append(f'<path d="{path}" fill="none" stroke="{BAR_COLOR}" stroke-width="1.5"/>')
    for a, b, row in points:
        radius = 2 + min(6, math.sqrt(row["n"]) / 3)
        parts.append(
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{radius:.1f}" fill="{BAR_COLOR}">'
            f"<title>n={row['n']}: predicted {row['mean_predicted']:.2f}, observed "
            f"{row['observed']:.2f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


A_COLOR = "#7a8194"


def paired_intervals_svg(
    rows: Sequence[Row], *, label_a: str, label_b: str, title: str = "Accuracy on the same faces"
) -> str:
    """Two versions per group, one line each: a dot at the accuracy and a whisker over its
    interval (`accuracy_a`, `ci_low_a`, `ci_high_a` and the same with `_b`); version a in grey,
    b in blue, a legend on top. Rows come from evaluation.paired_by_group.
    """
    step = 2 * BAR_HEIGHT
    plot = WIDTH - LABEL_WIDTH - 60
    top = 34
    height = top + step * len(rows) + 24

    def x(value: float) -> float:
        return LABEL_WIDTH + plot * value

    parts = _svg_start(title, height)
    for i, (name, color) in enumerate(((label_a, A_COLOR), (label_b, BAR_COLOR))):
        parts.append(
            f'<circle cx="{LABEL_WIDTH + 6 + 120 * i}" cy="12" r="4" fill="{color}"/>'
            f'<text x="{LABEL_WIDTH + 14 + 120 * i}" y="16" font-size="11">{escape(name)}</text>'
        )
    axis_y = top + step * len(rows)
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{axis_y}" '
            'stroke="#e3e6ed"/>'
            f'<text x="{x(tick):.1f}" y="{axis_y + 16}" font-size="10" text-anchor="middle">'
            f"{tick:.0%}</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * step
        label = f"{row.get('attribute', '')}: {row.get('group', '')}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + BAR_HEIGHT + 4}" text-anchor="end" '
            f'font-size="11">{escape(label[:40])}</text>'
        )
        for j, (side, color, name) in enumerate(
            (("a", A_COLOR, label_a), ("b", BAR_COLOR, label_b))
        ):
            accuracy = _num(row.get(f"accuracy_{side}"))
            if accuracy is None:
                continue
            mid = y + BAR_HEIGHT / 2 + j * BAR_HEIGHT
            low, high = _num(row.get(f"ci_low_{side}")), _num(row.get(f"ci_high_{side}"))
            if low is not None and high is not None:
                parts.append(
                    f'<path d="M{x(low):.1f} {mid}H{x(high):.1f}" stroke="{color}" '
                    'stroke-width="1.5"/>'
                )
            parts.append(
                f'<circle cx="{x(accuracy):.1f}" cy="{mid}" r="4" fill="{color}"><title>'
                f"{escape(label)}, {escape(name)}: {accuracy:.3f} (n={row.get('n')})"
                "</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _svg_start(title: str, height: float, width: float = WIDTH) -> list[str]:
    """The opening of a chart: an accessible <svg> of that size with its title."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
