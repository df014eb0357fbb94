"""The vote endpoint's hot path: its statement budget on PostgreSQL, and the process grant
(annotate.access.coder_grant) that spares it the membership query, checked on every vote."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse, set_script_prefix
from django.utils import timezone

from annotate.access import (
    NOT_A_MEMBER,
    PAUSED,
    ROLE_REFUSED,
    coder_grant,
    coder_study,
    grant_forget,
)
from annotate.models import Assignment, AssignmentStatus, Face, Membership, Study, Vote
from annotate.roles import Role, groups_ensure
from annotate.selectors.coding import url_with_id
from annotate.services.coding import UNEXPECTED_FIELD
from annotate.services.team import member_remove
from tests.factories import bare_faces, make_member, make_plain_faces, make_study, make_user

pytestmark = pytest.mark.django_db

# Statements of a vote whose face stays open: session, lock (with the grant's checks, the
# user's row among them: annotate.access.vote_endpoint), vote + assignment + the face's live
# votes, claim of the next faces + progress.
VOTE_BUDGET = 4
# A vote that completes its face adds one: the consensus upsert with the face's new status.
COMPLETING_BUDGET = 5


def post(client, study, name, body=None):
    return client.post(
        reverse(f"annotate:{name}", args=[study.slug]),
        data=json.dumps(body if body is not None else {}),
        content_type="application/json",
    )


def vote(client, study, assignment_id, **answers):
    body = {"assignment": assignment_id, "gender": "female", "glasses": "none", **answers}
    return post(client, study, "code_submit", body)


def statements(captured) -> list[str]:
    """What the database was asked, without the savepoints of the test's own transaction."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]


@pytest.fixture
def study():
    return make_study(attributes_asked=["glasses"], votes_per_face=2)


@pytest.fixture
def coders(study, client):
    return [make_user(Role.CODER, study=study) for _ in range(2)]


def logged_in(client_class, user):
    client = client_class()
    client.force_login(user)
    return client


@pytest.mark.postgres
def test_a_vote_and_its_next_two_faces_take_four_statements_five_when_it_completes_the_face(
    client, study, coders
):
    bare_faces(study, 10)
    first, second = (logged_in(type(client), c) for c in coders)
    items = post(first, study, "code_next").json()["items"]
    other = post(second, study, "code_next").json()["items"]
    assert items[0]["assignment"] != other[0]["assignment"]
    with CaptureQueriesContext(connection) as plain:
        reply = vote(first, study, items[0]["assignment"])
    assert reply.status_code == 200, reply.content
    assert len(reply.json()["items"]) == 2  # the next face and the one after, for prefetch
    assert len(statements(plain)) == VOTE_BUDGET, statements(plain)
    # The user is the grant's; the lock statement checks their row.
    assert not [sql for sql in statements(plain) if sql.startswith('SELECT "auth_user"')]
    # The study's codebook text (pages, in a real study) is not read on every vote.
    assert not [sql for sql in statements(plain) if "instructions" in sql]

    # The second coder's first face is the one the first coder just voted on: K = 2.
    assert other[0]["crop"] == items[0]["crop"]
    with CaptureQueriesContext(connection) as completing:
        reply = vote(second, study, other[0]["assignment"])
    assert reply.status_code == 200, reply.content
    assert len(statements(completing)) == COMPLETING_BUDGET, statements(completing)
    assert any("annotate_consensus" in sql for sql in statements(completing))


@pytest.mark.postgres
def test_the_budget_does_not_grow_with_the_study_or_the_coders_votes(client, study, coders):
    bare_faces(study, 40)
    coder = logged_in(type(client), coders[0])
    items = post(coder, study, "code_next").json()["items"]
    counts = []
    for _ in range(12):
        with CaptureQueriesContext(connection) as captured:
            items = vote(coder, study, items[0]["assignment"]).json()["items"]
        counts.append(len(statements(captured)))
        bare_faces(study, 20)
    assert set(counts) == {VOTE_BUDGET}


@pytest.mark.postgres
def test_with_sessions_in_the_shared_cache_a_vote_runs_no_session_statement(
    client, study, coders, session_cache
):
    bare_faces(study, 10)
    coder = logged_in(type(client), coders[0])  # the login wrote the session to the cache too
    items = post(coder, study, "code_next").json()["items"]
    with CaptureQueriesContext(connection) as captured:
        reply = vote(coder, study, items[0]["assignment"])
    assert reply.status_code == 200, reply.content
    assert len(reply.json()["items"]) == 2
    assert not [sql for sql in statements(captured) if "django_session" in sql]
    assert len(statements(captured)) == VOTE_BUDGET - 1, statements(captured)


def _granted(client, study, coder):
    """The coder's client after a call for work, which leaves the process a grant."""
    c = logged_in(type(client), coder)
    items = post(c, study, "code_next").json()["items"]
    assert coder_grant(coder, study.slug) is not None
    return c, items


def test_a_member_paused_a_moment_ago_is_refused_at_the_next_vote(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    # Paused behind the service's back: the lease stays live, only the check can refuse.
    Membership.objects.filter(study=study, user=coders[0]).update(
        paused_at=timezone.now(), paused_reason="too fast"
    )
    reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 403
    assert reply.json()["error"] == PAUSED.format(reason="too fast")
    assert not Vote.objects.exists()
    assert Assignment.objects.get(pk=items[0]["assignment"]).status == AssignmentStatus.LEASED
    assert coder_grant(coders[0], study.slug) is None


def test_a_removed_member_is_refused_at_the_next_vote(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    member_remove(study=study, user=coders[0])
    reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 403
    assert reply.json()["error"] == NOT_A_MEMBER
    assert not Vote.objects.exists()


def test_a_coder_who_lost_the_coder_role_is_refused_at_the_next_vote(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    coders[0].groups.remove(groups_ensure()[Role.CODER])
    reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 403
    assert reply.json()["error"] == ROLE_REFUSED
    assert not Vote.objects.exists()


def test_a_coder_made_admin_votes_non_blind_not_through_the_grant(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    coders[0].groups.add(groups_ensure()[Role.ADMIN])
    reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 200, reply.content
    assert Vote.objects.get().non_blind


def _refused_to_login(reply, study, items) -> None:
    """The vote was answered as to a visitor signed out, and wrote nothing."""
    assert reply.status_code == 302 and reply["Location"].startswith(reverse("login"))
    assert not Vote.objects.exists()
    assert Assignment.objects.get(pk=items[0]["assignment"]).status == AssignmentStatus.LEASED


def test_a_coder_whose_password_changed_elsewhere_is_signed_out_at_the_next_vote(
    client, study, coders
):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    coders[0].set_password("changed-elsewhere-42")
    coders[0].save(update_fields=["password"])
    _refused_to_login(vote(c, study, items[0]["assignment"]), study, items)
    assert coder_grant(coders[0], study.slug) is None


def test_a_coder_who_changed_their_own_password_votes_on_through_a_new_grant(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    before = coder_grant(coders[0], study.slug)
    user = get_user_model().objects.get(pk=coders[0].pk)
    user.set_password("mine-now-42")
    user.save(update_fields=["password"])
    session = c.session  # as update_session_auth_hash keeps the changer signed in
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()

    first = vote(c, study, items[0]["assignment"])
    assert first.status_code == 200, first.content
    after = coder_grant(coders[0], study.slug)
    assert after is not None and after.password_md5 != before.password_md5
    second = vote(c, study, first.json()["items"][0]["assignment"])
    assert second.status_code == 200, second.content
    assert Vote.objects.filter(coder=coders[0]).count() == 2


def test_a_coder_deactivated_a_moment_ago_is_signed_out_at_the_next_vote(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    get_user_model().objects.filter(pk=coders[0].pk).update(is_active=False)
    _refused_to_login(vote(c, study, items[0]["assignment"]), study, items)


def test_a_session_whose_hash_does_not_match_gets_no_grant_and_is_signed_out(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    session = c.session
    session[HASH_SESSION_KEY] = "0" * len(session[HASH_SESSION_KEY])
    session.save()
    _refused_to_login(vote(c, study, items[0]["assignment"]), study, items)


def test_a_coder_made_superuser_votes_non_blind_with_the_user_loaded(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    get_user_model().objects.filter(pk=coders[0].pk).update(is_superuser=True)
    reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 200, reply.content
    assert Vote.objects.get().non_blind


def test_a_vote_is_checked_against_the_study_as_it_is_now(client, study, coders):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    study.attributes_asked = []
    study.save(update_fields=["attributes_asked"])
    reply = vote(c, study, items[0]["assignment"])  # still answers "glasses"
    assert reply.status_code == 400
    assert reply.json()["error"] == UNEXPECTED_FIELD.format(field="glasses")
    assert not Vote.objects.exists()
    reply = post(c, study, "code_submit", {"assignment": items[0]["assignment"], "gender": "male"})
    assert reply.status_code == 200, reply.content


def test_a_grant_does_not_open_another_coders_assignment(client, study, coders):
    bare_faces(study, 4)
    c, _ = _granted(client, study, coders[0])
    _, theirs = _granted(client, study, coders[1])
    reply = vote(c, study, theirs[0]["assignment"])
    assert reply.status_code == 403
    assert not Vote.objects.exists()


@pytest.mark.postgres
def test_a_coders_first_vote_in_a_process_asks_for_the_grant_then_votes_through_it(
    client, study, coders
):
    bare_faces(study, 4)
    c, items = _granted(client, study, coders[0])
    grant_forget(coder_grant(coders[0], study.slug))  # as in a web process that never saw them
    with CaptureQueriesContext(connection) as captured:
        reply = vote(c, study, items[0]["assignment"])
    assert reply.status_code == 200, reply.content
    # The user's row, the endpoint's role check and the grant's query, then the vote's own
    # budget: not the long way's ORM lock.
    assert len(statements(captured)) == VOTE_BUDGET + 3, statements(captured)
    assert not [sql for sql in statements(captured) if sql.endswith("FOR NO KEY UPDATE")]
    assert coder_grant(coders[0], study.slug) is not None
    assert Vote.objects.get().assignment_id == items[0]["assignment"]


def test_the_study_the_coding_endpoints_decide_on_is_the_row_as_the_orm_reads_it(study, coders):
    # One statement compiled once per process, each call with its own study and user.
    other = make_study(attributes_asked=["glasses", "quality"], votes_per_face=3)
    make_member(other, coders[0])
    Study.objects.filter(pk=other.pk).update(description="What *counts* as a face", gold_rate=0.2)
    for each in (study, other, study):
        mine = coder_study(coders[0], each.slug)
        row = Study.objects.get(pk=each.pk)
        for field in Study._meta.concrete_fields:
            assert getattr(mine, field.attname) == getattr(row, field.attname), field.name
    assert coder_study(coders[1], study.slug).pk == study.pk
    with pytest.raises(PermissionDenied, match=NOT_A_MEMBER):
        coder_study(coders[1], other.slug)


def test_the_faces_handed_out_name_their_own_crop_and_source(client, study, coders):
    (boxed,) = make_plain_faces(study, 1)  # in a source image, with its box
    Face.objects.filter(pk=boxed.pk).update(box_x=3, box_y=4, box_w=20, box_h=20)
    bare_faces(study, 1)  # no source image
    c = logged_in(type(client), coders[0])
    items = post(c, study, "code_next").json()["items"]
    assert len(items) == 2
    for item in items:
        face = Assignment.objects.select_related("face").get(pk=item["assignment"]).face
        assert item["crop"] == reverse("annotate:face_crop", args=[face.pk])
        assert item["source"] == (
            reverse("annotate:code_source", args=[study.slug, item["assignment"]])
            if face.pk == boxed.pk
            else None
        )


def test_payload_urls_kept_per_process_are_the_urls_reverse_gives():
    try:
        for prefix in ("/", "/facet/"):
            set_script_prefix(prefix)
            for pk in (1, 9, 10, 4_096, 2**63 - 1):
                assert url_with_id("annotate:face_crop", pk) == reverse(
                    "annotate:face_crop", args=[pk]
                )
                for slug in ("study-7", "7"):
                    assert url_with_id("annotate:code_source", pk, slug) == reverse(
                        "annotate:code_source", args=[slug, pk]
                    )
            assert url_with_id("annotate:face_crop", 12).startswith(f"{prefix}faces/12/")
    finally:
        set_script_prefix("/")
