"""Turning service refusals into the one-line errors commands print."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def validation_line(exc: ValidationError) -> str:
    """A ValidationError as one line: `field: message; field: message`."""
    if hasattr(exc, "error_dict"):
        return "; ".join(
            " ".join(messages) if field == "__all__" else f"{field}: {' '.join(messages)}"
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)
