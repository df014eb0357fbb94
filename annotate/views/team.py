"""Bringing people into a study: invitation links, accounts from a CSV, crowd-worker links.

Researchers of a study make and withdraw links on its pages; the links themselves
(`/join/<token>/`, `/crowd/<token>/`) are public. Tokens are shown once, in the reply to the
form that made them: only their hashes are stored.
"""

from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate.access import public, role_required, study_for_member, study_for_researcher
from annotate.ingest.csvtext import CsvError
from annotate.models import CrowdLink, Invitation, MemberRole
from annotate.roles import Role
from annotate.selectors.crowd import (
    EXPORT_COLUMNS,
    crowd_export_rows,
    crowd_links,
    crowd_worker_of,
)
from annotate.services.crowd import (
    MAX_FACES_PER_WORKER,
    CrowdError,
    crowd_faces_left,
    crowd_link_check,
    crowd_link_close,
    crowd_link_create,
    crowd_worker_enter,
    pid_check,
)
from annotate.services.invitations import (
    CROWD_ACCOUNT,
    INVITATION_UNKNOWN,
    MAX_ACCOUNTS_CSV_BYTES,
    MAX_DAYS,
    MAX_USES_LIMIT,
    InvitationError,
    accounts_email,
    accounts_import,
    invitation_accept,
    invitation_check,
    invitation_create,
    invitation_revoke,
    invitation_signup,
    invitation_state,
    set_password_links,
)
from modeling.exports import FORMULA_PREFIXES

# Crowd workers and people joining by link are signed in by the link, not by a password
# check, so the model backend is named (axes, first in the list, only guards passwords).
MODEL_BACKEND = "annotate.backends.ModelBackend"
CSV_TOO_LARGE = f"The CSV file is larger than {MAX_ACCOUNTS_CSV_BYTES // 1024} KB."
ALREADY_MEMBER = "You are already a member of {study}."
USERNAME_TAKEN = "A user with that username already exists."
JOINED = "You joined {study} as a {role}."
LINK_CLOSED_NOTICE = "The crowd link #{pk} takes no new workers now."
INVITATION_REVOKED_NOTICE = "The invitation #{pk} was withdrawn."


class InvitationForm(forms.Form):
    role = forms.ChoiceField(choices=MemberRole.choices, initial=MemberRole.CODER)
    days = forms.IntegerField(label="Valid for (days)", min_value=1, max_value=MAX_DAYS, initial=7)
    max_uses = forms.IntegerField(
        label="Maximum uses", min_value=1, max_value=MAX_USES_LIMIT, initial=1
    )


class AccountsImportForm(forms.Form):
    role = forms.ChoiceField(choices=MemberRole.choices, initial=MemberRole.CODER)
    file = forms.FileField(
        label="CSV file",
        help_text="Columns name and email, and optionally username (else the e-mail is the "
        "username). One account per row.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ACCOUNTS_CSV_BYTES:
            raise forms.ValidationError(CSV_TOO_LARGE)
        return upload


class CrowdLinkForm(forms.Form):
    faces_per_worker = forms.IntegerField(
        label="Faces per worker", min_value=1, max_value=MAX_FACES_PER_WORKER, initial=20
    )
    completion_code = forms.CharField(
        label="Completion code",
        required=False,
        max_length=64,
        help_text="The code the platform gave you; left empty, a random one is made.",
    )
    param_name = forms.CharField(
        label="Participant id parameter",
        max_length=40,
        initial="PROLIFIC_PID",
        help_text="The URL parameter the platform puts the participant id in.",
    )


class JoinForm(UserCreationForm):
    """Username and password (Django's password validators) for someone joining by link."""


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_response(filename: str, header: list[str], rows: list[list]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- invitation links ---------------------------------------------------------------------


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def invite_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's invitation links; the form makes a new one, shown once on this page."""
    study = study_for_researcher(request.user, slug)
    form = InvitationForm(request.POST or None)
    new_link = None
    if request.method == "POST" and form.is_valid():
        try:
            _, token = invitation_create(
                study=study,
                role=form.cleaned_data["role"],
                days=form.cleaned_data["days"],
                max_uses=form.cleaned_data["max_uses"],
                created_by=request.user,
            )
        except InvitationError as exc:
            form.add_error(None, exc.message)
        else:
            new_link = request.build_absolute_uri(reverse("annotate:invite_join", args=[token]))
            form = InvitationForm()
    invitations = [
        (invitation, invitation_state(invitation))
        for invitation in study.invitations.select_related("created_by")
    ]
    return render(
        request,
        "annotate/team/invitations.html",
        {"study": study, "form": form, "new_link": new_link, "invitations": invitations},
        status=400 if form.errors else 200,
    )


@role_required(Role.RESEARCHER)
@require_POST
def invite_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    invitation = get_object_or_404(Invitation, pk=pk, study=study)
    invitation_revoke(invitation=invitation)
    messages.success(request, INVITATION_REVOKED_NOTICE.format(pk=invitation.pk))
    return redirect("annotate:invite_list", slug=study.slug)


@public
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def invite_join(request: HttpRequest, token: str) -> HttpResponse:
    """Join a study by link: a signed-in user confirms; a visitor makes an account first."""
    try:
        invitation = invitation_check(token=token)
    except InvitationError as exc:
        return _join_refused(request, exc)
    study = invitation.study
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            return _join_as(request, token=token, user=request.user)
    else:
        form = JoinForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                user = invitation_signup(
                    token=token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
            except InvitationError as exc:
                return _join_refused(request, exc)
            except IntegrityError:  # the username was taken a moment after the form checked
                form.add_error("username", USERNAME_TAKEN)
            else:
                login(request, user, backend=MODEL_BACKEND)
                messages.success(
                    request, JOINED.format(study=study.title, role=invitation.get_role_display())
                )
                return redirect("home")
    return render(
        request,
        "annotate/team/join.html",
        {"invitation": invitation, "study": study, "form": form},
        status=400 if form is not None and form.errors else 200,
    )


def _join_as(request: HttpRequest, *, token: str, user) -> HttpResponse:
    try:
        membership, joined = invitation_accept(token=token, user=user)
    except InvitationError as exc:
        return _join_refused(request, exc)
    template = JOINED if joined else ALREADY_MEMBER
    messages.success(
        request,
        template.format(study=membership.study.title, role=membership.get_role_display()),
    )
    return redirect("home")


def _join_refused(request: HttpRequest, exc: InvitationError) -> HttpResponse:
    status = {INVITATION_UNKNOWN: 404, CROWD_ACCOUNT: 403}.get(exc.message, 410)
    return render(request, "annotate/team/refused.html", {"message": exc.message}, status=status)


# --- accounts from a CSV --------------------------------------------------------------------


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def invite_import(request: HttpRequest, slug: str) -> HttpResponse:
    """Make accounts from a CSV of names and e-mails; show each its set-password link."""
    study = study_for_researcher(request.user, slug)
    form = AccountsImportForm(request.POST or None, request.FILES or None)
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data["file"].read(MAX_ACCOUNTS_CSV_BYTES + 1)
        try:
            result = accounts_import(
                study=study, role=form.cleaned_data["role"], data=data, created_by=request.user
            )
        except CsvError as exc:
            form.add_error("file", str(exc))
        else:
            result.made = accounts_email(
                study=study, made=result.made, base_url=request.build_absolute_uri("/")[:-1]
            )
    return render(
        request,
        "annotate/team/import.html",
        {
            "study": study,
            "form": form,
            "result": result,
            "base_url": request.build_absolute_uri("/")[:-1],
        },
        status=400 if form.errors else 200,
    )


@role_required(Role.RESEARCHER)
@require_POST
def invite_import_links(request: HttpRequest, slug: str) -> HttpResponse:
    """The set-password links of accounts just made from a CSV, as a CSV to send out.

    Only accounts of this study that have never had a password nor logged in get a link.
    """
    study = study_for_researcher(request.user, slug)
    try:
        user_ids = [int(v) for v in request.POST.getlist("user")][:1000]
    except ValueError:
        raise Http404("bad user id") from None
    base = request.build_absolute_uri("/")[:-1]
    rows = [
        [user.get_full_name(), user.email, user.username, base + path]
        for user, path in set_password_links(study=study, user_ids=user_ids)
    ]
    return _csv_response(
        f"{study.slug}-set-password-links.csv", ["name", "email", "username", "link"], rows
    )


# --- crowd workers ---------------------------------------------------------------------------


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def crowd_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's crowd-worker links; the form opens a new one, shown once on this page."""
    study = study_for_researcher(request.user, slug)
    form = CrowdLinkForm(request.POST or None)
    new_link = None
    if request.method == "POST" and form.is_valid():
        try:
            link, token = crowd_link_create(
                study=study,
                faces_per_worker=form.cleaned_data["faces_per_worker"],
                completion_code=form.cleaned_data["completion_code"],
                param_name=form.cleaned_data["param_name"],
                created_by=request.user,
            )
        except CrowdError as exc:
            form.add_error(None, exc.message)
        else:
            base = request.build_absolute_uri(reverse("annotate:crowd_start", args=[token]))
            new_link = {"url": f"{base}?{link.param_name}=", "link": link}
            form = CrowdLinkForm()
    return render(
        request,
        "annotate/team/crowd_links.html",
        {"study": study, "form": form, "new_link": new_link, "links": crowd_links(study=study)},
        status=400 if form.errors else 200,
    )


@role_required(Role.RESEARCHER)
@require_POST
def crowd_close(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    link = get_object_or_404(CrowdLink, pk=pk, study=study)
    crowd_link_close(link=link)
    messages.success(request, LINK_CLOSED_NOTICE.format(pk=link.pk))
    return redirect("annotate:crowd_list", slug=study.slug)


@public
@require_GET
def crowd_start(request: HttpRequest, token: str) -> HttpResponse:
    """A crowd platform's worker arrives: find or make their account, sign them in, code."""
    try:
        link = crowd_link_check(token=token)
        pid = pid_check(request.GET.get(link.param_name), param=link.param_name)
        user = crowd_worker_enter(link=link, pid=pid)
    except CrowdError as exc:
        return render(
            request, "annotate/team/refused.html", {"message": exc.message}, status=exc.status
        )
    # A second tab of the same worker keeps the session (and its CSRF token) of the first.
    if request.user.pk != user.pk:
        login(request, user, backend=MODEL_BACKEND)
    return redirect("annotate:code", slug=link.study.slug)


@role_required(Role.CODER)
@require_GET
def crowd_done(request: HttpRequest, slug: str) -> HttpResponse:
    """The crowd worker's end page: the completion code once they coded their quota."""
    study = study_for_member(request.user, slug)
    worker = crowd_worker_of(study=study, user=request.user)
    if worker is None:
        raise Http404("Not a crowd worker of this study.")
    left = crowd_faces_left(study=study, user=request.user)
    return render(
        request,
        "annotate/team/crowd_done.html",
        {"study": study, "worker": worker, "left": left},
    )


@role_required(Role.RESEARCHER)
@require_GET
def crowd_export(request: HttpRequest, slug: str) -> HttpResponse:
    """Per-worker counts, time and gold accuracy, as CSV, for paying crowd workers."""
    study = study_for_researcher(request.user, slug)
    rows = [[row[c] for c in EXPORT_COLUMNS] for row in crowd_export_rows(study=study)]
    return _csv_response(f"{study.slug}-crowd-workers.csv", list(EXPORT_COLUMNS), rows)


# --- one-time set-password links (accounts made from a CSV) ----------------------------------

# Django's own views: the token works once (it is bound to the password hash and last login)
# and expires after PASSWORD_RESET_TIMEOUT; the person then logs in with the new password.
password_set = public(auth_views.PasswordResetConfirmView.as_view())
password_set_done = public(auth_views.PasswordResetCompleteView.as_view())
