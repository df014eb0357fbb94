"""Crowd workers: participant ids become coders of one study, code a quota, get a code."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotate.assignment import leases_reclaim
from annotate.models import (
    Assignment,
    AssignmentStatus,
    CrowdLink,
    CrowdWorker,
    Face,
    FaceStatus,
    GoldAnswer,
    GoldFace,
    KnownLabel,
    Membership,
    Vote,
)
from annotate.roles import Role
from annotate.selectors.crowd import EXPORT_COLUMNS, active_minutes
from annotate.services.crowd import (
    LINK_CLOSED,
    LINK_UNKNOWN,
    PID_BAD_CHARACTERS,
    PID_MISSING,
    PID_TOO_LONG,
    WORKER_REMOVED,
    crowd_faces_left,
    crowd_link_create,
)
from annotate.services.gold import gold_mark
from annotate.services.invitations import CROWD_ACCOUNT, invitation_create
from annotate.services.team import member_remove
from tests.annotate.coding_helpers import answers_for
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def study():
    study = make_study("crowdy", attributes_asked=[])
    bare_faces(study, 6)
    return study


@pytest.fixture
def researcher(study):
    return make_user(Role.RESEARCHER, username="crowd-res", study=study)


def _link(study, researcher, *, quota=3, code="DONE-42", param="PROLIFIC_PID"):
    link, token = crowd_link_create(
        study=study,
        faces_per_worker=quota,
        completion_code=code,
        param_name=param,
        created_by=researcher,
    )
    return link, token


def _enter(client, token, pid, param="PROLIFIC_PID"):
    query = {} if pid is None else {param: pid}
    return client.get(reverse("annotate:crowd_start", args=[token]), query)


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _next(client, study):
    return client.post(
        reverse("annotate:code_next", args=[study.slug]), content_type="application/json"
    ).json()


def _vote(client, study, assignment_id):
    body = {"assignment": assignment_id, **answers_for(study)}
    response = client.post(
        reverse("annotate:code_submit", args=[study.slug]), body, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


# --- entering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pid,message",
    [
        (None, PID_MISSING.format(param="PROLIFIC_PID")),
        ("", PID_MISSING.format(param="PROLIFIC_PID")),
        ("   ", PID_MISSING.format(param="PROLIFIC_PID")),
        ("a" * 65, PID_TOO_LONG),
        ("a b", PID_BAD_CHARACTERS),
        ("<script>", PID_BAD_CHARACTERS),
        ("../admin", PID_BAD_CHARACTERS),
    ],
)
def test_bad_participant_id_is_refused_and_creates_nothing(client, study, researcher, pid, message):
    _, token = _link(study, researcher)
    users = User.objects.count()
    response = _enter(client, token, pid)
    assert response.status_code == 400
    assert message in _text(response)
    assert User.objects.count() == users and not CrowdWorker.objects.exists()
    assert "_auth_user_id" not in client.session


def test_longest_participant_id_is_accepted(client, study, researcher):
    _, token = _link(study, researcher)
    response = _enter(client, token, "A" * 64)
    assert response.status_code == 302
    assert CrowdWorker.objects.get().participant_id == "A" * 64


def test_participant_id_comes_in_the_configured_parameter(client, study, researcher):
    _, token = _link(study, researcher, param="workerId")
    assert _enter(client, token, "w1").status_code == 400  # PROLIFIC_PID is not it
    assert _enter(client, token, "w1", param="workerId").status_code == 302


def test_unknown_link_is_404_and_closed_link_takes_no_new_workers(client, study, researcher):
    link, token = _link(study, researcher)
    response = _enter(client, "no-such-token", "p1")
    assert response.status_code == 404 and LINK_UNKNOWN in _text(response)
    assert _enter(client, token, "early").status_code == 302
    client.logout()
    client.force_login(researcher)
    client.post(reverse("annotate:crowd_close", args=[study.slug, link.pk]))
    client.logout()
    response = _enter(client, token, "late")
    assert response.status_code == 410 and LINK_CLOSED in _text(response)
    assert not CrowdWorker.objects.filter(participant_id="late").exists()
    # A worker who started before the link closed may come back and finish.
    assert _enter(client, token, "early").status_code == 302


def test_worker_is_signed_in_without_password_and_sent_to_coding(client, study, researcher):
    _, token = _link(study, researcher)
    response = _enter(client, token, "PID_123-x")
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:code", args=[study.slug])
    user = User.objects.get(username="crowd-crowdy-PID_123-x")
    assert not user.has_usable_password()
    assert int(client.session["_auth_user_id"]) == user.pk
    assert client.get(response["Location"]).status_code == 200


def test_same_participant_gets_the_same_account_and_studies_keep_them_apart(
    client, study, researcher
):
    _, token = _link(study, researcher)
    _enter(client, token, "p1")
    client.logout()
    _enter(client, token, "p1")
    assert CrowdWorker.objects.filter(participant_id="p1").count() == 1
    other = make_study("other-crowd")
    _, other_token = _link(other, make_user(Role.RESEARCHER, study=other))
    _enter(client, other_token, "p1")
    assert set(
        User.objects.filter(username__endswith="-p1").values_list("username", flat=True)
    ) == {
        "crowd-crowdy-p1",
        "crowd-other-crowd-p1",
    }


def test_crowd_account_is_scoped_to_its_study(client, study, researcher):
    other = make_study("elsewhere")
    bare_faces(other, 2)
    make_user(Role.CODER, study=other)
    _, token = _link(study, researcher)
    _enter(client, token, "scoped")
    user = User.objects.get(username="crowd-crowdy-scoped")
    assert list(Membership.objects.filter(user=user).values_list("study__slug", "role")) == [
        ("crowdy", "coder")
    ]
    assert client.get(reverse("annotate:code", args=[other.slug])).status_code == 403
    next_other = client.post(
        reverse("annotate:code_next", args=[other.slug]), content_type="application/json"
    )
    assert next_other.status_code == 403
    assert client.get(reverse("annotate:study_detail", args=[study.slug])).status_code == 403
    assert client.get(reverse("annotate:crowd_export", args=[study.slug])).status_code == 403
    assert client.get(reverse("annotate:invite_list", args=[study.slug])).status_code == 403


def test_crowd_account_cannot_join_another_study_by_invitation(client, study, researcher):
    other = make_study("invited-elsewhere")
    _, invite = invitation_create(
        study=other, role="coder", days=1, max_uses=5, created_by=researcher
    )
    _, token = _link(study, researcher)
    _enter(client, token, "hopper")
    response = client.post(reverse("annotate:invite_join", args=[invite]))
    assert response.status_code == 403 and CROWD_ACCOUNT in _text(response)
    user = User.objects.get(username="crowd-crowdy-hopper")
    assert not Membership.objects.filter(user=user, study=other).exists()


def test_removed_worker_is_not_added_back_by_the_link(client, study, researcher):
    _, token = _link(study, researcher)
    _enter(client, token, "gone")
    user = User.objects.get(username="crowd-crowdy-gone")
    member_remove(study=study, user=user)
    client.logout()
    response = _enter(client, token, "gone")
    assert response.status_code == 403 and WORKER_REMOVED in _text(response)
    assert not Membership.objects.filter(user=user).exists()


# --- quota and completion code ----------------------------------------------------------------


def test_worker_codes_their_quota_then_sees_the_completion_code(client, study, researcher):
    _, token = _link(study, researcher, quota=3)
    _enter(client, token, "q1")
    user = User.objects.get(username="crowd-crowdy-q1")
    done_url = reverse("annotate:crowd_done", args=[study.slug])
    page = client.get(done_url)
    assert "DONE-42" not in page.content.decode() and "3 faces left" in page.content.decode()
    coded = []
    data = _next(client, study)
    while data["items"]:
        assert len(data["items"]) <= 3 - len(coded)
        item = data["items"][0]
        reply = _vote(client, study, item["assignment"])
        coded.append(item["assignment"])
        data = reply if reply["items"] else _next(client, study)
    assert len(coded) == 3
    assert crowd_faces_left(study=study, user=user) == 0
    assert Vote.objects.filter(coder=user).count() == 3
    with CaptureQueriesContext(connection) as queries:
        last = _next(client, study)
    assert last["items"] == [] and last["finished_url"] == done_url
    quota_reads = [q for q in queries.captured_queries if "faces_per_worker" in q["sql"]]
    assert len(quota_reads) == 1  # the quota left is read once, not again for the end
    assert client.get(reverse("annotate:code", args=[study.slug]))["Location"] == done_url
    assert "DONE-42" in client.get(done_url).content.decode()


def test_quota_is_not_exceeded_by_a_second_tab(client, study, researcher):
    """Two tabs share the worker's session: they are handed the same live leases, never more
    faces than the quota has left, and never the same face to vote on twice."""
    _, token = _link(study, researcher, quota=2)
    _enter(client, token, "tabs")
    tab1 = _next(client, study)["items"]
    _enter(client, token, "tabs")  # the second tab opens the link again
    tab2 = _next(client, study)["items"]
    assert [i["assignment"] for i in tab1] == [i["assignment"] for i in tab2]
    assert len(tab1) == 2
    _vote(client, study, tab1[0]["assignment"])
    again = _vote(client, study, tab1[0]["assignment"])  # the other tab submits the same face
    assert again["duplicate"] is True
    _vote(client, study, tab2[1]["assignment"])
    user = User.objects.get(username="crowd-crowdy-tabs")
    assert Vote.objects.filter(coder=user, retracted_at__isnull=True).count() == 2
    assert _next(client, study)["items"] == []


def test_crowd_workers_get_gold_blind_and_the_lease_rules_of_every_coder(client, study, researcher):
    study.gold_rate = 0.5
    study.save()
    (face,) = bare_faces(study, 1, origin=Face.Origin.IMPORTED, coding_status=FaceStatus.COMPLETE)
    KnownLabel.objects.create(face=face, source="labels.csv", gender="male")
    gold = gold_mark(face=face, by=researcher)
    _, token = _link(study, researcher, quota=3)
    _enter(client, token, "blind")
    worker = User.objects.get(username="crowd-crowdy-blind")
    items = _next(client, study)["items"]
    kinds = {Assignment.objects.get(pk=i["assignment"]).gold: i for i in items}
    assert set(kinds) == {True, False}  # gold within the first two faces, at the study's rate
    assert kinds[True].keys() == kinds[False].keys() and "gold" not in str(items).lower()
    # The gold answer is no vote but counts against the quota, like every face the worker sees.
    _vote(client, study, kinds[True]["assignment"])
    assert not Vote.objects.filter(coder=worker).exists()
    assert GoldAnswer.objects.get(coder=worker).gold == gold
    assert crowd_faces_left(study=study, user=worker) == 2
    # A lapsed lease goes back to the pool as anyone's does: the face is free for another coder.
    regular = Assignment.objects.get(pk=kinds[False]["assignment"])
    live = Assignment.objects.filter(coder=worker, status=AssignmentStatus.LEASED)
    assert regular in live
    lapsed = live.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert leases_reclaim() == lapsed
    assert Face.objects.get(pk=regular.face_id).slots_taken == 0


def test_regular_coders_have_no_quota(client, study):
    coder = make_user(Role.CODER, study=study)
    assert crowd_faces_left(study=study, user=coder) is None
    client.force_login(coder)
    assert client.get(reverse("annotate:crowd_done", args=[study.slug])).status_code == 404


# --- researcher's pages and export -----------------------------------------------------------


def test_researcher_opens_a_link_shown_once_with_a_random_code(client, study, researcher):
    client.force_login(researcher)
    response = client.post(
        reverse("annotate:crowd_list", args=[study.slug]),
        {"faces_per_worker": 10, "completion_code": "", "param_name": "PROLIFIC_PID"},
    )
    assert response.status_code == 200
    link = CrowdLink.objects.get()
    assert len(link.completion_code) == 8
    assert "/crowd/" in _text(response) and "?PROLIFIC_PID=" in _text(response)
    bad = client.post(
        reverse("annotate:crowd_list", args=[study.slug]),
        {"faces_per_worker": 0, "param_name": "bad name!"},
    )
    assert bad.status_code == 400 and CrowdLink.objects.count() == 1


def test_export_has_one_row_per_worker_with_counts_time_and_gold(client, study, researcher):
    _, token = _link(study, researcher, quota=4)  # two votes and two gold answers
    _enter(client, token, "=payme")  # refused: not a valid id, so never a formula in the CSV
    _enter(client, token, "w1")
    data = _next(client, study)
    _vote(client, study, data["items"][0]["assignment"])
    _vote(client, study, data["items"][1]["assignment"])
    worker = User.objects.get(username="crowd-crowdy-w1")
    faces = list(study.faces.exclude(votes__coder=worker)[:2])
    for face, answer in zip(faces, ["female", "male"], strict=True):
        gold = GoldFace.objects.create(face=face, gender="female", source="known_label")
        GoldAnswer.objects.create(gold=gold, coder=worker, gender=answer)
    client.logout()
    _enter(client, token, "w2")  # entered, coded nothing
    client.logout()
    client.force_login(researcher)
    response = client.get(reverse("annotate:crowd_export", args=[study.slug]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    by_pid = {row["participant_id"]: row for row in rows}
    assert set(by_pid) == {"w1", "w2"}
    w1, w2 = by_pid["w1"], by_pid["w2"]
    assert (w1["faces_coded"], w1["quota"], w1["completed"]) == ("4", "4", "True")
    assert w1["first_answer_at"] and w1["last_answer_at"] >= w1["first_answer_at"]
    assert float(w1["active_minutes"]) >= 0
    assert (w1["gold_n"], w1["gold_correct"], w1["gold_accuracy"]) == ("2", "1", "0.5")
    assert (w2["faces_coded"], w2["gold_n"], w2["gold_accuracy"]) == ("0", "0", "")
    assert w2["first_answer_at"] == "" and w2["completed"] == "False"


def test_export_is_for_researchers_of_the_study_only(client, study):
    other = make_study("not-mine")
    client.force_login(make_user(Role.RESEARCHER, study=other))
    assert client.get(reverse("annotate:crowd_export", args=[study.slug])).status_code == 403


def test_active_minutes_caps_long_pauses():
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    answers = [t0 + timedelta(minutes=1), t0 + timedelta(minutes=3), t0 + timedelta(minutes=63)]
    # 1 + 2 + (60 capped to 5) minutes.
    assert active_minutes(t0, answers) == 8.0
    assert active_minutes(t0, []) == 0.0
    assert active_minutes(t0, reversed(answers)) == 8.0
