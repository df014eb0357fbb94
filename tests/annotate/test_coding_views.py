"""The coder's endpoints: bad input, blinding, object-level checks, a database error mid-vote."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.models import Assignment, AssignmentStatus, Face, Vote
from annotate.roles import Role
from annotate.selectors.coding import PAYLOAD_KEYS
from annotate.services.coding import (
    LEASE_LOST,
    NOT_YOUR_ASSIGNMENT,
    UNDO_EXPIRED,
    UNEXPECTED_FIELD,
)
from annotate.views.coding import VOTE_NOT_SAVED
from modeling.models import ModelVersion, Prediction
from tests.annotate.coding_helpers import answers_for, vote_next
from tests.factories import bare_faces, make_faces, make_source_image, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=["glasses"])


@pytest.fixture
def coder(study):
    return make_user(Role.CODER, study=study)


def post(client, study, name, body=None, **extra):
    return client.post(
        reverse(f"annotate:{name}", args=[study.slug]),
        data=json.dumps(body if body is not None else {}),
        content_type="application/json",
        **extra,
    )


def take(client, study):
    response = post(client, study, "code_next")
    assert response.status_code == 200, response.content
    return response.json()["items"]


def submit(client, study, assignment_id, **answers):
    body = {"assignment": assignment_id, "gender": "female", "glasses": "none", **answers}
    return post(client, study, "code_submit", body)


def live_votes(**filters):
    return Vote.objects.filter(retracted_at__isnull=True, **filters)


def test_coder_page_shows_one_key_per_answer_and_the_asked_attribute(client, study, coder):
    client.force_login(coder)
    html = client.get(reverse("annotate:code", args=[study.slug])).content.decode()
    for key in ("<kbd>F</kbd>", "<kbd>M</kbd>", "<kbd>C</kbd>", "<kbd>N</kbd>", "Glasses"):
        assert key in html
    assert "Perceived race" not in html  # not asked by this study


def test_a_coder_who_is_not_a_member_is_refused(client, study):
    outsider = make_user(Role.CODER)
    client.force_login(outsider)
    assert client.get(reverse("annotate:code", args=[study.slug])).status_code == 403
    response = post(client, study, "code_next")
    assert response.status_code == 403 and not Assignment.objects.exists()


def test_submit_records_one_vote_and_hands_out_the_next_faces(client, study, coder):
    bare_faces(study, 4)
    client.force_login(coder)
    items = take(client, study)
    assert len(items) == 2
    response = submit(client, study, items[0]["assignment"], seconds=2.5)
    data = response.json()
    assert response.status_code == 200 and data["ok"] and not data["duplicate"]
    assert data["items"][0]["assignment"] == items[1]["assignment"]
    vote = live_votes(coder=coder).get()
    assert (vote.gender, vote.glasses, vote.seconds_taken) == ("female", "none", 2.5)


def test_double_submit_is_idempotent(client, study, coder):
    bare_faces(study, 2)
    client.force_login(coder)
    first = take(client, study)[0]["assignment"]
    one = submit(client, study, first).json()
    two = submit(client, study, first, gender="male").json()
    assert two["duplicate"] and two["vote"] == one["vote"]
    assert live_votes(coder=coder).count() == 1
    assert live_votes(coder=coder).get().gender == "female"


def test_late_vote_is_accepted_while_the_slot_is_still_free(client, study, coder):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    Assignment.objects.filter(pk=item["assignment"]).update(
        expires_at=timezone.now() - timedelta(minutes=1), status=AssignmentStatus.EXPIRED
    )
    Face.objects.update(slots_taken=0)  # as the reclaim sweep leaves it
    response = submit(client, study, item["assignment"])
    assert response.status_code == 200 and response.json()["late"]
    face = Face.objects.get()
    assert face.slots_taken == 1 and live_votes().count() == 1


def test_late_vote_on_a_face_others_filled_is_refused_with_a_clear_message(client, study, coder):
    (face,) = bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    Assignment.objects.filter(pk=item["assignment"]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    others = [make_user(Role.CODER, study=study) for _ in range(3)]
    for other in others:
        vote_next(study, other)  # the first call reclaims the expired lease
    response = submit(client, study, item["assignment"])
    assert response.status_code == 409
    data = response.json()
    assert data["error"] == LEASE_LOST and data["items"] == []
    assert not live_votes(coder=coder).exists()
    face.refresh_from_db()
    assert face.slots_taken == 3 and live_votes(face=face).count() == 3


def test_vote_on_a_face_not_assigned_to_this_coder_is_refused(client, study, coder):
    bare_faces(study, 2)
    other = make_user(Role.CODER, study=study)
    client.force_login(other)
    theirs = take(client, study)[0]["assignment"]
    client.force_login(coder)
    response = submit(client, study, theirs)
    assert response.status_code == 403 and response.json()["error"] == NOT_YOUR_ASSIGNMENT
    assert not Vote.objects.exists()
    assert Assignment.objects.get(pk=theirs).status == AssignmentStatus.LEASED


def test_a_coder_cannot_see_another_coders_source_image(client, study, coder):
    image = make_source_image(study)
    make_faces(study, 1, source_image=image, box_x=10, box_y=10, box_w=40, box_h=40)
    other = make_user(Role.CODER, study=study)
    client.force_login(other)
    item = take(client, study)[0]
    assert client.get(item["source"]).status_code == 200
    assert client.get(item["source"])["Content-Type"] == "image/jpeg"
    client.force_login(coder)
    assert client.get(item["source"]).status_code == 404


def test_undo_acts_only_on_the_coders_own_last_vote(client, study, coder):
    bare_faces(study, 2)
    other = make_user(Role.CODER, study=study)
    vote_next(study, other)
    client.force_login(coder)
    response = post(client, study, "code_undo")
    assert response.status_code == 400
    assert live_votes(coder=other).count() == 1
    items = take(client, study)
    submit(client, study, items[0]["assignment"])
    response = post(client, study, "code_undo")
    assert response.status_code == 200
    assert response.json()["item"]["assignment"] == items[0]["assignment"]
    assert not live_votes(coder=coder).exists() and Vote.objects.filter(coder=coder).count() == 1
    assert submit(client, study, items[0]["assignment"], gender="male").status_code == 200
    assert live_votes(coder=coder).get().gender == "male"


def test_undo_after_the_lease_ran_out_is_refused(client, study, coder):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    submit(client, study, item["assignment"])
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = post(client, study, "code_undo")
    assert response.status_code == 409 and response.json()["error"] == UNDO_EXPIRED
    assert live_votes(coder=coder).count() == 1


@pytest.mark.parametrize(
    "answers,status",
    [
        ({"gender": "woman"}, 400),  # unknown label
        ({"glasses": "monocle"}, 400),  # unknown attribute value
        ({"glasses": ""}, 400),  # asked attribute missing
        ({"race": "white"}, 400),  # attribute the study does not ask
        ({"coder": "1"}, 400),  # tampered field
        ({"face": "1"}, 400),
        ({"gender": ["female"]}, 400),
        ({"seconds": "NaN"}, 400),
        ({"seconds": -3}, 400),
    ],
)
def test_bad_answers_are_refused_and_write_nothing(client, study, coder, answers, status):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    response = submit(client, study, item["assignment"], **answers)
    assert response.status_code == status and response.json()["error"]
    assert not Vote.objects.exists()
    assert Assignment.objects.get(pk=item["assignment"]).status == AssignmentStatus.LEASED
    assert submit(client, study, item["assignment"]).status_code == 200  # nothing was lost


def test_tampered_field_message_names_the_field(client, study, coder):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    response = submit(client, study, item["assignment"], coder="7")
    assert response.json()["error"] == UNEXPECTED_FIELD.format(field="coder")


def test_not_a_face_needs_no_attributes(client, study, coder):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    body = {"assignment": item["assignment"], "gender": "not_face"}
    assert post(client, study, "code_submit", body).status_code == 200
    assert live_votes().get().glasses == ""


def test_endpoints_require_the_csrf_token(study, coder):
    from django.test import Client

    bare_faces(study, 1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(coder)
    assert post(client, study, "code_next").status_code == 403
    page = client.get(reverse("annotate:code", args=[study.slug]))
    token = page.cookies["csrftoken"].value
    assert post(client, study, "code_next", HTTP_X_CSRFTOKEN=token).status_code == 200


# --- blinding --------------------------------------------------------------------------


def test_coder_sees_no_other_votes_consensus_or_predictions(client, study, coder):
    (face,) = bare_faces(study, 1)
    others = [make_user(Role.CODER, study=study, username=f"otherperson{i}") for i in range(2)]
    for other in others:
        vote_next(study, other, gender="male")
    version = ModelVersion.objects.create(
        study=study, number=1, backbone="resnet18", weights="none", is_active=True
    )
    Prediction.objects.create(face=face, version=version, probability=0.8731, label="female")
    client.force_login(coder)
    page = client.get(reverse("annotate:code", args=[study.slug])).content.decode()
    responses = [post(client, study, "code_next").content.decode()]
    (item,) = json.loads(responses[0])["items"]
    assert set(item) == set(PAYLOAD_KEYS)
    responses.append(submit(client, study, item["assignment"]).content.decode())
    responses.append(post(client, study, "code_undo").content.decode())
    for text in [page, *responses]:
        lowered = text.lower()
        for secret in ("otherperson", "0.8731", "87.3", "probab", "consensus", "counts"):
            assert secret not in lowered, (secret, text[:400])
        assert "agreement" not in lowered
    for text in responses:  # the page itself offers "male" as a button; the data never does
        assert '"male"' not in text and '"female"' not in text


# --- a real database error during a vote -----------------------------------------------


def test_a_database_error_during_a_vote_rolls_back_and_the_coder_can_resubmit(client, study, coder):
    (face,) = bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    failures = []

    def failing_vote_insert(execute, sql, params, many, context):
        if 'INSERT INTO "annotate_vote"' in sql or "INSERT INTO annotate_vote" in sql:
            failures.append(sql)
            # A real error from the database itself, not a Python exception of ours.
            return execute("SELECT * FROM facet_no_such_table", (), False, context)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(failing_vote_insert):
        response = submit(client, study, item["assignment"])
    assert failures and response.status_code == 503
    assert response.json()["error"] == VOTE_NOT_SAVED
    assert not Vote.objects.exists()
    assignment = Assignment.objects.get(pk=item["assignment"])
    assert assignment.status == AssignmentStatus.LEASED and assignment.submitted_at is None
    face.refresh_from_db()
    assert face.slots_taken == 1
    again = submit(client, study, item["assignment"])
    assert again.status_code == 200 and not again.json()["duplicate"]
    assert live_votes().count() == 1
    assert submit(client, study, item["assignment"]).json()["duplicate"]
    assert live_votes().count() == 1


def test_a_database_error_at_consensus_rolls_back_the_kth_vote(client, study, coder):
    (face,) = bare_faces(study, 1)
    for _ in range(2):
        vote_next(study, make_user(Role.CODER, study=study))
    client.force_login(coder)
    (item,) = take(client, study)

    def failing_consensus(execute, sql, params, many, context):
        if "annotate_consensus" in sql and not sql.lstrip().upper().startswith("SELECT"):
            return execute("SELECT * FROM facet_no_such_table", (), False, context)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(failing_consensus):
        assert submit(client, study, item["assignment"]).status_code == 503
    assert live_votes(face=face).count() == 2
    face.refresh_from_db()
    assert face.coding_status == "open"
    assert submit(client, study, item["assignment"]).status_code == 200
    face.refresh_from_db()
    assert face.coding_status == "complete" and live_votes(face=face).count() == 3


# --- arbitrary payloads ----------------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["female", "male", "cant_tell", "not_face", "none", "glasses", "1", "0"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
KEYS = st.one_of(
    st.sampled_from(["assignment", "gender", "glasses", "seconds", "race", "coder", "face"]),
    st.text(max_size=12),
)


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=st.one_of(st.dictionaries(KEYS, VALUES, max_size=6), VALUES),
    use_real_assignment=st.booleans(),
)
def test_arbitrary_vote_payloads_never_fail_the_server_or_write_partially(
    client, study, coder, payload, use_real_assignment
):
    if not Face.objects.filter(study=study).exists():
        bare_faces(study, 40)
        make_user(Role.CODER, study=study)
    client.force_login(coder)
    items = take(client, study)
    if use_real_assignment and isinstance(payload, dict) and items:
        payload = {**payload, "assignment": items[0]["assignment"]}
    votes_before = Vote.objects.count()
    slots_before = sorted(Face.objects.values_list("pk", "slots_taken"))
    response = post(client, study, "code_submit", payload)
    assert response.status_code in {200, 400, 403, 409}, response.content
    assert "error" in response.json() or response.json()["ok"]
    if response.status_code == 200 and not response.json()["duplicate"]:
        assert Vote.objects.count() == votes_before + 1
    else:
        assert Vote.objects.count() == votes_before
        after = dict(Face.objects.values_list("pk", "slots_taken"))
        # No slot changed except by fresh leases handed out with the error reply.
        assert all(after[pk] >= taken for pk, taken in slots_before)
    held = Assignment.objects.filter(status__in=["leased", "submitted"])
    for face in Face.objects.filter(study=study):
        assert face.slots_taken == held.filter(face=face).count() <= face.votes_target


@pytest.mark.parametrize(
    "body", [b"", b"{", b"\xff\xfe", b"[1,2]", b'"text"', b"null", b'{"assignment": 1e400}']
)
def test_bodies_that_are_not_a_json_object_are_refused(client, study, coder, body):
    bare_faces(study, 1)
    client.force_login(coder)
    response = client.post(
        reverse("annotate:code_submit", args=[study.slug]),
        data=body,
        content_type="application/json",
    )
    assert response.status_code == 400 and not Vote.objects.exists()


def test_form_encoded_votes_work_too(client, study, coder):
    bare_faces(study, 1)
    client.force_login(coder)
    (item,) = take(client, study)
    response = client.post(
        reverse("annotate:code_submit", args=[study.slug]),
        {"assignment": item["assignment"], **answers_for(study)},
    )
    assert response.status_code == 200 and live_votes().count() == 1
