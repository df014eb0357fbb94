"""The coder's live counts (today, in total, faces left to take) in the coding replies, what
an undo names, and what the counts cost a vote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotate.models import Face, Vote
from annotate.roles import Role
from annotate.selectors.coding import OPEN_COUNT_CAP, _today_start
from tests.annotate.coding_helpers import vote_next
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=["glasses"], votes_per_face=1)


@pytest.fixture
def coder(study):
    return make_user(Role.CODER, study=study)


def post(client, study, name, body=None):
    return client.post(
        reverse(f"annotate:{name}", args=[study.slug]),
        data=json.dumps(body or {}),
        content_type="application/json",
    )


def submit(client, study, assignment_id, gender="female"):
    body = {"assignment": assignment_id, "gender": gender, "glasses": "none"}
    response = post(client, study, "code_submit", body)
    assert response.status_code == 200, response.content
    return response.json()


def test_faces_left_are_counted_up_to_the_cap_and_exactly_below_it(client, study, coder):
    """Above OPEN_COUNT_CAP faces to take the reply says "100+" (it said 101 when the call
    claimed faces at the cap); at the cap or below, the exact number, held faces included."""
    faces = bare_faces(study, OPEN_COUNT_CAP + 2)
    client.force_login(coder)
    first = post(client, study, "code_next").json()
    assert first["progress"]["available"] == f"{OPEN_COUNT_CAP}+"
    held = {item["assignment"] for item in first["items"]}
    # One face coded by others, one by this vote: 100 open faces left, 2 of them held.
    Face.objects.filter(pk__in=[f.pk for f in faces[-1:]]).update(coding_status="complete")
    reply = submit(client, study, first["items"][0]["assignment"])
    assert reply["progress"]["available"] == OPEN_COUNT_CAP
    assert len(held) == 2


def test_submit_and_undo_replies_carry_counts_that_follow_the_votes(client, study, coder):
    bare_faces(study, 5)
    client.force_login(coder)
    first = post(client, study, "code_next").json()
    assert first["progress"] == {"today": 0, "total": 0, "available": 5}

    reply = submit(client, study, first["items"][0]["assignment"])
    assert reply["progress"] == {"today": 1, "total": 1, "available": 4}
    reply = submit(client, study, reply["items"][0]["assignment"], gender="male")
    assert reply["progress"] == {"today": 2, "total": 2, "available": 3}

    undone = post(client, study, "code_undo").json()
    assert undone["progress"] == {"today": 1, "total": 1, "available": 4}
    again = submit(client, study, undone["item"]["assignment"])
    assert again["progress"] == {"today": 2, "total": 2, "available": 3}
    # A double submit (the same answer sent twice) counts once.
    assert submit(client, study, undone["item"]["assignment"])["progress"]["total"] == 2


def test_votes_from_before_today_count_in_total_but_not_today(client, study, coder):
    bare_faces(study, 3)
    vote_next(study, coder)
    vote_next(study, coder)
    Vote.objects.filter(coder=coder).update(created_at=timezone.now() - timedelta(days=2))
    client.force_login(coder)
    assert post(client, study, "code_next").json()["progress"] == {
        "today": 0,
        "total": 2,
        "available": 1,
    }


def test_faces_other_coders_filled_are_not_left_to_take(client, study, coder):
    bare_faces(study, 3)
    other = make_user(Role.CODER, study=study)
    vote_next(study, other)  # K = 1: that face is finished
    client.force_login(coder)
    assert post(client, study, "code_next").json()["progress"]["available"] == 2


def test_the_coding_page_shows_the_counts(client, study, coder):
    bare_faces(study, 4)
    vote_next(study, coder)
    client.force_login(coder)
    html = client.get(reverse("annotate:code", args=[study.slug])).content.decode()
    assert 'data-testid="today">1<' in html and 'data-testid="done">1<' in html
    assert 'data-testid="available">3<' in html


def test_undo_names_the_answers_it_undid_in_words(client, study, coder):
    bare_faces(study, 2)
    client.force_login(coder)
    item = post(client, study, "code_next").json()["items"][0]
    post(
        client,
        study,
        "code_submit",
        {"assignment": item["assignment"], "gender": "male", "glasses": "sunglasses"},
    )
    undone = post(client, study, "code_undo").json()
    assert undone["undone"] == [
        {"question": "Gender", "answer": "Male"},
        {"question": "Glasses", "answer": "Sunglasses"},
    ]


def _submit_queries(client, study, assignment_id) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        submit(client, study, assignment_id)
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.postgres
def test_counts_ride_on_the_claim_of_the_next_faces_and_do_not_grow_with_votes(
    client, study, coder
):
    bare_faces(study, 12)
    client.force_login(coder)
    items = post(client, study, "code_next").json()["items"]
    first = _submit_queries(client, study, items[0]["assignment"])
    items = post(client, study, "code_next").json()["items"]
    for _ in range(6):  # more votes of this coder: the counts' cost stays the same
        items = submit(client, study, items[0]["assignment"])["items"]
    later = _submit_queries(client, study, items[0]["assignment"])
    assert len(later) == len(first)
    # No statement of its own: the counts are read by the statement that claims the faces.
    counting = [sql for sql in later if "COUNT(" in sql]
    assert len(counting) == 1 and "INSERT INTO annotate_assignment" in counting[0]


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/Sao_Paulo", "Australia/Lord_Howe"]
)
def test_todays_start_kept_per_process_is_the_local_midnight_of_each_time_asked(zone):
    # Hour by hour over a week around a daylight-saving change, with another zone in between.
    first = (
        datetime(2026, 3, 26, tzinfo=UTC) if "Berlin" in zone else datetime(2026, 4, 2, tzinfo=UTC)
    )
    with timezone.override(ZoneInfo(zone)):
        for hours in range(0, 7 * 24, 1):
            now = first + timedelta(hours=hours, minutes=17)
            midnight = datetime.combine(timezone.localdate(now), time.min)
            assert _today_start(now) == timezone.make_aware(midnight)
            if hours % 24 == 5:
                with timezone.override(ZoneInfo("Asia/Tokyo")):
                    tokyo = datetime.combine(timezone.localdate(now), time.min)
                    assert _today_start(now) == timezone.make_aware(tokyo)
