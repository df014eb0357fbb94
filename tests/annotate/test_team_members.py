"""The team page and annotate.services.team: pause, resume and removal take effect at once,
on work (leases, votes), pages and media."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotate.access import NOT_A_MEMBER, PAUSED
from annotate.models import (
    Assignment,
    AssignmentStatus,
    Face,
    MemberRole,
    Membership,
    Vote,
)
from annotate.roles import Role, user_roles
from annotate.services.team import member_add, member_pause, member_remove, member_resume
from annotate.views.studies import NO_SUCH_USER
from tests.factories import make_faces, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study(attributes_asked=[], votes_per_face=2)


@pytest.fixture
def researcher(study):
    return make_user(Role.RESEARCHER, study=study)


@pytest.fixture
def coder(study):
    return make_user(Role.CODER, study=study)


def _post_json(client, study, name, body=None):
    return client.post(
        reverse(f"annotate:{name}", args=[study.slug]),
        data=json.dumps(body or {}),
        content_type="application/json",
    )


def _take(client, study) -> dict:
    response = _post_json(client, study, "code_next")
    assert response.status_code == 200, response.content
    return response.json()["items"][0]


def _team(client, study, **data):
    return client.post(reverse("annotate:study_members", args=[study.slug]), data)


# --- the page ------------------------------------------------------------------------------


def test_team_page_lists_members_with_role_state_and_faces_coded(client, study, researcher, coder):
    (face,) = make_faces(study, 1)
    coder_client = Client()
    coder_client.force_login(coder)
    item = _take(coder_client, study)
    vote = _post_json(
        coder_client, study, "code_submit", {"assignment": item["assignment"], "gender": "female"}
    )
    assert vote.status_code == 200, vote.content
    member_pause(study=study, user=coder, reason="gold accuracy 40 %")
    client.force_login(researcher)
    page = client.get(reverse("annotate:study_members", args=[study.slug])).content.decode()
    row = page.split(f'data-username="{coder.username}"')[1].split("</tr>")[0]
    assert "Coder" in row and "Paused since" in row and "gold accuracy 40 %" in row
    assert "<td>1</td>" in row
    row = page.split(f'data-username="{researcher.username}"')[1].split("</tr>")[0]
    assert "Researcher" in row and "Active" in row


def test_add_an_existing_user_by_username_with_a_role(client, study, researcher):
    newcomer = make_user(None, username="lena")
    client.force_login(researcher)
    response = _team(client, study, **{"add-username": "lena", "add-role": "researcher"})
    assert response.status_code == 302
    assert Membership.objects.get(study=study, user=newcomer).role == MemberRole.RESEARCHER
    newcomer.refresh_from_db()
    assert Role.RESEARCHER in user_roles(newcomer)


def test_adding_an_unknown_username_says_so_and_adds_nobody(client, study, researcher):
    client.force_login(researcher)
    response = _team(client, study, **{"add-username": "ghost", "add-role": "coder"})
    assert response.status_code == 200
    assert NO_SUCH_USER.format(username="ghost").replace("'", "&#x27;") in response.content.decode()
    assert Membership.objects.filter(study=study).count() == 1


def test_only_the_studys_researchers_and_admins_open_the_team_page(client, study, coder):
    url = reverse("annotate:study_members", args=[study.slug])
    client.force_login(coder)
    assert client.get(url).status_code == 403
    client.force_login(make_user(Role.RESEARCHER, study=make_study()))
    assert client.get(url).status_code == 403
    assert _team(client, study, action="remove", user=str(coder.pk)).status_code == 403
    assert Membership.objects.filter(study=study, user=coder).exists()
    client.force_login(make_user(Role.ADMIN))
    assert client.get(url).status_code == 200


def test_team_actions_need_the_csrf_token(study, researcher, coder):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    response = _team(client, study, action="remove", user=str(coder.pk))
    assert response.status_code == 403
    assert Membership.objects.filter(study=study, user=coder).exists()


# --- pause and resume ------------------------------------------------------------------------


def test_a_paused_coder_gets_no_new_faces_and_is_told_why(client, study, researcher, coder):
    (face,) = make_faces(study, 1)
    client.force_login(coder)
    item = _take(client, study)
    staff = Client()
    staff.force_login(researcher)
    assert (
        _team(staff, study, action="pause", user=str(coder.pk), reason="too fast").status_code
        == 302
    )
    # The lease they held went back to the pool.
    assert Assignment.objects.get(pk=item["assignment"]).status == AssignmentStatus.RELEASED
    assert Face.objects.get(pk=face.pk).slots_taken == 0
    response = _post_json(client, study, "code_next")
    assert response.status_code == 403
    assert response.json()["error"] == PAUSED.format(reason="too fast")
    assert client.get(reverse("home")).content.count(b'data-testid="paused"') == 1
    assert _team(staff, study, action="resume", user=str(coder.pk)).status_code == 302
    assert _take(client, study)["assignment"] != item["assignment"]


def test_pause_and_resume_are_idempotent_and_refuse_non_members(study, coder):
    member_pause(study=study, user=coder, reason="first")
    first = Membership.objects.get(study=study, user=coder).paused_at
    member_pause(study=study, user=coder, reason="second")
    membership = Membership.objects.get(study=study, user=coder)
    assert (membership.paused_at, membership.paused_reason) == (first, "second")
    member_resume(study=study, user=coder)
    member_resume(study=study, user=coder)
    assert not Membership.objects.get(study=study, user=coder).is_paused
    with pytest.raises(Membership.DoesNotExist, match="is not a member"):
        member_pause(study=study, user=make_user(Role.CODER), reason="x")


def test_member_add_is_idempotent_and_changes_the_role(study, coder):
    member_add(study=study, user=coder, role=MemberRole.CODER)
    assert Membership.objects.filter(study=study, user=coder).count() == 1
    member_add(study=study, user=coder, role=MemberRole.RESEARCHER)
    assert Membership.objects.get(study=study, user=coder).role == MemberRole.RESEARCHER


# --- removal ---------------------------------------------------------------------------------


def test_a_coder_removed_mid_lease_loses_the_lease_and_the_vote_is_refused(
    client, study, researcher, coder
):
    (face,) = make_faces(study, 1)
    client.force_login(coder)
    item = _take(client, study)
    crop = item["crop"]
    assert client.get(crop).status_code == 200
    staff = Client()
    staff.force_login(researcher)
    assert _team(staff, study, action="remove", user=str(coder.pk)).status_code == 302
    assert not Membership.objects.filter(study=study, user=coder).exists()
    assert Assignment.objects.get(pk=item["assignment"]).status == AssignmentStatus.RELEASED
    assert Face.objects.get(pk=face.pk).slots_taken == 0
    # Same session, same page: the vote is refused with a message the coding page shows.
    response = _post_json(
        client, study, "code_submit", {"assignment": item["assignment"], "gender": "male"}
    )
    assert response.status_code == 403
    assert response.json() == {"error": NOT_A_MEMBER}
    assert not Vote.objects.exists()
    assert _post_json(client, study, "code_next").json() == {"error": NOT_A_MEMBER}
    assert client.get(reverse("annotate:code", args=[study.slug])).status_code == 403
    assert client.get(crop).status_code == 404
    assert client.get(reverse("annotate:face_source", args=[face.pk])).status_code == 404
    # The face is free for someone else at once.
    other = make_user(Role.CODER, study=study)
    client.force_login(other)
    assert _take(client, study)["crop"] == crop


def test_a_removed_researcher_loses_pages_and_media_at_once(client, study, researcher):
    (face,) = make_faces(study, 1)
    client.force_login(researcher)
    pages = [
        reverse("annotate:study_detail", args=[study.slug]),
        reverse("annotate:study_members", args=[study.slug]),
    ]
    crop = reverse("annotate:face_crop", args=[face.pk])
    assert [client.get(url).status_code for url in [*pages, crop]] == [200, 200, 200]
    member_remove(study=study, user=researcher)
    assert [client.get(url).status_code for url in [*pages, crop]] == [403, 403, 404]


def test_researchers_cannot_remove_themselves(client, study, researcher):
    client.force_login(researcher)
    _team(client, study, action="remove", user=str(researcher.pk))
    assert Membership.objects.filter(study=study, user=researcher).exists()


def test_removal_keeps_the_votes_already_given(study, coder):
    (face,) = make_faces(study, 1)
    client = Client()
    client.force_login(coder)
    item = _take(client, study)
    _post_json(client, study, "code_submit", {"assignment": item["assignment"], "gender": "female"})
    member_remove(study=study, user=coder)
    assert Vote.objects.filter(face=face, coder=coder, retracted_at__isnull=True).count() == 1
    assert Face.objects.get(pk=face.pk).slots_taken == 1


# --- the migration ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_0009_keeps_every_member_and_gives_researchers_their_role():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("annotate", "0008_admin_votes")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldStudy = old.get_model("annotate", "Study")
        User, Group = old.get_model("auth", "User"), old.get_model("auth", "Group")
        study = OldStudy.objects.create(slug="legacy", title="Legacy")
        researcher = User.objects.create(username="old-researcher")
        coder = User.objects.create(username="old-coder")
        researcher.groups.add(Group.objects.get_or_create(name="researcher")[0])
        coder.groups.add(Group.objects.get_or_create(name="coder")[0])
        study.members.add(researcher, coder)
        MigrationExecutor(connection).migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)

    roles = dict(
        Membership.objects.filter(study__slug="legacy").values_list("user__username", "role")
    )
    assert roles == {"old-researcher": "researcher", "old-coder": "coder"}
    assert all(m.added_at and not m.is_paused for m in Membership.objects.all())


def test_a_paused_coder_does_not_hold_a_split_face_open(study, coder):
    from django.utils import timezone

    from annotate.selectors.waiting import extra_vote_outlook

    (face,) = make_faces(study, 1)
    assert extra_vote_outlook(face=face, now=timezone.now()) == (False, True)
    member_pause(study=study, user=coder, reason="away")
    assert extra_vote_outlook(face=face, now=timezone.now()) == (False, False)
