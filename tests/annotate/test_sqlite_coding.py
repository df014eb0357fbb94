"""Coding on the embedded database (SQLite), as `./facet demo` runs: the suite itself runs on
PostgreSQL when it can, so this drives a whole coding session in a subprocess without it."""

from __future__ import annotations

import pytest

from tests.conftest import sqlite_script_run

pytestmark = pytest.mark.slow

SESSION = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from django.test import Client
from annotate.models import Vote
from tests.factories import bare_faces, make_study, make_user
study = make_study("embedded", attributes_asked=["glasses"])
bare_faces(study, 4)
coders = [make_user(study=study) for _ in range(3)]
replies = []
for coder in coders:
    client = Client()
    client.force_login(coder)
    taken = client.post("/code/embedded/next/", "{}", content_type="application/json")
    replies.append(taken.status_code)
    items = taken.json()["items"]
    while items:
        body = {"assignment": items[0]["assignment"], "gender": "female", "glasses": "none"}
        voted = client.post("/code/embedded/submit/", json.dumps(body), content_type="application/json")
        replies.append(voted.status_code)
        items = voted.json()["items"] if voted.status_code == 200 else []
from annotate.access import coder_study
from annotate.models import Study
decided, row = coder_study(coders[0], "embedded"), Study.objects.get(slug="embedded")
differ = [f.name for f in Study._meta.concrete_fields
          if getattr(decided, f.attname) != getattr(row, f.attname)]
print(json.dumps({"vendor": connection.vendor, "replies": replies, "votes": Vote.objects.count(),
                  "complete": study.faces.filter(coding_status="complete").count(),
                  "study_fields_differ": differ}))
"""


def test_three_coders_code_every_face_on_sqlite(tmp_path):
    figures, stderr = sqlite_script_run(SESSION, tmp_path)
    assert figures["vendor"] == "sqlite"
    assert set(figures["replies"]) == {200}, stderr[-3000:]
    assert figures["votes"] == 12 and figures["complete"] == 4  # three agreeing votes each
    # The study the coding endpoints decide on (annotate.access.coder_study, its own
    # statement) is the row as the ORM reads it, times and JSON fields included.
    assert figures["study_fields_differ"] == []
