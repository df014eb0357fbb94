"""The assignment service: distinct coders, bounded slots, expiry, priority, reset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotate.assignment import (
    assignment_next,
    assignments_take,
    face_votes_reset,
    faces_over_assigned,
    faces_prioritize,
    leases_reclaim,
    slots_held,
)
from annotate.models import Assignment, AssignmentStatus, Consensus, Face, FaceStatus, Vote
from annotate.roles import Role
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=[])


def coders(study, n):
    return [make_user(Role.CODER, study=study) for _ in range(n)]


def test_no_coder_gets_the_same_face_twice(study):
    bare_faces(study, 3)
    (coder,) = coders(study, 1)
    seen = []
    while (result := vote_next(study, coder)) is not None:
        seen.append(result[0].face_id)
    assert len(seen) == 3 and len(set(seen)) == 3


def test_a_face_never_gets_more_than_k_slots(study):
    (face,) = bare_faces(study, 1)
    people = coders(study, 5)
    leases = [assignment_next(study=study, coder=c) for c in people]
    assert sum(lease is not None for lease in leases) == 3
    face.refresh_from_db()
    assert face.slots_taken == 3 == slots_held(face_id=face.pk)
    assert faces_over_assigned(study=study) == []


def test_the_database_refuses_a_second_live_assignment_for_one_coder(study):
    (face,) = bare_faces(study, 1)
    (coder,) = coders(study, 1)
    lease = assignment_next(study=study, coder=coder)
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            face=face, coder=coder, leased_at=lease.leased_at, expires_at=lease.expires_at
        )


def test_a_coder_holds_the_current_face_and_one_prefetched(study):
    bare_faces(study, 5)
    (coder,) = coders(study, 1)
    first = assignments_take(study=study, coder=coder)
    again = assignments_take(study=study, coder=coder)
    assert len(first) == 2 and [a.pk for a in again] == [a.pk for a in first]
    assert assignment_next(study=study, coder=coder).pk == first[0].pk


def test_expired_leases_return_their_slot_to_the_pool(study):
    (face,) = bare_faces(study, 1)
    people = coders(study, 4)
    leases = [assignment_next(study=study, coder=c) for c in people[:3]]
    assert assignment_next(study=study, coder=people[3]) is None
    Assignment.objects.filter(pk=leases[0].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = assignment_next(study=study, coder=people[3])
    assert late is not None and late.face_id == face.pk
    assert Assignment.objects.get(pk=leases[0].pk).status == AssignmentStatus.EXPIRED
    face.refresh_from_db()
    assert face.slots_taken == 3 == slots_held(face_id=face.pk)


def test_reclaim_is_a_no_op_without_expired_leases(study):
    bare_faces(study, 2)
    (coder,) = coders(study, 1)
    assignment_next(study=study, coder=coder)
    assert leases_reclaim() == 0


def test_validation_faces_come_first_then_faces_closest_to_completion(study):
    faces = bare_faces(study, 4)
    a, b, c = coders(study, 3)
    # b takes faces[0] and [1]; faces[1] gets one vote
    vote_next(study, b)
    assert Face.objects.get(pk=faces[0].pk).slots_taken == 1
    lease = assignment_next(study=study, coder=a)
    assert lease.face_id == faces[0].pk  # one slot taken beats none; then lowest id
    assert faces_prioritize(face_ids=[faces[3].pk], priority=100) == 1
    assert assignments_take(study=study, coder=c, n=1)[0].face_id == faces[3].pk


def test_priority_counts_only_open_faces(study):
    faces = bare_faces(study, 2)
    Face.objects.filter(pk=faces[0].pk).update(coding_status=FaceStatus.COMPLETE)
    assert faces_prioritize(face_ids=[f.pk for f in faces], priority=100) == 1
    assert set(Face.objects.values_list("priority", flat=True)) == {100}


def test_reset_retracts_votes_and_lets_the_same_coders_vote_again(study):
    (face,) = bare_faces(study, 1)
    people = coders(study, 3)
    for coder in people:
        vote_next(study, coder)
    face.refresh_from_db()
    assert (
        face.coding_status == FaceStatus.COMPLETE and Consensus.objects.filter(face=face).exists()
    )
    face_votes_reset(face=face, reason="label error in triage")
    face.refresh_from_db()
    assert (face.coding_status, face.slots_taken, face.votes_target) == (FaceStatus.OPEN, 0, 3)
    assert not Consensus.objects.filter(face=face).exists()
    assert Vote.objects.filter(face=face).count() == 3  # kept, retracted
    assert not Vote.objects.filter(face=face, retracted_at__isnull=True).exists()
    for coder in people:
        assert vote_next(study, coder, gender="male") is not None
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE and face.consensus.label == "male"


def test_next_face_query_uses_the_work_queue_index(study):
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN output checked on PostgreSQL")
    from annotate.assignment import _work_queue

    bare_faces(study, 50)
    (coder,) = coders(study, 1)
    plan = _work_queue(study=study, coder=coder)[:1].explain()
    assert "face_work_queue" in plan, plan


def test_next_face_costs_a_constant_number_of_queries(study):
    bare_faces(study, 30)
    a, b = coders(study, 2)
    with CaptureQueriesContext(connection) as small:
        assignments_take(study=study, coder=a)
    bare_faces(study, 300)
    with CaptureQueriesContext(connection) as large:
        assignments_take(study=study, coder=b)
    assert len(large) == len(small)
