"""Researcher pages for gold faces and coder quality: the gold list (mark, unmark, correct,
settings) and the one-click exclusion of a coder's votes from consensus (and undoing it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.access import role_required, study_for_researcher
from annotate.labels import Gender
from annotate.models import GoldFace
from annotate.params import bad_parameters_refused, param_choice, param_int, param_text
from annotate.roles import Role
from annotate.selectors.gold import gold_candidates, gold_faces, gold_quality
from annotate.services.gold import (
    coder_exclude,
    coder_include,
    gold_correct,
    gold_mark,
    gold_mark_imported,
    gold_settings_set,
    gold_unmark,
)


@role_required(Role.RESEARCHER)
def gold_list(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    return render(
        request,
        "annotate/gold.html",
        {
            "study": study,
            "gold": gold_faces(study=study),
            "candidates": gold_candidates(study=study),
            "labels": Gender.choices,
            **gold_quality(study=study),
        },
    )


def _back(study) -> HttpResponse:
    return redirect("annotate:gold_list", slug=study.slug)


@role_required(Role.RESEARCHER)
@require_POST
def gold_face_mark(request: HttpRequest, slug: str, face_id: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    face = get_object_or_404(study.faces, pk=face_id)
    try:
        gold_mark(face=face, by=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Face {face.pk} is a gold face.")
    return _back(study)


@role_required(Role.RESEARCHER)
@require_POST
def gold_mark_all_imported(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    n = gold_mark_imported(study=study, by=request.user)
    messages.success(request, f"{n} face{'s' if n != 1 else ''} with imported labels marked gold.")
    return _back(study)


def _gold(study, face_id: int) -> GoldFace:
    return get_object_or_404(GoldFace.objects.filter(face__study=study), face_id=face_id)


@role_required(Role.RESEARCHER)
@require_POST
def gold_face_unmark(request: HttpRequest, slug: str, face_id: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    gold_unmark(gold=_gold(study, face_id), by=request.user)
    messages.success(request, f"Face {face_id} is no longer a gold face.")
    return _back(study)


@role_required(Role.RESEARCHER)
@require_POST
@bad_parameters_refused
def gold_face_correct(request: HttpRequest, slug: str, face_id: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    gold = _gold(study, face_id)
    gender = param_choice(request.POST, "gender", Gender.values, default="")
    gold_correct(gold=gold, gender=gender, by=request.user)
    messages.success(request, f"Gold answer of face {face_id} is now {Gender(gender).label}.")
    return _back(study)


@role_required(Role.RESEARCHER)
@require_POST
def gold_settings(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    try:
        gold_settings_set(
            study=study,
            rate=request.POST.get("gold_rate", ""),
            min_answers=request.POST.get("gold_min_answers", ""),
            min_accuracy=request.POST.get("gold_min_accuracy", ""),
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Gold settings saved.")
    return _back(study)


def _coder(study, request: HttpRequest):
    coder_id = param_int(request.POST, "coder")
    in_study = Q(votes__face__study=study) | Q(memberships__study=study)
    return get_object_or_404(get_user_model().objects.filter(in_study).distinct(), pk=coder_id)


@role_required(Role.RESEARCHER)
@require_POST
@bad_parameters_refused
def gold_coder_exclude(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    coder = _coder(study, request)
    coder_exclude(
        study=study, coder=coder, by=request.user, reason=param_text(request.POST, "reason")
    )
    messages.success(
        request, f"{coder}'s votes no longer count; consensus was recomputed (nothing deleted)."
    )
    return redirect("annotate:agreement", slug=study.slug)


@role_required(Role.RESEARCHER)
@require_POST
@bad_parameters_refused
def gold_coder_include(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    coder = _coder(study, request)
    coder_include(study=study, coder=coder, by=request.user)
    messages.success(request, f"{coder}'s votes count again; consensus was recomputed.")
    return redirect("annotate:agreement", slug=study.slug)
