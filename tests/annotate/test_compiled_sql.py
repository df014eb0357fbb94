"""Statements compiled once per process run again with the new values, never the old ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from annotate.compiled_sql import STAND_IN_INLINE, STAND_IN_MISSING, compiled, queryset_sql
from annotate.models import Face
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


def test_a_value_written_into_the_text_is_refused():
    with pytest.raises(ValueError) as refused:
        compiled("test-inline", lambda n: (f"SELECT 1 LIMIT {n}", ()), n=3)
    assert str(refused.value) == STAND_IN_MISSING.format(name="n", key="test-inline")
    with pytest.raises(ValueError) as inline:
        compiled("test-inline-2", lambda n: (f"SELECT %s WHERE {n} < 0", (n,)), n=3)
    assert str(inline.value) == STAND_IN_INLINE.format(name="n", key="test-inline-2")
