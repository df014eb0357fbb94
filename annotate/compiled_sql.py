"""SQL of ORM querysets compiled once per process, then run again with new values.

Building and compiling a queryset costs more CPU than running a small indexed statement. The
vote path runs the same few statements with other ids and times on every vote, so their text
is kept per process: `compiled(key, build, **values)` calls `build(**stand_ins)` once, with a
stand-in for each value (a negative id, a date in 1901 no real row has), finds where each
stand-in lands among the statement's parameters, and from then on returns the kept text with
the real values put there. `key` names everything that changes the text; the values do not.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime, timedelta

from django.db import connection

Build = Callable[..., tuple[str, tuple]]
_kept: dict[Hashable, tuple[str, tuple[tuple[str | None, object], ...]]] = {}
STAND_IN_MISSING = "The stand-in for {name!r} is not a parameter of the statement {key!r}."
STAND_IN_INLINE = "The stand-in for {name!r} is written into the text of the statement {key!r}."
NOT_A_VALUE = "Only ids (int) and times (datetime) can be stood in for; {name!r} is {kind}."


def _stand_ins(values: Mapping[str, object]) -> dict[str, int | datetime]:
    stand_ins: dict[str, int | datetime] = {}
    for i, (name, value) in enumerate(values.items()):
        if isinstance(value, datetime):
            stand_ins[name] = datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=i + 1)
        elif isinstance(value, int) and not isinstance(value, bool):
            stand_ins[name] = -(7_000_000_000_000 + i)
        else:
            raise TypeError(NOT_A_VALUE.format(name=name, kind=type(value).__name__))
    return stand_ins


def _is_value(param: object) -> bool:
    return isinstance(param, datetime) or (isinstance(param, int) and not isinstance(param, bool))


def compiled(key: Hashable, build: Build, **values: int | datetime) -> tuple[str, tuple]:
    """The statement `build` makes, with `values` as its parameters (see the module).

    Only on PostgreSQL, whose driver takes times as they are: SQLite's backend turns them into
    text while compiling, so a stand-in could not be found; the embedded database builds each
    statement afresh."""
    if connection.vendor != "postgresql":
        return build(**values)
    kept = _kept.get(key)
    if kept is None:
        stand_ins = _stand_ins(values)
        sql, params = build(**stand_ins)
        names = {stand_in: name for name, stand_in in stand_ins.items()}
        slots = tuple((names.get(p) if _is_value(p) else None, p) for p in params)
        for name, stand_in in stand_ins.items():
            if not any(slot == name for slot, _ in slots):
                raise ValueError(STAND_IN_MISSING.format(name=name, key=key))
            if isinstance(stand_in, int) and str(stand_in) in sql:
                raise ValueError(STAND_IN_INLINE.format(name=name, key=key))
        kept = _kept[key] = (sql, slots)
    sql, slots = kept
    return sql, tuple(values[name] if name else p for name, p in slots)


def queryset_sql(queryset) -> tuple[str, tuple]:
    """The SQL text and parameters of a queryset."""
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)
