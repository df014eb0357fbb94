"""SQL of ORM querysets compiled once per process, then run again with new values.

Building and compiling a queryset costs more CPU than running a small indexed statement. The
vote path runs the same few statements with other ids and times on every vote, so their text
is kept per process: `compiled(key, build, **values)` calls `build(**stand_ins)` once, with a
stand-in for each value (a negative id, a date in 1901 no real row has, a text no real row
holds), finds where each stand-in lands among the statement's parameters, and from then on
returns the kept text with the real values put there. `key` names everything that changes the
text; the values do not.

On PostgreSQL the kept text has every other parameter (statuses, limits) written in as a
literal, and `prepared_cursor()` runs it as a statement the server prepares once per
connection: parsing and planning the claim of the next faces cost the server more than running
it. A prepared statement keeps one plan for all values, so the constants must be in its text:
the planner then knows their frequencies, and can use a partial index whose condition they
imply (the claim probes `assignment_once_per_coder`, unique where status <> 'released', with
status IN ('leased', 'submitted')); PostgreSQL's manual: "parameterized query clauses do not
work with a partial index".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TypeVar

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Field, Model

Build = Callable[..., tuple[str, tuple]]
_kept: dict[Hashable, tuple[str, tuple[str, ...]]] = {}
STAND_IN_MISSING = "The stand-in for {name!r} is not a parameter of the statement {key!r}."
STAND_IN_INLINE = "The stand-in for {name!r} is written into the text of the statement {key!r}."
NOT_A_VALUE = (
    "Only ids (int), times (datetime) and texts (str) can be stood in for; {name!r} is {kind}."
)


Value = int | datetime | str
M = TypeVar("M", bound=Model)


def _stand_ins(values: Mapping[str, object]) -> dict[str, Value]:
    stand_ins: dict[str, Value] = {}
    for i, (name, value) in enumerate(values.items()):
        if isinstance(value, datetime):
            stand_ins[name] = datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=i + 1)
        elif isinstance(value, int) and not isinstance(value, bool):
            # In the range of a 32-bit key too (auth_user's): Django turns a lookup out of a
            # field's range into a constant false, with no parameter to find.
            stand_ins[name] = -(1_000_000_000 + i)
        elif isinstance(value, str):
            stand_ins[name] = f"facet-stand-in-{i}-{name}"
        else:
            raise TypeError(NOT_A_VALUE.format(name=name, kind=type(value).__name__))
    return stand_ins


def _is_value(param: object) -> bool:
    return isinstance(param, datetime | str) or (
        isinstance(param, int) and not isinstance(param, bool)
    )


def compiled(key: Hashable, build: Build, **values: Value) -> tuple[str, tuple]:
    """The statement `build` makes, with `values` as its parameters (see the module).

    Only on PostgreSQL, whose driver takes times as they are: SQLite's backend turns them into
    text while compiling, so a stand-in could not be found; the embedded database builds each
    statement afresh. Run the statement with `prepared_cursor()`."""
    if connection.vendor != "postgresql":
        return build(**values)
    kept = _kept.get(key)
    if kept is None:
        stand_ins = _stand_ins(values)
        sql, params = build(**stand_ins)
        for name, stand_in in stand_ins.items():
            if not any(_is_value(p) and p == stand_in for p in params):
                raise ValueError(STAND_IN_MISSING.format(name=name, key=key))
            if not isinstance(stand_in, datetime) and str(stand_in) in sql:
                raise ValueError(STAND_IN_INLINE.format(name=name, key=key))
        kept = _kept[key] = _constants_written(sql, params, stand_ins)
    sql, names = kept
    return sql, tuple(values[name] for name in names)


def compiled_rows(key: Hashable, build: Build, **values: Value) -> list[tuple]:
    """The rows of the statement `compiled()` keeps, run prepared (`prepared_cursor`)."""
    sql, params = compiled(key, build, **values)
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _constants_written(
    sql: str, params: tuple, stand_ins: Mapping[str, Value]
) -> tuple[str, tuple[str, ...]]:
    """`sql` with every parameter but the stand-ins written in as a literal (quoted by the
    driver, as its client-side binding does), and the names of the values its remaining
    placeholders take, in order."""
    connection.ensure_connection()
    literals = psycopg.ClientCursor(connection.connection)
    text = literals.mogrify(sql, params)
    names = {literals.mogrify("%s", (value,)): name for name, value in stand_ins.items()}
    # A stand-in's literal is a whole number, a quoted 1901 time or a quoted text named after
    # its value: it cannot start inside another literal, and `(?![0-9])` keeps
    # -1000000001 from matching -10000000012.
    found = re.compile("|".join(f"{re.escape(literal)}(?![0-9])" for literal in names))
    parts, order, last = [], [], 0
    for match in found.finditer(text):
        parts += [text[last : match.start()].replace("%", "%%"), "%s"]
        order.append(names[match.group(0)])
        last = match.end()
    parts.append(text[last:].replace("%", "%%"))
    return "".join(parts), tuple(order)


class _Preparing(psycopg.Cursor):
    """psycopg's server-side binding cursor, every statement prepared on its first run."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Django's query-logging cursor, logging the statement with its values written in, as
    for any other: psycopg keeps no text of a prepared run for Django to read back."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params), params):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


@contextmanager
def prepared_cursor() -> Iterator:
    """A Django cursor (execute wrappers and query logging as usual) whose statements
    PostgreSQL prepares once per connection and plans from then on without parsing them
    again; for the statements `compiled()` keeps. Elsewhere Django's own cursor.

    psycopg drops its prepared statements at every ROLLBACK on the connection (a statement
    may depend on what was rolled back); the next run prepares again. The connection's
    `prepare_threshold` (config.env.database_from_url) keeps psycopg from preparing any
    other statement on its own."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = _Preparing(connection.connection)
    # What Django's connection.cursor() does with the driver's cursor (the stubs' type for
    # the argument is the wrapper it makes).
    wrapped = (
        _PreparedDebugWrapper(raw, connection)
        if connection.queries_logged
        else connection.make_cursor(raw)  # type: ignore[arg-type]
    )
    with wrapped as cursor:
        yield cursor


def quoted_columns(fields: Iterable[Field]) -> str:
    """The fields' columns as a comma-separated SQL list, for statements written out."""
    return ", ".join(connection.ops.quote_name(_column(f)) for f in fields)


def _column(field: Field) -> str:
    assert field.column is not None  # a concrete field always has its column
    return field.column


def from_db_row(model: type[M], names: Sequence[str], values: Sequence) -> M:
    """An instance of `model` from its fields' database values (`names`: attnames), each
    converted as the ORM's compiler converts a column it reads: the backend's converters (on
    SQLite, times come back as naive text), then the field's (JSON fields come back as text).
    Which fields need which converters is worked out once per model, names and backend."""
    converted = list(values)
    for i, column, converters in _converters(model, tuple(names), connection.vendor):
        value = converted[i]
        for converter in converters:
            value = converter(value, column, connection)
        converted[i] = value
    return model.from_db(connection.alias, names, converted)


@cache
def _converters(model: type[Model], names: tuple[str, ...], vendor: str) -> tuple[tuple, ...]:
    """(position, column, converters) of each of `names` that has converters (`vendor`: the
    backend they were asked of)."""
    found = []
    for i, name in enumerate(names):
        field = model._meta.get_field(name)
        assert isinstance(field, Field)  # a concrete field, not a reverse relation
        column = field.get_col(model._meta.db_table)
        converters = (
            *connection.ops.get_db_converters(column),
            *column.get_db_converters(connection),
        )
        if converters:
            found.append((i, column, converters))
    return tuple(found)


def queryset_sql(queryset) -> tuple[str, tuple]:
    """The SQL text and parameters of a queryset."""
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)
