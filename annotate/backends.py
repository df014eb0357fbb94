"""The authentication backend: Django's ModelBackend, with the user of each request loaded by
a statement built once per process. The ORM built that statement anew on every request, which
cost more CPU than running it (annotate.compiled_sql says the same of the vote path)."""

from __future__ import annotations

from django.contrib.auth import backends, get_user_model
from django.db import connection

_user_sql: str | None = None


def _user_statement() -> str:
    """SELECT of every user column WHERE pk = %s, as the ORM writes it."""
    global _user_sql
    if _user_sql is None:
        sql, params = get_user_model()._default_manager.filter(pk=0).query.sql_with_params()
        assert tuple(params) == (0,), params
        _user_sql = sql
    return _user_sql


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        User = get_user_model()
        try:
            pk = User._meta.pk.to_python(user_id)
        except Exception:  # noqa: BLE001 - a session holding a malformed id has no user
            return None
        with connection.cursor() as cursor:
            cursor.execute(_user_statement(), (pk,))
            row = cursor.fetchone()
        if row is None:
            return None
        fields = [field.attname for field in User._meta.concrete_fields]
        user = User.from_db(connection.alias, fields, row)
        return user if self.user_can_authenticate(user) else None
