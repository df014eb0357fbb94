"""Number formats for the validation and estimates pages."""

from __future__ import annotations

import math

from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 1) -> str:
    """0.8731 → '87.3 %'; missing or NaN → '—'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    return f"{100 * number:.{int(digits)}f} %"


@register.filter
def signed_pct(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    return f"{100 * number:+.1f} pts"


@register.filter
def duration(seconds) -> str:
    """75 → '1 min 15 s', 4000 → '1 h 06 min'; missing → ''. static/js/models.js mirrors it."""
    try:
        total = int(seconds)
    except (TypeError, ValueError):
        return ""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
