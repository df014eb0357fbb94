"""Invitation links and accounts from a CSV: who gets in, how often, and nothing half-made."""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotate.models import Invitation, MemberRole, Membership
from annotate.roles import Role, user_roles
from annotate.services.invitations import (
    INVITATION_EXPIRED,
    INVITATION_REVOKED,
    INVITATION_UNKNOWN,
    INVITATION_USED_UP,
    ROW_BAD_EMAIL,
    ROW_EMAIL_TWICE,
    ROW_NO_EMAIL,
    ROW_USERNAME_TAKEN,
    ROW_USERNAME_TWICE,
    InvitationError,
    invitation_accept,
    invitation_create,
    token_hash,
)
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "lantern-orbit-97"


@pytest.fixture
def study():
    return make_study("invites")


@pytest.fixture
def researcher(study):
    return make_user(Role.RESEARCHER, username="res", study=study)


def _invite(study, researcher, *, role=MemberRole.CODER, max_uses=1, days=7) -> str:
    _, token = invitation_create(
        study=study, role=role, days=days, max_uses=max_uses, created_by=researcher
    )
    return token


def _signup(client, token, username="newcoder", password=GOOD_PASSWORD):
    return client.post(
        reverse("annotate:invite_join", args=[token]),
        {"username": username, "password1": password, "password2": password},
    )


# --- making links -----------------------------------------------------------------------------


def test_researcher_makes_a_link_shown_once_and_only_its_hash_is_stored(client, study, researcher):
    client.force_login(researcher)
    response = client.post(
        reverse("annotate:invite_list", args=[study.slug]),
        {"role": "researcher", "days": 3, "max_uses": 5},
    )
    assert response.status_code == 200
    link = re.search(r'value="(http[^"]+/join/([^"/]+)/)"', response.content.decode())
    assert link, response.content.decode()[:2000]
    token = link.group(2)
    invitation = Invitation.objects.get()
    assert invitation.token_hash == token_hash(token) and token not in invitation.token_hash
    assert (invitation.role, invitation.max_uses, invitation.uses) == ("researcher", 5, 0)
    assert (
        token not in client.get(reverse("annotate:invite_list", args=[study.slug])).content.decode()
    )


def test_coders_and_researchers_of_other_studies_cannot_make_links(client, study):
    other = make_study("other")
    client.force_login(make_user(Role.RESEARCHER, study=other))
    url = reverse("annotate:invite_list", args=[study.slug])
    assert client.post(url, {"role": "coder", "days": 3, "max_uses": 1}).status_code == 403
    client.force_login(make_user(Role.CODER, study=study))
    assert client.get(url).status_code == 403
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("field,value", [("max_uses", 0), ("days", 0), ("days", 1000)])
def test_link_form_refuses_bad_numbers(client, study, researcher, field, value):
    client.force_login(researcher)
    data = {"role": "coder", "days": 3, "max_uses": 1, field: value}
    response = client.post(reverse("annotate:invite_list", args=[study.slug]), data)
    assert response.status_code == 400
    assert not Invitation.objects.exists()


# --- joining ----------------------------------------------------------------------------------


def test_signed_in_user_joins_with_the_link_role(client, study, researcher):
    token = _invite(study, researcher, role=MemberRole.RESEARCHER)
    user = make_user(Role.CODER, username="someone")
    client.force_login(user)
    page = client.get(reverse("annotate:invite_join", args=[token]))
    assert page.status_code == 200 and b"Join the study" in page.content
    assert not Membership.objects.filter(user=user).exists()  # GET changes nothing
    response = client.post(reverse("annotate:invite_join", args=[token]))
    assert response.status_code == 302
    membership = Membership.objects.get(study=study, user=user)
    assert membership.role == MemberRole.RESEARCHER
    assert Role.RESEARCHER in user_roles(User.objects.get(pk=user.pk))
    assert Invitation.objects.get().uses == 1


def test_member_who_opens_a_link_again_uses_nothing(client, study, researcher):
    token = _invite(study, researcher, max_uses=2)
    member = make_user(Role.CODER, study=study)
    client.force_login(member)
    client.post(reverse("annotate:invite_join", args=[token]))
    assert Invitation.objects.get().uses == 0


def test_anonymous_visitor_creates_an_account_and_joins(client, study, researcher):
    token = _invite(study, researcher)
    response = _signup(client, token)
    assert response.status_code == 302
    user = User.objects.get(username="newcoder")
    assert user.check_password(GOOD_PASSWORD)
    assert Membership.objects.get(study=study, user=user).role == MemberRole.CODER
    assert client.get(reverse("annotate:code", args=[study.slug])).status_code == 200


def test_weak_password_is_refused_by_django_validators_and_nothing_is_made(
    client, study, researcher
):
    token = _invite(study, researcher)
    response = _signup(client, token, password="12345678")
    assert response.status_code == 400
    assert b"too common" in response.content or b"entirely numeric" in response.content
    assert not User.objects.filter(username="newcoder").exists()
    assert Invitation.objects.get().uses == 0


def test_taken_username_is_refused(client, study, researcher):
    token = _invite(study, researcher)
    make_user(Role.CODER, username="newcoder")
    assert _signup(client, token).status_code == 400
    assert Invitation.objects.get().uses == 0


def _expire(token):
    Invitation.objects.filter(token_hash=token_hash(token)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def _revoke(client, study, researcher, token):
    invitation = Invitation.objects.get(token_hash=token_hash(token))
    client.force_login(researcher)
    client.post(reverse("annotate:invite_revoke", args=[study.slug, invitation.pk]))
    client.logout()


@pytest.mark.parametrize(
    "spoil,message,status",
    [
        ("expired", INVITATION_EXPIRED, 410),
        ("used up", INVITATION_USED_UP, 410),
        ("revoked", INVITATION_REVOKED, 410),
        ("unknown", INVITATION_UNKNOWN, 404),
    ],
)
def test_unusable_link_shows_a_clear_page_and_creates_nothing(
    client, study, researcher, spoil, message, status
):
    token = _invite(study, researcher)
    if spoil == "expired":
        _expire(token)
    elif spoil == "used up":
        invitation_accept(token=token, user=make_user(Role.CODER))
    elif spoil == "revoked":
        _revoke(client, study, researcher, token)
    else:
        token = "unknown" + token[7:]
    members = Membership.objects.count()
    page = client.get(reverse("annotate:invite_join", args=[token]))
    assert page.status_code == status and message in page.content.decode()
    response = _signup(client, token, username="latecomer")
    assert response.status_code == status and message in response.content.decode()
    assert not User.objects.filter(username="latecomer").exists()
    assert Membership.objects.count() == members
    signed_in = make_user(Role.CODER)
    client.force_login(signed_in)
    assert client.post(reverse("annotate:invite_join", args=[token])).status_code == status
    assert not Membership.objects.filter(user=signed_in).exists()


def test_revoked_link_is_listed_as_withdrawn(client, study, researcher):
    token = _invite(study, researcher)
    _revoke(client, study, researcher, token)
    client.force_login(researcher)
    page = client.get(reverse("annotate:invite_list", args=[study.slug])).content.decode()
    assert "withdrawn" in page


def test_last_use_goes_to_one_user_only(study, researcher):
    token = _invite(study, researcher, max_uses=2)
    first, second, third = (make_user(Role.CODER) for _ in range(3))
    invitation_accept(token=token, user=first)
    invitation_accept(token=token, user=second)
    with pytest.raises(InvitationError) as refused:
        invitation_accept(token=token, user=third)
    assert refused.value.message == INVITATION_USED_UP
    assert Invitation.objects.get().uses == 2
    assert not Membership.objects.filter(user=third).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_last_use_admits_exactly_one(study, researcher):
    """Eight people press "join" on a one-use link at the same moment: one gets in."""
    token = _invite(study, researcher, max_uses=1)
    users = [make_user(Role.CODER) for _ in range(8)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def join(user):
        try:
            barrier.wait()
            invitation_accept(token=token, user=user)
            outcomes.append("joined")
        except InvitationError as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=join, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("joined") == 1, outcomes
    assert outcomes.count(INVITATION_USED_UP) == len(users) - 1
    assert Invitation.objects.get().uses == 1
    assert Membership.objects.filter(study=study, role=MemberRole.CODER).count() == 1


# --- accounts from a CSV ----------------------------------------------------------------------

CSV_TEXT = (
    "name,email,username\n"
    "Ada Lovelace,ada@example.org,\n"  # line 2: good, username = e-mail
    "No Mail,,nomail\n"  # line 3: no e-mail
    "Bad Mail,not-an-email,badmail\n"  # line 4: bad e-mail
    "Grace Hopper,grace@example.org,grace\n"  # line 5: good
    "Taken Name,taken@example.org,existing\n"  # line 6: username exists
    "Grace Twin,twin@example.org,grace\n"  # line 7: username twice in the file
    "Ada Again,ADA@example.org,ada2\n"  # line 8: e-mail twice in the file
)


def _upload(client, study, text=CSV_TEXT, role="coder"):
    upload = SimpleUploadedFile("people.csv", text.encode(), content_type="text/csv")
    return client.post(
        reverse("annotate:invite_import", args=[study.slug]), {"role": role, "file": upload}
    )


def test_csv_imports_good_rows_and_reports_each_bad_row(client, study, researcher):
    make_user(Role.CODER, username="existing")
    client.force_login(researcher)
    response = _upload(client, study)
    assert response.status_code == 200
    page = response.content.decode()
    made = {
        u.username: u
        for u in User.objects.filter(memberships__study=study, email__isnull=False).exclude(
            pk=researcher.pk
        )
    }
    assert set(made) == {"ada@example.org", "grace"}
    assert made["grace"].first_name == "Grace" and made["grace"].last_name == "Hopper"
    for user in made.values():
        assert not user.has_usable_password()
        assert Membership.objects.get(study=study, user=user).role == MemberRole.CODER
    problems = response.context["result"].problems
    assert [(p.line, p.message) for p in problems] == [
        (3, ROW_NO_EMAIL),
        (4, ROW_BAD_EMAIL.format(email="not-an-email")),
        (6, ROW_USERNAME_TAKEN.format(username="existing")),
        (7, ROW_USERNAME_TWICE.format(username="grace", line=5)),
        (8, ROW_EMAIL_TWICE.format(email="ADA@example.org", line=2)),
    ]
    assert page.count('data-testid="set-password-link"') == 2
    # The tests' locmem mail backend counts as a configured e-mail server.
    assert len(mail.outbox) == 2 and "/reset/" in mail.outbox[0].body


def test_without_an_email_server_nothing_is_sent_and_the_page_says_so(
    client, study, researcher, settings, monkeypatch
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "localhost"

    def no_server(*args, **kwargs):
        raise AssertionError("tried to send mail without an e-mail server")

    monkeypatch.setattr("annotate.services.invitations.send_mail", no_server)
    client.force_login(researcher)
    response = _upload(client, study, text="name,email\nAda Lovelace,ada@example.org\n")
    assert "nothing was e-mailed" in response.content.decode()
    assert [row.emailed for row in response.context["result"].made] == [False]


def test_csv_without_email_column_is_refused_whole(client, study, researcher):
    client.force_login(researcher)
    response = _upload(client, study, text="name,mail\nAda,ada@example.org\n")
    assert response.status_code == 400
    assert "needs the columns name and email" in response.content.decode()
    assert not User.objects.filter(email="ada@example.org").exists()


def test_set_password_link_works_once(client, study, researcher):
    client.force_login(researcher)
    response = _upload(client, study, text="name,email\nAda Lovelace,ada@example.org\n")
    (row,) = response.context["result"].made
    client.logout()
    page = client.get(row.link, follow=True)
    assert page.status_code == 200 and b"Set password" in page.content
    set_url = page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD}, follow=True
    )
    assert b"Your password is set" in done.content
    user = User.objects.get(username="ada@example.org")
    assert user.check_password(GOOD_PASSWORD)
    again = client.get(row.link, follow=True)
    assert b"This link is not valid" in again.content
    login = client.post(
        reverse("login"), {"username": "ada@example.org", "password": GOOD_PASSWORD}
    )
    assert login.status_code == 302


def test_links_download_as_csv_for_new_accounts_only(client, study, researcher):
    client.force_login(researcher)
    response = _upload(client, study, text="name,email\nAda Lovelace,=ada@example.org\n")
    assert response.context["result"].problems  # a formula is not an e-mail address
    response = _upload(client, study, text="name,email\n=cmd Ada,ada@example.org\n")
    (row,) = response.context["result"].made
    outsider = make_user(Role.CODER)
    download = client.post(
        reverse("annotate:invite_import_links", args=[study.slug]),
        {"user": [row.user_id, outsider.pk, researcher.pk]},
    )
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0] == ["name", "email", "username", "link"]
    assert len(rows) == 2
    assert rows[1][0] == "'=cmd Ada" and rows[1][2] == "ada@example.org"
    assert "/reset/" in rows[1][3]
