"""Researcher pages of the coding area: agreement (per study, batch, coder) and adjudication."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate.access import role_required, study_for_researcher
from annotate.consensus import escalations_sweep, face_adjudicate
from annotate.labels import Gender
from annotate.params import bad_parameters_refused, param_choice, param_int, param_text
from annotate.roles import Role
from annotate.selectors.agreement import (
    QUESTIONS,
    adjudication_queue,
    agreement_report,
    recent_consensus,
)
from annotate.selectors.gold import gold_quality
from annotate.services.summaries import agreement_read


@role_required(Role.RESEARCHER)
@bad_parameters_refused
def agreement(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    batch_id = param_int(request.GET, "batch")
    coder_id = param_int(request.GET, "coder")
    question = param_choice(request.GET, "question", QUESTIONS, default="gender")
    if coder_id is None:
        # The stored figures (as of a time the page shows), refreshed by a task.
        report = agreement_read(study=study, batch_id=batch_id, question=question)
    else:
        # One coder's confusion is read from the votes now, with the figures around it.
        report = agreement_report(
            study=study, batch_id=batch_id, coder_id=coder_id, question=question
        )
    return render(
        request,
        "annotate/agreement.html",
        {
            "study": study,
            "report": report,
            "batches": study.imports.order_by("-created_at")[:50],
            "questions": QUESTIONS.values(),
            "recent": recent_consensus(study=study),
            **gold_quality(study=study),
        },
    )


@role_required(Role.RESEARCHER)
def adjudication(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    # Opening the queue is also when splits that waited too long for an extra coder join it.
    escalations_sweep(study=study)
    return render(
        request,
        "annotate/adjudication.html",
        {"study": study, "faces": adjudication_queue(study=study), "labels": Gender.choices},
    )


@role_required(Role.RESEARCHER)
@require_POST
def adjudicate(request: HttpRequest, slug: str, face_id: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    face = get_object_or_404(study.faces, pk=face_id)
    try:
        face_adjudicate(
            face=face,
            researcher=request.user,
            label=param_text(request.POST, "label"),
            reason=param_text(request.POST, "reason")[:2000],
        )
    except ValueError as exc:  # also a BadParameter: the message says what to fix
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Face {face.pk} decided.")
    return redirect("annotate:adjudication", slug=study.slug)
