"""Many coders at once: every face ends with exactly K distinct coders' votes, none over."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotate.assignment import assignment_next, faces_over_assigned
from annotate.models import Face, FaceStatus, Vote
from annotate.roles import Role
from annotate.services.coding import VoteRequest, vote_submit
from tests.factories import bare_faces, make_study, make_user


def _label_concurrently(*, threads: int, faces: int) -> None:
    study = make_study(attributes_asked=[])
    bare_faces(study, faces)
    coders = [make_user(Role.CODER, study=study) for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(coder) -> None:
        try:
            start.wait()
            while (lease := assignment_next(study=study, coder=coder)) is not None:
                vote_submit(
                    study=study,
                    coder=coder,
                    request=VoteRequest(lease.pk, {"gender": "female"}, None),
                )
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(c,)) for c in coders]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    assert not errors, errors
    votes = Counter(
        Vote.objects.filter(face__study=study, retracted_at__isnull=True).values_list(
            "face_id", flat=True
        )
    )
    coders_per_face = {
        face_id: len(set(Vote.objects.filter(face_id=face_id).values_list("coder", flat=True)))
        for face_id in votes
    }
    assert len(votes) == faces
    assert set(votes.values()) == {3}
    assert set(coders_per_face.values()) == {3}
    assert set(Face.objects.filter(study=study).values_list("coding_status", flat=True)) == {
        FaceStatus.COMPLETE
    }
    assert faces_over_assigned(study=study) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_threads_on_postgres_give_every_face_three_distinct_coders():
    _label_concurrently(threads=16, faces=80)


@pytest.mark.django_db(transaction=True)
def test_many_threads_on_sqlite_give_every_face_three_distinct_coders():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite variant; PostgreSQL has its own test")
    _label_concurrently(threads=8, faces=30)
