"""Study set-up and the team page: researchers create and edit studies and manage members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotate.access import role_required, study_for_researcher
from annotate.forms import MemberActionForm, MemberAddForm, StudyForm
from annotate.models import MemberRole, Membership, Study
from annotate.roles import Role
from annotate.selectors.team import study_members
from annotate.services.studies import study_create, study_update, study_votes_minimum
from annotate.services.team import member_add, member_pause, member_remove, member_resume

NO_SUCH_USER = "There is no user {username!r}."
NOT_IN_STUDY = "That user is not a member of this study."
SELF_REMOVE = "You cannot remove yourself from a study; ask another researcher or an admin."


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def study_new(request: HttpRequest) -> HttpResponse:
    form = StudyForm(request.POST or None, creating=True)
    if request.method == "POST" and form.is_valid():
        try:
            study = study_create(
                slug=form.cleaned_data["slug"], creator=request.user, **form.settings()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Study “{study.title}” created. Add coders next.")
            return redirect("annotate:study_members", slug=study.slug)
    return render(request, "annotate/study_form.html", {"form": form, "study": None})


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def study_edit(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    # The form works on its own copy: a refused change must not show on the page as saved.
    form = StudyForm(request.POST or None, instance=Study.objects.get(pk=study.pk), creating=False)
    if request.method == "POST" and form.is_valid():
        try:
            study_update(study=study, **form.settings())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("annotate:study_detail", slug=study.slug)
    return render(
        request,
        "annotate/study_form.html",
        {"form": form, "study": study, "k_minimum": study_votes_minimum(study=study)},
    )


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def study_members_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The team: list members; add one by username; pause, resume or remove one (POST)."""
    study = study_for_researcher(request.user, slug)
    add_form = MemberAddForm(prefix="add")
    if request.method == "POST":
        if "add-username" in request.POST:
            add_form = MemberAddForm(request.POST, prefix="add")
            if add_form.is_valid() and _member_add(request, study, add_form):
                return redirect("annotate:study_members", slug=study.slug)
        else:
            _member_act(request, study, MemberActionForm(request.POST))
            return redirect("annotate:study_members", slug=study.slug)
    return render(
        request,
        "annotate/study_members.html",
        {"study": study, "members": study_members(study=study), "add_form": add_form},
    )


def _member_add(request: HttpRequest, study: Study, form: MemberAddForm) -> bool:
    username = form.cleaned_data["username"].strip()
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        form.add_error("username", NO_SUCH_USER.format(username=username))
        return False
    role = MemberRole(form.cleaned_data["role"])
    member_add(study=study, user=user, role=role)
    messages.success(request, f"{username} is a {role.label.lower()} of this study.")
    return True


def _member_act(request: HttpRequest, study: Study, form: MemberActionForm) -> None:
    if not form.is_valid():
        messages.error(request, "That action is not understood.")
        return
    membership = (
        Membership.objects.select_related("user")
        .filter(study=study, user_id=form.cleaned_data["user"])
        .first()
    )
    if membership is None:
        messages.error(request, NOT_IN_STUDY)
        return
    user, action = membership.user, form.cleaned_data["action"]
    name = user.get_username()
    if action == "remove":
        if user.pk == request.user.pk:
            messages.error(request, SELF_REMOVE)
            return
        member_remove(study=study, user=user)
        messages.success(request, f"{name} was removed; their open faces went back to the pool.")
    elif action == "pause":
        reason = form.cleaned_data["reason"] or f"paused by {request.user.get_username()}"
        member_pause(study=study, user=user, reason=reason)
        messages.success(request, f"{name} is paused.")
    else:
        member_resume(study=study, user=user)
        messages.success(request, f"{name} may code again.")
