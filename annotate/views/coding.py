"""The coder's page. Replaced by the full coding flow (issue: coding)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from annotate.access import check_study_member, role_required
from annotate.models import Study
from annotate.roles import Role


@role_required(Role.CODER)
def code(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    check_study_member(request.user, study)
    return render(request, "annotate/code.html", {"study": study})
