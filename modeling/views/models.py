"""Models pages: versions and runs of a study, a version's card, retrain/cancel/activate,
and shadow predictions (a candidate predicts without being activated)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate.access import is_admin, role_required, study_for_researcher
from annotate.models import Study
from annotate.roles import Role
from config.celery import BrokerUnavailable
from modeling.forms import ActivateForm, RetrainForm
from modeling.models import PredictionRun, TrainingRun
from modeling.selectors import models as selectors
from modeling.services.activation import ActivationRefused, version_activate
from modeling.services.prediction import (
    predictions_run_cancel,
    predictions_runs_sweep,
    predictions_start,
)
from modeling.services.training import (
    training_run_cancel,
    training_run_create,
    training_runs_sweep,
)


@role_required(Role.RESEARCHER)
@require_GET
def study_models(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    return render(
        request,
        "modeling/models.html",
        {
            "study": study,
            "versions": selectors.study_versions(study=study),
            "runs": [
                selectors.run_progress(r) | {"run": r}
                for r in selectors.study_training_runs(study=study)
            ],
            "prediction_runs": [
                selectors.prediction_progress(r)
                for r in selectors.study_prediction_runs(study=study)
            ],
            "form": RetrainForm(last_config=selectors.study_last_training_config(study=study)),
            "can_admin": is_admin(request.user),
        },
    )


@role_required(Role.RESEARCHER)
@require_GET
def study_models_status(request: HttpRequest, slug: str) -> JsonResponse:
    study = study_for_researcher(request.user, slug)
    # Polling is also when a run whose worker died gets noticed.
    training_runs_sweep()
    predictions_runs_sweep()
    return JsonResponse(selectors.study_progress(study=study))


@role_required(Role.RESEARCHER)
@require_GET
def version_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    version = selectors.version_get(study=study, number=number)
    card = selectors.version_card(version=version)
    return render(
        request,
        "modeling/version_card.html",
        {
            "study": study,
            **card,
            "prediction_progress": [
                selectors.prediction_progress(r) for r in card["prediction_runs"]
            ],
            "form": RetrainForm(last_config=selectors.study_last_training_config(study=study)),
            "activate_form": ActivateForm(),
            "can_admin": is_admin(request.user),
        },
    )


@role_required(Role.ADMIN)
@require_POST
def retrain(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    form = RetrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Retraining not started: {form.errors.as_text()}")
    else:
        try:
            run = training_run_create(study=study, requested_by=request.user, config=form.config())
        except (BrokerUnavailable, ValueError, PermissionDenied) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Training run #{run.pk} queued.")
    return redirect("modeling:study_models", slug=study.slug)


@role_required(Role.ADMIN)
@require_POST
def run_cancel(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id, study__slug=slug)
    training_run_cancel(run=run, user=request.user)
    messages.info(request, f"Training run #{run.pk}: cancel requested.")
    return redirect("modeling:study_models", slug=slug)


@role_required(Role.ADMIN)
@require_POST
def prediction_cancel(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    run = get_object_or_404(PredictionRun, pk=run_id, version__study__slug=slug)
    predictions_run_cancel(run=run, user=request.user)
    messages.info(request, f"Prediction run #{run.pk}: cancel requested.")
    return redirect("modeling:study_models", slug=slug)


@role_required(Role.ADMIN)
@require_POST
def activate(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    version = selectors.version_get(study=study, number=number)
    form = ActivateForm(request.POST)
    form.is_valid()
    try:
        prediction = version_activate(
            version=version,
            user=request.user,
            override_reason=form.cleaned_data.get("override_reason"),
        )
    except (ActivationRefused, BrokerUnavailable) as exc:
        messages.error(request, str(exc))
    else:
        note = f"; prediction run #{prediction.pk} queued" if prediction else ""
        messages.success(request, f"Version {version.number} is now active{note}.")
    return redirect("modeling:version_detail", slug=slug, number=number)


@role_required(Role.ADMIN)
@require_POST
def predict_shadow(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    version = selectors.version_get(study=study, number=number)
    try:
        run = predictions_start(version=version, user=request.user)
    except BrokerUnavailable as exc:
        messages.error(request, str(exc))
    else:
        if run is None:
            messages.info(request, f"Every face already has a prediction from v{version.number}.")
        else:
            messages.success(
                request,
                f"Predictions of v{version.number}: run #{run.pk} "
                f"{run.get_status_display().lower()}; the active version is unchanged.",
            )
    return redirect("modeling:version_detail", slug=slug, number=number)
