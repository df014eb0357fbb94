"""Researchers' import pages: upload a zip + manifest, watch its progress, read the report."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotate.access import check_study_researcher, role_required, study_for_researcher
from annotate.models import ImportBatch
from annotate.roles import Role
from annotate.selectors.imports import import_status, imports_for_study
from annotate.services.import_sweep import imports_sweep_due
from annotate.services.ingest import import_batch_create
from annotate.services.ingest_faces import labels_batch_create
from config.celery import BrokerUnavailable
from config.request_limits import accepts_upload

UPLOAD_NOT_ZIP = "Upload a .zip file of images."
MANIFEST_NOT_CSV = "The manifest must be a .csv file."
MANIFEST_TOO_LARGE = "The manifest is larger than {limit:,} bytes."
LABELS_NOT_CSV = "The labels file must be a .csv file."
LABELS_TOO_LARGE = "The labels file is larger than {limit:,} bytes."


def _zip_checked(upload):
    if not (upload.name or "").lower().endswith(".zip"):
        raise forms.ValidationError(UPLOAD_NOT_ZIP)
    return upload


def _csv_checked(upload, *, not_csv: str, too_large: str):
    """A CSV beside the zip (manifest or labels): a .csv name, at most FACET_MANIFEST_MAX_BYTES."""
    if not (upload.name or "").lower().endswith(".csv"):
        raise forms.ValidationError(not_csv)
    if upload.size > settings.FACET_MANIFEST_MAX_BYTES:
        raise forms.ValidationError(too_large.format(limit=settings.FACET_MANIFEST_MAX_BYTES))
    return upload


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
        return _zip_checked(self.cleaned_data["archive"])

    def clean_manifest(self):
        upload = self.cleaned_data.get("manifest")
        if upload is None:
            return None
        return _csv_checked(upload, not_csv=MANIFEST_NOT_CSV, too_large=MANIFEST_TOO_LARGE)


class LabelsUploadForm(forms.Form):
    archive = forms.FileField(
        label="Face crops (.zip)",
        help_text="A zip of face images, in folders or not; one face per image.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    labels = forms.FileField(
        label="Labels (.csv)",
        help_text="Columns: path, gender[, race, age, glasses, quality]; FairFace spellings are "
        "understood. Paths are relative to the zip (or to its one top folder).",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_archive(self):
        return _zip_checked(self.cleaned_data["archive"])

    def clean_labels(self):
        return _csv_checked(
            self.cleaned_data["labels"], not_csv=LABELS_NOT_CSV, too_large=LABELS_TOO_LARGE
        )


def _batch_for(request: HttpRequest, pk: int) -> ImportBatch:
    batch = get_object_or_404(ImportBatch.objects.select_related("study"), pk=pk)
    check_study_researcher(request.user, batch.study)
    return batch


def _upload_page(request: HttpRequest, slug: str, *, form_class, template: str, create):
    """The upload form of an import kind; a valid upload becomes a queued batch (`create`
    gets the study, the user and the cleaned form) and the browser goes to its progress
    page."""
    study = study_for_researcher(request.user, slug)
    form = form_class(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = create(study=study, user=request.user, data=form.cleaned_data)
        except BrokerUnavailable as exc:
            messages.error(request, str(exc))
        else:
            return redirect("annotate:import_detail", pk=batch.pk)
    return render(
        request,
        template,
        {
            "study": study,
            "form": form,
            "imports": imports_for_study(study=study),
            "max_upload_bytes": settings.FACET_MAX_UPLOAD_BYTES,
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
@accepts_upload  # the body limit (FACET_MAX_UPLOAD_BYTES) is checked before it is read
def import_new(request: HttpRequest, slug: str) -> HttpResponse:
    return _upload_page(
        request,
        slug,
        form_class=ImportUploadForm,
        template="annotate/imports/new.html",
        create=lambda *, study, user, data: import_batch_create(
            study=study, user=user, upload=data["archive"], manifest=data["manifest"]
        ),
    )


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
@accepts_upload  # the body limit (FACET_MAX_UPLOAD_BYTES) is checked before it is read
def labels_import_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a labeled face set (zip + labels CSV); imported by a worker like image uploads,
    with the same progress page and report."""
    return _upload_page(
        request,
        slug,
        form_class=LabelsUploadForm,
        template="annotate/imports/labels_new.html",
        create=lambda *, study, user, data: labels_batch_create(
            study=study, user=user, upload=data["archive"], labels=data["labels"]
        ),
    )


@role_required(Role.RESEARCHER)
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    imports_sweep_due()  # an import whose worker was lost is queued again (throttled)
    batch = _batch_for(request, pk)
    return render(
        request,
        "annotate/imports/detail.html",
        {"batch": batch, "study": batch.study, "state": import_status(batch=batch)},
    )


@role_required(Role.RESEARCHER)
@require_GET
def import_status_json(request: HttpRequest, pk: int) -> JsonResponse:
    imports_sweep_due()  # the embedded broker never hands a lost message back; this recovers it
    batch = _batch_for(request, pk)
    response = JsonResponse(import_status(batch=batch))
    response["Cache-Control"] = "no-store"
    return response
