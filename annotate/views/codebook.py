"""The codebook: researchers pick example faces per answer; coders see them, crops included.

Researchers edit it on one page (annotate:codebook): the examples so far, grouped by question
and answer, and a grid of finished faces filtered by question and answer to pick from. The
coder's page shows it before their first face and on H (annotate/views/coding.py).
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from annotate.access import role_required, study_for_member, study_for_researcher
from annotate.models import CodebookExample, Study
from annotate.roles import Role
from annotate.selectors.codebook import codebook_candidates, codebook_groups
from annotate.selectors.coding import study_questions
from annotate.services.codebook import (
    CodebookError,
    codebook_example_add,
    codebook_example_move,
    codebook_example_remove,
)
from annotate.views.media import NOT_FOUND, media_response

BAD_FORM = "The form was incomplete: {errors}"


class CandidateFilter(forms.Form):
    question = forms.ChoiceField(required=False)
    answer = forms.ChoiceField(required=False)

    def __init__(self, *args, study: Study, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        questions = study_questions(study=study)
        cast(forms.ChoiceField, self.fields["question"]).choices = [
            (q.key, q.title) for q in questions
        ]
        cast(forms.ChoiceField, self.fields["answer"]).choices = [("", "any answer")] + [
            (str(value), f"{q.title}: {q.choices(value).label}")
            for q in questions
            for value in q.keys.values()
        ]


class ExampleAddForm(forms.Form):
    face = forms.IntegerField(min_value=1)
    question = forms.CharField(max_length=20)
    answer = forms.CharField(max_length=20)
    note = forms.CharField(max_length=300, required=False)


class ExampleForm(forms.Form):
    example = forms.IntegerField(min_value=1)


class ExampleMoveForm(ExampleForm):
    direction = forms.ChoiceField(choices=[("up", "up"), ("down", "down")])


def _back(study: Study, request: HttpRequest) -> HttpResponse:
    url = reverse("annotate:codebook", args=[study.slug])
    kept = {k: request.POST[k] for k in ("question", "answer") if request.POST.get(k)}
    return redirect(f"{url}?{urlencode(kept)}" if kept else url)


def _form_error(request: HttpRequest, form: forms.Form) -> None:
    errors = "; ".join(f"{name}: {' '.join(map(str, e))}" for name, e in form.errors.items())
    messages.error(request, BAD_FORM.format(errors=errors))


@role_required(Role.RESEARCHER)
@require_GET
def codebook(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    questions = study_questions(study=study)
    filters = CandidateFilter(request.GET or None, study=study)
    question, answer = questions[0].key, ""
    if filters.is_valid():
        question = filters.cleaned_data["question"] or question
        answer = filters.cleaned_data["answer"]
    asked = next(q for q in questions if q.key == question)
    if answer not in [str(v) for v in asked.keys.values()]:
        answer = ""  # an answer of another question: show every answer of this one
    return render(
        request,
        "annotate/codebook.html",
        {
            "study": study,
            "groups": codebook_groups(study=study),
            "filters": filters,
            "question": asked,
            "answer": answer,
            "answers": [
                {"value": str(v), "label": asked.choices(v).label} for v in asked.keys.values()
            ],
            "candidates": codebook_candidates(study=study, question=question, answer=answer),
        },
    )


@role_required(Role.RESEARCHER)
@require_POST
def codebook_add(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    form = ExampleAddForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return _back(study, request)
    try:
        codebook_example_add(
            study=study,
            face_id=form.cleaned_data["face"],
            question=form.cleaned_data["question"],
            answer=form.cleaned_data["answer"],
            note=form.cleaned_data["note"],
        )
    except CodebookError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Face {form.cleaned_data['face']} added to the codebook.")
    return _back(study, request)


@role_required(Role.RESEARCHER)
@require_POST
def codebook_remove(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    form = ExampleForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return _back(study, request)
    try:
        codebook_example_remove(study=study, example_id=form.cleaned_data["example"])
    except CodebookError as exc:
        messages.error(request, str(exc))
    return _back(study, request)


@role_required(Role.RESEARCHER)
@require_POST
def codebook_move(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    form = ExampleMoveForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return _back(study, request)
    try:
        codebook_example_move(
            study=study,
            example_id=form.cleaned_data["example"],
            up=form.cleaned_data["direction"] == "up",
        )
    except CodebookError as exc:
        messages.error(request, str(exc))
    return _back(study, request)


@role_required(Role.CODER, Role.RESEARCHER)
@require_GET
def codebook_crop(request: HttpRequest, slug: str, pk: int) -> HttpResponseBase:
    """An example's crop, for members of its study: membership is read on every request,
    so a removed coder loses the codebook at once. Other faces' crops stay behind
    annotate.selectors.media (a coder sees only faces they hold or coded)."""
    study = study_for_member(request.user, slug)
    example = CodebookExample.objects.select_related("face").filter(pk=pk, study=study).first()
    if example is None or not example.face.crop.name:
        raise Http404(NOT_FOUND)
    return media_response(example.face.crop.name, max_age=3600)
