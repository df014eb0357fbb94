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
