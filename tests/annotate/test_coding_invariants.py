"""Random sequences of take, vote, undo, expiry, reset and adjudication keep every invariant."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.assignment import (
    SLOT_STATUSES,
    assignments_take,
    face_votes_reset,
    faces_over_assigned,
)
from annotate.consensus import face_adjudicate
from annotate.models import Assignment, Consensus, Face, FaceStatus, Vote
from annotate.roles import Role
from annotate.selectors.labels import face_labels
from annotate.services.coding import CodingError, VoteRequest, vote_submit, vote_undo
from tests.factories import bare_faces, make_study, quick_users

pytestmark = pytest.mark.django_db

OPS = st.lists(
    st.tuples(
        st.sampled_from(["vote", "vote", "vote", "undo", "expire", "reset", "adjudicate"]),
        st.integers(0, 4),  # coder
        st.sampled_from(["female", "male", "cant_tell", "not_face"]),
    ),
    min_size=5,
    max_size=40,
)


def check_invariants(study) -> None:
    assert faces_over_assigned(study=study) == []
    live = Vote.objects.filter(face__study=study, retracted_at__isnull=True)
    pairs = Counter(live.values_list("face_id", "coder_id"))
    assert not pairs or max(pairs.values()) == 1
    per_face = Counter(live.values_list("face_id", flat=True))
    for face in Face.objects.filter(study=study):
        n = per_face.get(face.pk, 0)
        assert n <= face.votes_target
        held = Assignment.objects.filter(face=face, status__in=SLOT_STATUSES)
        assert held.values("coder").distinct().count() == held.count()
        if n < study.votes_per_face:
            assert face.coding_status == FaceStatus.OPEN
        if face.coding_status != FaceStatus.OPEN:
            assert Consensus.objects.get(face=face).n_votes == n


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_random_coding_sessions_keep_the_invariants(ops):
    study = make_study(attributes_asked=[])
    faces = bare_faces(study, 3)
    coders = quick_users(study, 5)
    (researcher,) = quick_users(study, 1, role=Role.RESEARCHER)
    for op, who, gender in ops:
        coder = coders[who]
        if op == "vote":
            leases = assignments_take(study=study, coder=coder, n=1)
            if leases:
                with contextlib.suppress(CodingError):
                    vote_submit(
                        study=study,
                        coder=coder,
                        request=VoteRequest(leases[0].pk, {"gender": gender}, None),
                    )
        elif op == "undo":
            with contextlib.suppress(CodingError):
                vote_undo(study=study, coder=coder)
        elif op == "expire":
            Assignment.objects.filter(coder=coder, status="leased").update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        elif op == "reset":
            face_votes_reset(face=faces[who % len(faces)], reason="test")
        elif op == "adjudicate":
            waiting = Face.objects.filter(study=study, coding_status=FaceStatus.ADJUDICATION)
            for face in waiting:
                face_adjudicate(face=face, researcher=researcher, label=gender)
        check_invariants(study)


def test_the_study_chooses_majority_or_dawid_skene_labels():
    study = make_study(attributes_asked=[])
    bare_faces(study, 4)
    for coder in quick_users(study, 3):
        while leases := assignments_take(study=study, coder=coder, n=1):
            vote_submit(
                study=study,
                coder=coder,
                request=VoteRequest(leases[0].pk, {"gender": "male"}, None),
            )
    majority = face_labels(study=study).frame
    study.aggregation = "dawid_skene"
    study.save()
    ds = face_labels(study=study).frame
    assert set(majority["label"]) == set(ds["label"]) == {"male"}
    assert (majority["confidence"] == 1.0).all()
    assert ((ds["confidence"] > 0.5) & (ds["confidence"] <= 1.0)).all()
