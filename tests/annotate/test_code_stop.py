""" "Stop for now" gives the coder's leases back at once, and a crowd worker's "faces you can
still take" never promises more than their quota."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotate.assignment import assignments_take
from annotate.models import Assignment, AssignmentStatus, Face
from annotate.roles import Role
from annotate.services.crowd import crowd_link_create
from annotate.services.team import leases_release
from tests.factories import bare_faces, make_study, make_user

pytestmark = pytest.mark.django_db


def post(client, study, name, body=None):
    return client.post(
        reverse(f"annotate:{name}", args=[study.slug]),
        data=json.dumps(body or {}),
        content_type="application/json",
    )


@pytest.fixture
def study():
    return make_study(attributes_asked=[], votes_per_face=1)


def test_stop_frees_the_coders_faces_for_another_coder_at_once(client, study):
    bare_faces(study, 2)
    first = make_user(Role.CODER, study=study)
    second = make_user(Role.CODER, study=study)
    client.force_login(first)
    held = {item["assignment"] for item in post(client, study, "code_next").json()["items"]}
    assert len(held) == 2
    client.force_login(second)
    assert post(client, study, "code_next").json()["items"] == []  # K = 1: all faces taken

    client.force_login(first)
    reply = post(client, study, "code_stop")
    assert reply.status_code == 200, reply.content
    assert reply.json()["released"] == 2
    assert reply.json()["progress"] == {"today": 0, "total": 0, "available": 2}
    assert set(Assignment.objects.filter(pk__in=held).values_list("status", flat=True)) == {
        AssignmentStatus.RELEASED
    }
    assert list(Face.objects.values_list("slots_taken", flat=True)) == [0, 0]

    client.force_login(second)
    assert len(post(client, study, "code_next").json()["items"]) == 2


def test_stop_without_leases_is_fine(client, study):
    coder = make_user(Role.CODER, study=study)
    client.force_login(coder)
    reply = post(client, study, "code_stop")
    assert reply.status_code == 200
    assert reply.json()["released"] == 0
    assert leases_release(study=study, user=coder) == 0


def test_stop_leaves_other_coders_and_other_studies_leases_alone(client, study):
    other_study = make_study(attributes_asked=[], votes_per_face=1)
    bare_faces(study, 4)
    bare_faces(other_study, 2)
    coder = make_user(Role.CODER, study=study)
    other = make_user(Role.CODER, study=study)
    other_study.members.add(coder)
    client.force_login(other)
    theirs = {item["assignment"] for item in post(client, study, "code_next").json()["items"]}
    client.force_login(coder)
    post(client, study, "code_next")
    elsewhere = {
        item["assignment"] for item in post(client, other_study, "code_next").json()["items"]
    }
    assert post(client, study, "code_stop").json()["released"] == 2
    kept = Assignment.objects.filter(pk__in=theirs | elsewhere, status=AssignmentStatus.LEASED)
    assert kept.count() == len(theirs | elsewhere) == 4


def test_stop_needs_post_and_membership(client, study):
    outsider = make_user(Role.CODER)
    client.force_login(outsider)
    assert post(client, study, "code_stop").status_code == 403
    member = make_user(Role.CODER, study=study)
    client.force_login(member)
    assert client.get(reverse("annotate:code_stop", args=[study.slug])).status_code == 405


def test_stop_needs_the_csrf_token(study):
    bare_faces(study, 1)
    coder = make_user(Role.CODER, study=study)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(coder)
    leases_held = assignments_take(study=study, coder=coder)
    assert post(browser, study, "code_stop").status_code == 403
    assert (
        Assignment.objects.filter(
            pk__in=[a.pk for a in leases_held], status=AssignmentStatus.LEASED
        ).count()
        == len(leases_held)
        == 1
    )


def test_the_coding_page_knows_where_to_stop(client, study):
    client.force_login(make_user(Role.CODER, study=study))
    html = client.get(reverse("annotate:code", args=[study.slug])).content.decode()
    assert f'data-stop-url="{reverse("annotate:code_stop", args=[study.slug])}"' in html


def test_a_crowd_workers_available_faces_are_capped_by_their_quota(client, study):
    bare_faces(study, 6)
    researcher = make_user(Role.RESEARCHER, study=study)
    _, token = crowd_link_create(study=study, faces_per_worker=3, created_by=researcher)
    client.get(reverse("annotate:crowd_start", args=[token]), {"PROLIFIC_PID": "cap1"})

    data = post(client, study, "code_next").json()
    assert data["progress"]["available"] == 3  # 6 open faces, but a quota of 3
    item = data["items"][0]
    reply = post(client, study, "code_submit", {"assignment": item["assignment"], "gender": "male"})
    assert reply.json()["progress"]["available"] == 2
    assert post(client, study, "code_undo").json()["progress"]["available"] == 3
    assert post(client, study, "code_stop").json()["progress"]["available"] == 3
    html = client.get(reverse("annotate:code", args=[study.slug])).content.decode()
    assert 'data-testid="available">3<' in html
