"""The misclassification gallery of a version and triage from it."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from annotate.access import check_study_researcher, role_required
from annotate.models import Face
from annotate.params import BadParameter, param_int, param_text
from annotate.roles import Role
from modeling.models import ModelVersion, Triage
from modeling.selectors.gallery import (
    DIRECTION_LABELS,
    GalleryFilterError,
    GalleryFilters,
    gallery_empty_reason,
    gallery_group_values,
    gallery_page,
)
from modeling.services.triage import NOTE_MAX, TAGS, TriageError, triage_record, triage_undo

FILTER_KEYS = (
    "attribute",
    "group",
    "direction",
    "show",
    "round",
    "job",
    "country",
    "query",
    "rank",
)


def _filters(request: HttpRequest) -> GalleryFilters:
    """The filters of the query string; BadParameter for a malformed one."""
    get = request.GET
    return GalleryFilters(
        attribute=param_text(get, "attribute"),
        group=param_text(get, "group"),
        direction=param_text(get, "direction"),
        show=param_text(get, "show", default="errors"),
        round_id=param_int(get, "round"),
        job=param_text(get, "job"),
        country=param_text(get, "country"),
        query=param_text(get, "query"),
        max_rank=param_int(get, "rank"),
    )


@role_required(Role.RESEARCHER)
def gallery(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("study"), pk=version_id)
    check_study_researcher(request.user, version.study)
    error = ""
    empty = ""
    filters = GalleryFilters()
    try:
        filters = _filters(request)
        page = gallery_page(version=version, filters=filters, page=request.GET.get("page", 1))
    except (BadParameter, GalleryFilterError) as exc:
        # A filter that cannot be applied: the page says why (400) and shows no faces.
        error, page = str(exc), None
    if page is not None and not page.paginator.count:
        empty = gallery_empty_reason(version=version, filters=filters)
    groups = gallery_group_values(version=version)
    kept = {k: request.GET[k] for k in FILTER_KEYS if request.GET.get(k)}
    return render(
        request,
        "modeling/gallery.html",
        {
            "version": version,
            "study": version.study,
            "page": page,
            "filters": filters,
            "error": error,
            "empty": empty,
            "query_string": urlencode(kept),
            "here": request.get_full_path(),
            "directions": DIRECTION_LABELS,
            "groups": groups,
            # a filter from a link (e.g. an intersection on the round page) that no option
            # lists stays visible and selected
            "attribute_extra": "" if filters.attribute in ("", *groups) else filters.attribute,
            "group_extra": (
                ""
                if not filters.group or filters.group in groups.get(filters.attribute, ())
                else filters.group
            ),
            "decisions": Triage.Decision.choices,
            "tags": TAGS,
            "note_max": NOTE_MAX,
        },
        status=400 if error else 200,
    )


def _version_and_face(
    request: HttpRequest, version_id: int, face_id: int
) -> tuple[ModelVersion, Face]:
    """The version (the caller must be a member of its study) and a face of that study."""
    version = get_object_or_404(ModelVersion.objects.select_related("study"), pk=version_id)
    check_study_researcher(request.user, version.study)
    return version, get_object_or_404(Face, pk=face_id, study_id=version.study_id)


@role_required(Role.RESEARCHER)
@require_http_methods(["POST"])
def triage(request: HttpRequest, version_id: int, face_id: int) -> HttpResponse:
    version, face = _version_and_face(request, version_id, face_id)
    try:
        triage_record(
            face=face,
            version=version,
            decision=param_text(request.POST, "decision"),
            decided_by=request.user,
            tags=request.POST.getlist("tags"),
            note=param_text(request.POST, "note"),
        )
    except (BadParameter, TriageError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Face {face.pk} triaged.")
    return _back(request, version)


@role_required(Role.RESEARCHER)
@require_http_methods(["POST"])
def triage_undo_view(request: HttpRequest, version_id: int, face_id: int) -> HttpResponse:
    version, face = _version_and_face(request, version_id, face_id)
    try:
        now = triage_undo(
            face=face,
            version=version,
            undone_by=request.user,
            note=param_text(request.POST, "note"),
        )
    except (BadParameter, TriageError) as exc:
        messages.error(request, str(exc))
    else:
        back_to = now.get_decision_display() if now is not None else "untriaged"
        messages.success(request, f"Face {face.pk}: triage undone, now {back_to}.")
    return _back(request, version)


def _back(request: HttpRequest, version: ModelVersion) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("modeling:gallery", args=[version.pk])
    return redirect(target)
