"""Study set-up without the admin: the web form and `manage.py study`, one set of rules; slugs
checked everywhere; a user's role is per study."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import get_resolver, reverse
from django.utils.html import escape

from annotate.access import ACCESS_ATTRIBUTE, NOT_A_RESEARCHER
from annotate.labels import Gender
from annotate.models import (
    SLUG_RESERVED,
    UNKNOWN_ATTRIBUTE,
    Face,
    MemberRole,
    Membership,
    Study,
    StudySummary,
)
from annotate.roles import Role, user_roles
from annotate.services.studies import STUDY_SETTINGS, study_create, study_update
from tests.factories import (
    bare_faces,
    faces_code,
    make_faces,
    make_member,
    make_study,
    make_user,
    votes_cast,
)
from tests.test_access_matrix import ROUTES, _concrete

pytestmark = pytest.mark.django_db


def _form(**overrides) -> dict:
    data = {
        "slug": "gender-2024",
        "title": "Gender in job ads",
        "description": "Search results for job titles.",
        "instructions": "Answer what you see; skip what you cannot tell.",
        "votes_per_face": "3",
        "lease_minutes": "10",
        "attributes_asked": ["race", "glasses"],
        "aggregation": "majority",
        "min_face_px": "24",
        "escalation_wait_minutes": "60",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- the home page and invalid slugs ------------------------------------------------------


def test_home_page_survives_a_study_whose_slug_no_url_can_carry(client):
    # Saved without validation (the shell, make_demo_data --study "job ads" before this fix):
    # reverse() cannot build its link and the home page answered 500.
    legacy = Study.objects.create(slug="job ads", title="Legacy")
    researcher = make_user(Role.RESEARCHER, study=legacy)
    coder = make_user(Role.CODER, study=legacy)
    client.force_login(researcher)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b'data-testid="bad-slug"' in response.content
    client.force_login(coder)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b"invalid" in response.content


def test_make_demo_data_refuses_a_slug_no_url_can_carry():
    with pytest.raises(CommandError, match="slug"):
        call_command("make_demo_data", "--study", "job ads", "--faces", "2")
    assert not Study.objects.exists()


# --- creating and editing in the browser ---------------------------------------------------


def test_researcher_creates_a_study_and_becomes_its_researcher(client):
    researcher = make_user(Role.RESEARCHER)
    client.force_login(researcher)
    assert reverse("annotate:study_new").encode() in client.get(reverse("home")).content
    response = client.post(reverse("annotate:study_new"), _form())
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:study_members", args=["gender-2024"])
    study = Study.objects.get(slug="gender-2024")
    assert study.instructions == "Answer what you see; skip what you cannot tell."
    assert study.attributes_asked == ["race", "glasses"]
    assert Membership.objects.get(study=study, user=researcher).role == MemberRole.RESEARCHER
    page = client.get(reverse("annotate:study_detail", args=[study.slug])).content
    assert reverse("annotate:study_edit", args=[study.slug]).encode() in page
    assert reverse("annotate:study_members", args=[study.slug]).encode() in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"slug": "job ads"}, "slug", "Enter a valid “slug”"),
        ({"slug": "new"}, "slug", SLUG_RESERVED.format(value="new")),
        ({"votes_per_face": "0"}, "votes_per_face", "greater than or equal to 1"),
        ({"lease_minutes": "0"}, "lease_minutes", "greater than or equal to 1"),
        ({"title": ""}, "title", "This field is required."),
        ({"attributes_asked": ["hair"]}, "attributes_asked", "Select a valid choice"),
    ],
)
def test_the_form_refuses_bad_settings_with_a_message_and_creates_nothing(
    client, overrides, field, message
):
    client.force_login(make_user(Role.RESEARCHER))
    response = client.post(reverse("annotate:study_new"), _form(**overrides))
    assert response.status_code == 200
    errors = response.context["form"].errors[field]
    assert any(message in error for error in errors), errors
    assert escape(message).encode() in response.content
    assert not Study.objects.exists()


def test_a_taken_slug_is_refused(client):
    make_study("gender-2024")
    client.force_login(make_user(Role.RESEARCHER))
    response = client.post(reverse("annotate:study_new"), _form())
    assert "already exists" in " ".join(response.context["form"].errors["slug"])
    assert Study.objects.count() == 1


def test_coders_cannot_create_studies(client):
    client.force_login(make_user(Role.CODER))
    assert client.post(reverse("annotate:study_new"), _form()).status_code == 403
    assert not Study.objects.exists()


def test_editing_raises_k_for_faces_still_open(client):
    study = make_study(votes_per_face=2)
    open_face, decided = make_faces(study, 2)
    faces_code({decided.pk: {"gender": Gender.FEMALE}})
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    assert client.get(reverse("annotate:study_edit", args=[study.slug])).status_code == 200
    response = client.post(
        reverse("annotate:study_edit", args=[study.slug]),
        _form(slug=None, votes_per_face="4", title="Renamed"),
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.votes_per_face, study.title, study.slug) == (4, "Renamed", study.slug)
    assert Face.objects.get(pk=open_face.pk).votes_target == 4
    assert Face.objects.get(pk=decided.pk).votes_target == 2


def test_k_cannot_drop_below_the_votes_already_given(client):
    study = make_study(votes_per_face=3)
    (face,) = make_faces(study, 1)
    coders = [make_user(Role.CODER, study=study) for _ in range(2)]
    votes_cast(face.pk, [{"gender": Gender.FEMALE}] * 2, coders=coders)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.post(
        reverse("annotate:study_edit", args=[study.slug]), _form(slug=None, votes_per_face="2")
    )
    assert response.status_code == 200
    error = " ".join(response.context["form"].errors["votes_per_face"])
    assert "cannot drop below 3" in error
    study.refresh_from_db()
    assert study.votes_per_face == 3
    assert Face.objects.get(pk=face.pk).votes_target == 3


def test_k_may_drop_to_a_value_faces_still_need_more_votes_for():
    study = make_study(votes_per_face=4)
    (face,) = make_faces(study, 1)
    votes_cast(face.pk, [{"gender": Gender.FEMALE}], coders=[make_user(Role.CODER, study=study)])
    study_update(study=study, votes_per_face=2)
    assert Face.objects.get(pk=face.pk).votes_target == 2


def test_only_researchers_of_the_study_edit_it(client):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=make_study()))
    assert client.get(reverse("annotate:study_edit", args=[study.slug])).status_code == 403


def test_admins_see_and_edit_every_study(client):
    study = make_study()
    client.force_login(make_user(Role.ADMIN))
    assert study.title.encode() in client.get(reverse("home")).content
    assert client.get(reverse("annotate:study_edit", args=[study.slug])).status_code == 200


# --- the command line ------------------------------------------------------------------------


def test_study_create_add_member_and_show(capsys):
    coder = make_user(None, username="ana")
    call_command(
        "study", "create", "ads-2024", "--title", "Job ads", "--k", "4",
        "--attributes", "race,glasses",
    )  # fmt: skip
    study = Study.objects.get(slug="ads-2024")
    assert (study.title, study.votes_per_face, study.attributes_asked) == (
        "Job ads",
        4,
        ["race", "glasses"],
    )
    call_command("study", "add-member", "ads-2024", "ana", "--role", "coder")
    membership = Membership.objects.get(study=study, user=coder)
    assert membership.role == MemberRole.CODER
    coder.refresh_from_db()
    assert Role.CODER in user_roles(coder)
    capsys.readouterr()
    call_command("study", "show", "ads-2024")
    shown = capsys.readouterr().out
    assert "votes per face (K): 4" in shown
    assert "admin votes in agreement: left out" in shown
    assert "attributes asked: race, glasses" in shown
    assert "ana: coder, active, 0 faces coded" in shown
    assert "0 faces" in shown


def test_study_create_takes_every_setting_of_the_web_form(capsys):
    call_command(
        "study", "create", "full", "--title", "Full", "--description", "About.",
        "--instructions", "Look closely.", "--k", "2", "--attributes", "",
        "--aggregation", "dawid_skene", "--lease-minutes", "5", "--min-face-px", "40",
        "--escalation-wait-minutes", "0", "--allow-admin-votes",
    )  # fmt: skip
    study = Study.objects.get(slug="full")
    settings = {name: getattr(study, name) for name in STUDY_SETTINGS}
    assert settings == {
        "title": "Full",
        "description": "About.",
        "instructions": "Look closely.",
        "votes_per_face": 2,
        "lease_minutes": 5,
        "attributes_asked": [],
        "aggregation": "dawid_skene",
        "min_face_px": 40,
        "escalation_wait_minutes": 0,
        "allow_admin_votes": True,
    }
    call_command("study", "create", "plain", "--title", "Plain")
    plain = Study.objects.get(slug="plain")
    assert (plain.min_face_px, plain.escalation_wait_minutes) == (
        Study._meta.get_field("min_face_px").default,
        Study._meta.get_field("escalation_wait_minutes").default,
    )


def test_refresh_summaries_stores_what_the_pages_show(capsys):
    study = make_study("big", votes_per_face=1)
    bare_faces(study, 3)
    assert not StudySummary.objects.filter(study=study).exists()
    call_command("study", "refresh-summaries", "big")
    assert "summaries of study 'big' refreshed" in capsys.readouterr().out
    overview = StudySummary.objects.get(study=study, kind=StudySummary.Kind.OVERVIEW)
    assert overview.figures["faces"] == 3 and overview.figures["faces_open"] == 3
    assert StudySummary.objects.filter(study=study, kind=StudySummary.Kind.AGREEMENT).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "job ads", "--title", "X"], "slug: Enter a valid"),
        (["create", "new", "--title", "X"], "is reserved"),
        (["create", "ok", "--title", "X", "--k", "0"], "votes_per_face: Ensure this value"),
        (["create", "ok", "--title", "X", "--min-face-px", "0"], "min_face_px: Ensure this value"),
        (
            ["create", "ok", "--title", "X", "--attributes", "race,hair"],
            UNKNOWN_ATTRIBUTE.format(name="hair", choices="race, age_band, glasses, quality"),
        ),
        (["create", "taken", "--title", "X"], "slug: Study with this Slug already exists."),
        (["add-member", "taken", "nobody", "--role", "coder"], "no user 'nobody'"),
        (["add-member", "nope", "nobody", "--role", "coder"], "no study 'nope'"),
        (["show", "nope"], "study create nope"),
        (["refresh-summaries", "nope"], "study create nope"),
    ],
)
def test_study_command_refuses_bad_input_in_one_line(args, message):
    make_study("taken")
    with pytest.raises(CommandError) as refused:
        call_command("study", *args)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert set(Study.objects.values_list("slug", flat=True)) == {"taken"}


def test_import_images_on_an_unknown_study_says_how_to_create_one(tmp_path):
    with pytest.raises(CommandError, match="python manage.py study create nope"):
        call_command("import_images", str(tmp_path), "--study", "nope")


def test_web_and_cli_share_one_rule_set():
    with pytest.raises(Exception, match="greater than or equal to 1"):
        study_create(slug="x", title="X", votes_per_face=0)
    with pytest.raises(ValueError, match="Unknown study setting 'slug'"):
        study_update(study=make_study(), slug="other")


# --- a user's role is per study ----------------------------------------------------------


def _researcher_routes():
    for route, pattern in ROUTES:
        rule = getattr(pattern.callback, ACCESS_ATTRIBUTE, None)
        if "<slug:slug>" in route and isinstance(rule, frozenset) and Role.CODER not in rule:
            yield route, pattern


def test_a_researcher_of_one_study_who_codes_in_another_cannot_open_its_researcher_pages(client):
    own, other = make_study("own"), make_study("other")
    person = make_user(Role.RESEARCHER, study=own)
    make_member(other, person, MemberRole.CODER)
    assert user_roles(person) >= {Role.RESEARCHER, Role.CODER}
    client.force_login(person)
    assert client.get(reverse("annotate:study_detail", args=["own"])).status_code == 200
    routes = list(_researcher_routes())
    assert len(routes) > 10
    for route, pattern in routes:
        url = _concrete(route, pattern).replace("no-such-thing", "other", 1)
        response = client.get(url)
        if response.status_code == 405:
            response = client.post(url)
        assert response.status_code in (403, 404), (route, response.status_code)
    response = client.get(reverse("annotate:study_detail", args=["other"]))
    assert NOT_A_RESEARCHER.encode() in response.content or response.status_code == 403
    # Their home page lists the study they code in under its coding link, not as a study to run.
    home = client.get(reverse("home")).content.decode()
    assert reverse("annotate:code", args=["other"]) in home
    assert reverse("annotate:study_detail", args=["other"]) not in home


def test_the_url_resolver_routes_new_to_the_form_not_a_study():
    assert get_resolver().resolve("/studies/new/").url_name == "study_new"
