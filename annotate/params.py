"""Reading ids, numbers, choices and text from a request's parameters; malformed ones are refused.

Every view that reads a query string or a form field by hand goes through these functions, so a
typo in a link or a hostile request is answered 400 with a message saying what is wrong. It
never reaches the database as a number no column holds (SQLite raises OverflowError on those)
or as a NUL character (PostgreSQL refuses those in text), and it is never silently ignored.

Views with an error slot on their page catch `BadParameter` and render the page with status
400; the others are wrapped in `bad_parameters_refused`, which answers 400 with the message as
plain text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping

from django.http import HttpResponse

# The largest value of a bigint column: every id, and the seeds stored with a round.
ID_MAX = 2**63 - 1
NOT_WHOLE_NUMBER = (
    "{name} must be a whole number, at least {minimum} and at most {maximum}; got {value!r}."
)
NOT_A_CHOICE = "{name} must be one of: {choices}; got {value!r}."
NUL_CHARACTER = "{name} must not contain a NUL character."
# Digits only, ASCII only: str.isdigit() also accepts '²', which int() then refuses.
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_ECHO = 40  # characters of a bad value repeated in the message


class BadParameter(ValueError):
    """A request parameter that cannot be used; the message names it and says what works."""


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO else value[:_ECHO] + "…"


def param_text(params: Mapping[str, str], name: str, *, default: str = "") -> str:
    """The parameter with surrounding spaces removed; `default` when absent or blank."""
    value = params.get(name)
    if value is None:
        return default
    if "\x00" in value:
        raise BadParameter(NUL_CHARACTER.format(name=name))
    return value.strip() or default


def param_int(
    params: Mapping[str, str],
    name: str,
    *,
    minimum: int = 1,
    maximum: int = ID_MAX,
    default: int | None = None,
) -> int | None:
    """The parameter as a whole number in [minimum, maximum]; `default` when absent or blank.

    The default range is that of an id (1 up to a bigint's largest value).
    """
    value = param_text(params, name)
    if not value:
        return default
    number = int(value) if _WHOLE.fullmatch(value) and len(value) <= 40 else None
    if number is None or not minimum <= number <= maximum:
        raise BadParameter(
            NOT_WHOLE_NUMBER.format(name=name, minimum=minimum, maximum=maximum, value=_echo(value))
        )
    return number


def param_choice(
    params: Mapping[str, str], name: str, choices: Iterable[str], *, default: str
) -> str:
    """The parameter if it is one of `choices`; `default` when absent or blank."""
    choices = tuple(choices)
    value = param_text(params, name, default=default)
    if value not in choices:
        raise BadParameter(
            NOT_A_CHOICE.format(name=name, choices=", ".join(choices), value=_echo(value))
        )
    return value


def bad_request(message: str) -> HttpResponse:
    """400 with the message as plain text (for pages without a place to show it)."""
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def bad_parameters_refused(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a BadParameter raised while the view reads its parameters with 400 and its
    message."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadParameter as exc:
            return bad_request(str(exc))

    return wrapped
