"""Researchers' import pages: upload a zip + manifest, watch its progress, read the report.

Also the face-source view: the image a face was detected in, with its box drawn, for coders
who hold or voted on the face and for researchers of the study.
"""

from __future__ import annotations

import io

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotate.access import check_study_member, role_required, study_for_member
from annotate.ingest.draw import SOURCE_MAX_SIDE, box_draw
from annotate.ingest.images import ImageRejected, image_open
from annotate.models import Face, ImportBatch
from annotate.roles import Role
from annotate.selectors.imports import face_source_allowed, import_status, imports_for_study
from annotate.services.ingest import import_batch_create
from config.celery import BrokerUnavailable

UPLOAD_NOT_ZIP = "Upload a .zip file of images."
UPLOAD_TOO_LARGE = "The upload is {size:,} bytes; the limit is {limit:,} bytes."
MANIFEST_NOT_CSV = "The manifest must be a .csv file."
MANIFEST_TOO_LARGE = "The manifest is larger than {limit:,} bytes."
FACE_NOT_ALLOWED = "You may open the source image only of faces you are coding or have coded."
FACE_NO_SOURCE = "This face was imported as a crop; it has no source image."
MANIFEST_MAX_BYTES = 50 * 1024 * 1024


class ImportUploadForm(forms.Form):
    archive = forms.FileField(
        label="Images (.zip)",
        help_text="A zip of the downloaded images, in folders or not.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    manifest = forms.FileField(
        label="Manifest (.csv, optional)",
        required=False,
        help_text="Columns: file, query, job, country, language, rank, source_url. "
        "Other columns are kept. A manifest.csv inside the zip is used when none is given.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_archive(self):
        upload = self.cleaned_data["archive"]
        if not (upload.name or "").lower().endswith(".zip"):
            raise forms.ValidationError(UPLOAD_NOT_ZIP)
        limit = settings.FACET_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(UPLOAD_TOO_LARGE.format(size=upload.size, limit=limit))
        return upload

    def clean_manifest(self):
        upload = self.cleaned_data.get("manifest")
        if upload is None:
            return None
        if not (upload.name or "").lower().endswith(".csv"):
            raise forms.ValidationError(MANIFEST_NOT_CSV)
        if upload.size > MANIFEST_MAX_BYTES:
            raise forms.ValidationError(MANIFEST_TOO_LARGE.format(limit=MANIFEST_MAX_BYTES))
        return upload


def _batch_for(request: HttpRequest, pk: int) -> ImportBatch:
    batch = get_object_or_404(ImportBatch.objects.select_related("study"), pk=pk)
    check_study_member(request.user, batch.study)
    return batch


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def import_new(request: HttpRequest, slug: str) -> HttpResponse:
    study = study_for_member(request.user, slug)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = import_batch_create(
                study=study,
                user=request.user,
                upload=form.cleaned_data["archive"],
                manifest=form.cleaned_data["manifest"],
            )
        except BrokerUnavailable as exc:
            messages.error(request, str(exc))
        else:
            return redirect("annotate:import_detail", pk=batch.pk)
    return render(
        request,
        "annotate/imports/new.html",
        {"study": study, "form": form, "imports": imports_for_study(study=study)},
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


@role_required(Role.RESEARCHER)
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _batch_for(request, pk)
    return render(
        request,
        "annotate/imports/detail.html",
        {"batch": batch, "study": batch.study, "state": import_status(batch=batch)},
    )


@role_required(Role.RESEARCHER)
@require_GET
def import_status_json(request: HttpRequest, pk: int) -> JsonResponse:
    batch = _batch_for(request, pk)
    response = JsonResponse(import_status(batch=batch))
    response["Cache-Control"] = "no-store"
    return response


@role_required(Role.CODER, Role.RESEARCHER)
@require_GET
def face_source(request: HttpRequest, pk: int) -> HttpResponse:
    """The face's source image as a JPEG with the face's box drawn on it."""
    face = get_object_or_404(Face.objects.select_related("study", "source_image"), pk=pk)
    if not face_source_allowed(face=face, user=request.user):
        return HttpResponseForbidden(FACE_NOT_ALLOWED, content_type="text/plain; charset=utf-8")
    if face.source_image is None or not face.source_image.file:
        raise Http404(FACE_NO_SOURCE)
    try:
        with face.source_image.file.open("rb") as handle:
            opened = image_open(handle.read())
    except (ImageRejected, OSError):
        raise Http404("The source image file is missing or unreadable.") from None
    picture = box_draw(opened.image, face.box, max_side=SOURCE_MAX_SIDE)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    response = HttpResponse(buffer.getvalue(), content_type="image/jpeg")
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=600"
    return response
