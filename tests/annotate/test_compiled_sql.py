"""Statements compiled once per process run again with the new values, never the old ones;
on PostgreSQL with their constants written in, prepared once per connection by the server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from annotate.compiled_sql import (
    STAND_IN_INLINE,
    STAND_IN_MISSING,
    compiled,
    compiled_rows,
    queryset_sql,
)
from annotate.models import Face, FaceStatus, Study
from tests.factories import bare_faces, make_study

pytestmark = pytest.mark.django_db


def _faces_sql(study_id: int, since: datetime):
    return queryset_sql(Face.objects.filter(study_id=study_id, created_at__gte=since).values("pk"))


def test_each_call_gets_its_own_values_in_the_kept_text():
    from django.db import connection

    one, two = make_study(), make_study()
    a = bare_faces(one, 2)
    b = bare_faces(two, 3)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    for study, faces in ((one, a), (two, b), (one, a)):
        sql, params = compiled("test-faces", _faces_sql, study_id=study.pk, since=since)
        assert sorted(map(str, params)) == sorted(map(str, (study.pk, since)))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            assert sorted(r[0] for r in cursor.fetchall()) == sorted(f.pk for f in faces)


@pytest.mark.postgres
def test_a_text_value_is_a_parameter_of_the_kept_text_too():
    one, two = make_study(), make_study()

    def build(slug: str, pk: int):
        return queryset_sql(Study.objects.filter(slug=slug, pk__gte=pk).values("pk"))

    for study in (one, two, one):
        sql, params = compiled("test-slug", build, slug=study.slug, pk=0)
        assert set(params) == {study.slug, 0} and study.slug not in sql
        assert compiled_rows("test-slug", build, slug=study.slug, pk=0) == [(study.pk,)]
    assert compiled_rows("test-slug", build, slug="it's-no-study", pk=0) == []


def test_a_value_written_into_the_text_is_refused():
    with pytest.raises(ValueError) as refused:
        compiled("test-inline", lambda n: (f"SELECT 1 LIMIT {n}", ()), n=3)
    assert str(refused.value) == STAND_IN_MISSING.format(name="n", key="test-inline")
    with pytest.raises(ValueError) as inline:
        compiled("test-inline-2", lambda n: (f"SELECT %s WHERE {n} < 0", (n,)), n=3)
    assert str(inline.value) == STAND_IN_INLINE.format(name="n", key="test-inline-2")


def _open_faces_like_sql(study_id: int):
    return queryset_sql(
        Face.objects.filter(
            study_id=study_id, coding_status=FaceStatus.OPEN, crop__contains="50%"
        ).values("pk")
    )


def _prepared() -> list[str]:
    """The statements the server holds prepared for this connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_constants_are_written_into_the_text_and_only_the_values_stay_parameters():
    study = make_study()
    wanted, done, *_ = bare_faces(study, 4)  # the other two: crops without "50%"
    Face.objects.filter(pk=wanted.pk).update(crop="faces/50%-off.jpg")
    Face.objects.filter(pk=done.pk).update(crop="faces/50%-on.jpg", coding_status="complete")
    sql, params = compiled("test-constants", _open_faces_like_sql, study_id=study.pk)
    assert params == (study.pk,)
    assert "'open'" in sql  # the status, and the LIKE pattern with its % doubled for the driver
    assert "%%50" in sql
    assert [
        row[0] for row in compiled_rows("test-constants", _open_faces_like_sql, study_id=study.pk)
    ] == [wanted.pk]


@pytest.mark.postgres
def test_compiled_statements_are_prepared_by_the_server_and_orm_statements_are_not():
    study = make_study()
    faces = bare_faces(study, 3)
    Face.objects.filter(study=study).update(crop="faces/50%.jpg")
    for _ in range(3):
        rows = compiled_rows("test-prepared", _open_faces_like_sql, study_id=study.pk)
        assert sorted(row[0] for row in rows) == sorted(f.pk for f in faces)
    for _ in range(10):  # far more runs than psycopg's usual threshold for preparing
        assert Face.objects.filter(study=study).count() == 3
    prepared = [s for s in _prepared() if "annotate_face" in s]
    # One statement, prepared with its value as the only parameter and its constants in it.
    assert len(prepared) == 1, prepared
    assert "$1" in prepared[0] and "$2" not in prepared[0] and "'open'" in prepared[0]
