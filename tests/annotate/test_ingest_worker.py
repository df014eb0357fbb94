"""The web upload path end to end through a real Celery worker process."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Face, ImportBatch, JobStatus, SourceImage
from annotate.roles import Role
from tests.annotate import hostile
from tests.conftest import wait_for
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_uploaded_zip_is_imported_by_a_real_worker_with_progress_and_report(
    client, filesystem_broker, start_worker
):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    archive = hostile.zip_bytes(
        {
            "q1/a.jpg": hostile.good_jpeg(256),
            "q1/b.png": hostile.palette_png(),
            "q1/bad.jpg": hostile.html_as_jpeg(),
            "../evil.jpg": hostile.good_jpeg(64),
        }
    )
    manifest = (
        b"file,query,job,country,language,rank,source_url\n"
        b"q1/a.jpg,nurse,nurse,US,en,1,https://example.org/a\n"
        b"q1/gone.jpg,nurse,nurse,US,en,2,\n"
    )
    # Two files per chunk: the 3 images go out as 2 chunk tasks, as a large upload would.
    start_worker(filesystem_broker, queues="default", extra_env={"FACET_IMPORT_CHUNK_FILES": "2"})
    response = client.post(
        reverse("annotate:import_new", args=[study.slug]),
        {
            "archive": SimpleUploadedFile("photos.zip", archive, "application/zip"),
            "manifest": SimpleUploadedFile("manifest.csv", manifest, "text/csv"),
        },
    )
    assert response.status_code == 302
    batch = ImportBatch.objects.get(study=study)
    status_url = reverse("annotate:import_status", args=[batch.pk])
    state = wait_for(
        lambda: (data := client.get(status_url).json())["finished"] and data,
        timeout=120,
        message="the worker to finish the import",
    )
    assert state["status"] == JobStatus.SUCCEEDED, state
    assert (state["done"], state["total"], state["percent"]) == (3, 3, 100)
    report = state["report"]
    assert (report["chunks"], report["chunks_done"]) == (2, 2)
    assert report["imported"] == 2 and report["faces_found"] == 2 and report["rejected"] == 2
    reasons = {item["file"]: item["reason"] for item in report["rejected_files"]}
    assert reasons["q1/bad.jpg"].startswith("not an image")
    assert "climbs out of the folder" in reasons["../evil.jpg"]
    assert report["rejected_rows"] == [
        {"line": 3, "file": "q1/gone.jpg", "reason": "names a file that is not in the upload"}
    ]
    assert SourceImage.objects.get(original_name="q1/a.jpg").job == "nurse"
    assert Face.objects.filter(study=study).count() == 2
