"""Escalation that always ends: a split face goes to an extra coder only when one can take it,
and to a researcher otherwise or after the study's wait; the pages say which faces wait."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate import assignment
from annotate.assignment import assignment_next, faces_over_assigned, leases_reclaim
from annotate.consensus import escalations_sweep
from annotate.models import (
    Assignment,
    AssignmentStatus,
    Consensus,
    ConsensusStatus,
    Face,
    FaceStatus,
    Vote,
)
from annotate.roles import Role
from annotate.selectors.agreement import adjudication_queue
from annotate.selectors.waiting import faces_waiting
from annotate.services.coding import (
    LEASE_LOST,
    CodingError,
    LeaseLost,
    VoteRequest,
    vote_submit,
    vote_undo,
)
from annotate.services.demo import demo_accounts_ensure, demo_members_add
from annotate.services.team import member_remove
from modeling.selectors.validation import validation_round_progress
from modeling.services.validation import validation_round_create
from tests.annotate.coding_helpers import answers_for, vote_next
from tests.factories import bare_faces, make_plain_faces, make_study, make_user, quick_users
from tests.modeling.validation_factories import make_version, plant

pytestmark = pytest.mark.django_db

SPLIT = ("female", "male", "not_face")


@pytest.fixture
def study():
    return make_study(attributes_asked=[])


def split_one_face(study, coders):
    """The first three coders vote not-a-face / female / male on the study's only open face."""
    for coder, gender in zip(coders, SPLIT, strict=False):
        assert vote_next(study, coder, gender) is not None
    face = Face.objects.select_related("consensus").get(study=study)
    return face


def later(monkeypatch, minutes: float):
    """Every call for work from now on happens `minutes` after the real clock."""
    moment = timezone.now() + timedelta(minutes=minutes)
    monkeypatch.setattr(assignment, "_now", lambda: moment)
    return moment


def test_with_exactly_k_coders_a_split_goes_straight_to_adjudication(study):
    bare_faces(study, 1)
    coders = quick_users(study, 3)
    face = split_one_face(study, coders)
    assert (face.coding_status, face.votes_target) == (FaceStatus.ADJUDICATION, 3)
    assert face.consensus.status == ConsensusStatus.ADJUDICATION
    assert [f.pk for f in adjudication_queue(study=study)] == [face.pk]
    assert all(assignment_next(study=study, coder=c) is None for c in coders)


def test_members_who_cannot_take_the_extra_vote_do_not_hold_a_split_open(study):
    bare_faces(study, 1)
    coders = quick_users(study, 3)
    (inactive,) = quick_users(study, 1)
    get_user_model().objects.filter(pk=inactive.pk).update(is_active=False)
    make_user(Role.CODER)  # a coder, but not on this study
    make_user(Role.RESEARCHER, study=study)  # on the study, but not a coder
    face = split_one_face(study, coders)
    assert face.coding_status == FaceStatus.ADJUDICATION


def test_with_an_extra_coder_the_split_is_escalated_to_that_coder(study):
    bare_faces(study, 1)
    *coders, fourth = quick_users(study, 4)
    face = split_one_face(study, coders)
    assert (face.coding_status, face.votes_target) == (FaceStatus.OPEN, 4)
    assert face.consensus.status == ConsensusStatus.ESCALATED
    assert all(assignment_next(study=study, coder=c) is None for c in coders)
    lease, _ = vote_next(study, fourth, "male")
    assert lease.face_id == face.pk
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE and face.consensus.label == "male"


def test_a_split_goes_to_adjudication_when_the_wait_runs_out(study, monkeypatch):
    bare_faces(study, 1)
    *coders, fourth = quick_users(study, 4)
    face = split_one_face(study, coders)
    later(monkeypatch, study.escalation_wait_minutes - 1)
    assert assignment_next(study=study, coder=coders[0]) is None  # a call for work sweeps
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.OPEN
    later(monkeypatch, study.escalation_wait_minutes + 1)
    assert assignment_next(study=study, coder=fourth) is None
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.ADJUDICATION
    assert face.consensus.status == ConsensusStatus.ADJUDICATION
    assert [f.pk for f in adjudication_queue(study=study)] == [face.pk]


def test_a_wait_of_zero_sends_splits_straight_to_a_researcher(study):
    study.escalation_wait_minutes = 0
    study.save()
    bare_faces(study, 1)
    *coders, _fourth = quick_users(study, 4)
    assert split_one_face(study, coders).coding_status == FaceStatus.ADJUDICATION


def test_an_extra_coder_at_work_keeps_the_split_until_the_lease_ends(study, monkeypatch):
    study.lease_minutes = 90  # longer than the 60-minute wait
    study.save()
    bare_faces(study, 1)
    *coders, fourth = quick_users(study, 4)
    face = split_one_face(study, coders)
    lease = assignment_next(study=study, coder=fourth)
    assert lease.face_id == face.pk
    assert escalations_sweep(now=timezone.now() + timedelta(minutes=61)) == 0
    later(monkeypatch, 91)
    assert assignment_next(study=study, coder=coders[0]) is None  # reclaims, then decides
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.ADJUDICATION
    with pytest.raises(LeaseLost, match=LEASE_LOST):
        vote_submit(
            study=study,
            coder=fourth,
            request=VoteRequest(lease.pk, answers_for(study, "male"), 1.0),
        )
    assert faces_over_assigned(study=study) == []


def test_an_extra_coder_removed_while_at_work_sends_the_split_to_a_researcher(
    study, django_capture_on_commit_callbacks
):
    bare_faces(study, 1)
    *coders, fourth = quick_users(study, 4)
    face = split_one_face(study, coders)
    assert assignment_next(study=study, coder=fourth).face_id == face.pk
    with django_capture_on_commit_callbacks(execute=True):
        member_remove(study=study, user=fourth)
    face.refresh_from_db()  # at once, well inside the 60-minute wait
    assert face.coding_status == FaceStatus.ADJUDICATION
    assert assignment_next(study=study, coder=coders[0]) is None


def test_a_coder_whose_lease_lapsed_gets_the_face_back(study):
    """With exactly K coders, a face whose lease lapsed has no one else to give it its vote."""
    (face,) = bare_faces(study, 1)
    a, b, c = quick_users(study, 3)
    vote_next(study, a)
    vote_next(study, b)
    lapsed = assignment_next(study=study, coder=c)
    Assignment.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now())
    assert leases_reclaim() == 1
    again = assignment_next(study=study, coder=c)
    assert again.pk == lapsed.pk and again.status == AssignmentStatus.LEASED
    vote_submit(study=study, coder=c, request=VoteRequest(again.pk, answers_for(study), 1.0))
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.COMPLETE and face.slots_taken == 3


OPS = st.lists(
    st.tuples(
        st.sampled_from(["vote", "vote", "vote", "lapse", "undo"]),
        st.integers(0, 2),  # coder
        st.sampled_from(["female", "male", "cant_tell", "not_face"]),
    ),
    max_size=25,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS, drain=st.lists(st.sampled_from(SPLIT), min_size=9, max_size=9))
def test_with_exactly_k_coders_no_face_stays_open_forever(ops, drain):
    """Whatever the coders did (votes, lapsed leases, undos), once they code what they are
    given, every face has a final consensus or is in the adjudication queue."""
    study = make_study(attributes_asked=[])
    bare_faces(study, 3)
    coders = quick_users(study, 3)
    for op, who, gender in ops:
        coder = coders[who]
        if op == "vote":
            vote_next(study, coder, gender)
        elif op == "lapse":
            assignment_next(study=study, coder=coder)
            Assignment.objects.filter(coder=coder, status=AssignmentStatus.LEASED).update(
                expires_at=timezone.now()
            )
        else:
            with contextlib.suppress(CodingError):
                vote_undo(study=study, coder=coder)
    answers = iter(drain)
    for coder in coders:
        while (lease := assignment_next(study=study, coder=coder)) is not None:
            request = VoteRequest(lease.pk, answers_for(study, next(answers, "male")), 1.0)
            vote_submit(study=study, coder=coder, request=request)
    faces = Face.objects.filter(study=study)
    assert not faces.filter(coding_status=FaceStatus.OPEN).exists()
    waiting = faces.filter(coding_status=FaceStatus.ADJUDICATION)
    assert {f.pk for f in adjudication_queue(study=study)} == set(
        waiting.values_list("pk", flat=True)
    )
    assert not Consensus.objects.filter(status=ConsensusStatus.ESCALATED).exists()
    assert faces_over_assigned(study=study) == []


@pytest.fixture
def demo_round():
    """The demo's researcher and three coders on a study with an open validation round."""
    demo_accounts_ensure()
    study = make_study()
    demo_members_add(study=study)
    faces = make_plain_faces(study, 12)
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False)
    round = validation_round_create(version=version, size=4, seed=1, min_per_group=0)
    return study, round, truth


def _code_round(study, round, truth, split_face_id: int) -> None:
    """Each demo coder labels the round's faces (they come first) with the truth, except the
    split face, which they call not-a-face, female and male."""
    in_round = set(round.items.values_list("face_id", flat=True))
    users = get_user_model().objects.filter(username__in=["coder1", "coder2", "coder3"])
    for coder, split_answer in zip(users.order_by("username"), SPLIT, strict=True):
        while (lease := assignment_next(study=study, coder=coder)) is not None:
            if lease.face_id not in in_round:
                break
            gender = (
                split_answer if lease.face_id == split_face_id else truth[lease.face_id]["truth"]
            )
            request = VoteRequest(lease.pk, answers_for(study, gender), 1.0)
            vote_submit(study=study, coder=coder, request=request)


def test_the_demo_coders_finish_a_round_with_a_split_through_adjudication(client, demo_round):
    study, round, truth = demo_round
    split_id = min(round.items.values_list("face_id", flat=True))
    _code_round(study, round, truth, split_id)
    progress = validation_round_progress(round=round)
    assert (progress.coded, progress.sampled) == (3, 4)

    client.force_login(get_user_model().objects.get(username="researcher"))
    page = client.get(reverse("modeling:validation_round", args=[round.pk])).content.decode()
    adjudication_url = reverse("annotate:adjudication", args=[study.slug])
    assert 'data-testid="waiting-faces"' in page and f'data-face="{split_id}"' in page
    assert f'href="{adjudication_url}#face-{split_id}"' in page
    queue = client.get(adjudication_url).content.decode()
    assert f'id="face-{split_id}"' in queue

    response = client.post(
        reverse("annotate:adjudicate", args=[study.slug, split_id]), {"label": "female"}
    )
    assert response.status_code == 302
    progress = validation_round_progress(round=round)
    assert progress.complete and (progress.coded, progress.sampled) == (4, 4)
    assert faces_waiting(study=study, face_ids=[split_id]).total == 0
    assert Vote.objects.filter(face_id=split_id, retracted_at__isnull=True).count() == 3


def test_the_study_page_says_which_face_waits_for_what(client, study):
    (face,) = make_plain_faces(study, 1)
    *coders, _fourth = quick_users(study, 4)
    split_one_face(study, coders)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:study_detail", args=[study.slug])
    page = client.get(url).content.decode()
    assert f'data-face="{face.pk}"' in page and "an extra coder" in page
    assert f'href="{reverse("annotate:face_source", args=[face.pk])}"' in page

    # Two hours on, the page's own sweep has sent it to a researcher.
    Vote.objects.filter(face=face).update(created_at=timezone.now() - timedelta(hours=2))
    page = client.get(url).content.decode()
    assert "a researcher's decision" in page
    assert f'href="{reverse("annotate:adjudication", args=[study.slug])}#face-{face.pk}"' in page
    face.refresh_from_db()
    assert face.coding_status == FaceStatus.ADJUDICATION


def test_only_the_faces_asked_about_are_listed(study):
    faces = bare_faces(study, 2)
    coders = quick_users(study, 3)
    for coder, gender in zip(coders, SPLIT, strict=True):
        vote_next(study, coder, gender)
        vote_next(study, coder, gender)
    waiting = faces_waiting(study=study)
    assert waiting.total == 2 and all(w.for_researcher for w in waiting.faces)
    only = faces_waiting(study=study, face_ids=[faces[1].pk])
    assert [w.face.pk for w in only.faces] == [faces[1].pk] and only.total == 1


def test_calls_for_work_sweep_overdue_splits_at_most_once_a_minute(monkeypatch):
    """The sweep is off the per-request path of a busy study: once a minute per process."""
    swept = []
    monkeypatch.setattr(assignment, "escalations_sweep", lambda *, now: swept.append(now))
    monkeypatch.setattr(assignment, "_last_sweep", None)
    start = timezone.now()
    for seconds in (0, 10, 59, 61, 62, 130):
        assignment._escalations_sweep_due(start + timedelta(seconds=seconds))
    assert [(t - start).seconds for t in swept] == [0, 61, 130]
