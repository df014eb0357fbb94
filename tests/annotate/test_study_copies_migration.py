"""Migrations 0016 and 0017 copy each face's study onto its consensus row and its votes: every
existing row gets its face's study, whatever study it is in."""

from __future__ import annotations

import pytest

from annotate.models import Consensus, Vote


@pytest.mark.django_db(transaction=True)
def test_existing_votes_and_consensus_rows_get_their_face_s_study():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("annotate", "0015_job_fields")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldStudy, OldFace = old.get_model("annotate", "Study"), old.get_model("annotate", "Face")
        OldVote, OldConsensus = (
            old.get_model("annotate", "Vote"),
            old.get_model("annotate", "Consensus"),
        )
        coder = old.get_model("auth", "User").objects.create(username="old-coder")
        expected = {}
        for slug in ("first", "second"):
            study = OldStudy.objects.create(slug=slug, title=slug)
            for i in range(2):
                face = OldFace.objects.create(study=study, crop=f"faces/{slug}-{i}.jpg")
                OldVote.objects.create(face=face, coder=coder, gender="female")
                OldConsensus.objects.create(face=face, status="agreed", label="female")
                expected[face.pk] = study.pk
        MigrationExecutor(connection).migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)

    assert dict(Vote.objects.values_list("face_id", "study_id")) == expected
    assert dict(Consensus.objects.values_list("face_id", "study_id")) == expected
