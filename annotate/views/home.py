"""Landing pages: one per role, and the researcher's study overview."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from annotate.access import role_required, study_for_researcher
from annotate.consensus import escalations_sweep
from annotate.models import MemberRole
from annotate.roles import Role, user_roles
from annotate.selectors.gold import coders_paused
from annotate.selectors.studies import studies_for_user
from annotate.selectors.waiting import faces_waiting
from annotate.services.health import health_ping_send
from annotate.services.summaries import overview_read
from config.celery import BrokerUnavailable


@role_required(Role.CODER, Role.RESEARCHER)
def home(request: HttpRequest) -> HttpResponse:
    roles = user_roles(request.user)
    if roles & {Role.RESEARCHER, Role.ADMIN}:
        studies = studies_for_user(user=request.user, role=MemberRole.RESEARCHER)
        coding = studies_for_user(user=request.user, role=MemberRole.CODER)
        return render(
            request,
            "annotate/home_researcher.html",
            {
                "overviews": [overview_read(study=study) for study in studies],
                # Studies this researcher codes in (not for admins, who see every study above).
                "coding": coding if Role.ADMIN not in roles and Role.CODER in roles else [],
            },
        )
    return render(
        request, "annotate/home_coder.html", {"studies": studies_for_user(user=request.user)}
    )


@role_required(Role.RESEARCHER)
def study_detail(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_researcher(request.user, slug)
    # Splits that waited too long for an extra coder go to adjudication before they are listed.
    escalations_sweep(study=study)
    overview = overview_read(study=study)
    return render(
        request,
        "annotate/study_detail.html",
        {
            "study": study,
            "overview": overview,
            "waiting": faces_waiting(study=study, total=overview.faces_waiting),
            # A coder paused (by gold accuracy or by hand) is news the researcher should not
            # have to open the agreement page to find.
            "paused": coders_paused(study=study),
        },
    )


@role_required(Role.ADMIN)
@require_http_methods(["POST"])
def health_ping(request: HttpRequest) -> HttpResponse:
    """Enqueue a ping for the worker; returns its id. The worker stamps the HealthPing row
    (`received_at`, `worker`) when it answers, which the admin's HealthPing list shows."""
    try:
        ping = health_ping_send()
    except BrokerUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"id": ping.pk})
