"""The researcher's upload, progress and report pages (the face-source view: test_media_access)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import ImportBatch, JobStatus
from annotate.roles import Role
from annotate.views.imports import UPLOAD_NOT_ZIP
from tests.annotate import hostile
from tests.factories import make_source_image, make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return make_study()


def _zip_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile(
        "photos.zip", hostile.zip_bytes({"a.jpg": hostile.good_jpeg()}), "application/zip"
    )


def test_study_page_links_to_the_import_page(client, study):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    assert reverse("annotate:import_new", args=[study.slug]) in html


def test_upload_creates_a_queued_batch_and_enqueues_it_after_commit(
    client, study, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("annotate.tasks.import_images.delay", lambda pk: sent.append(pk))
    monkeypatch.setattr("annotate.services.ingest.broker_check", lambda: None)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    manifest = SimpleUploadedFile("m.csv", b"file,query\na.jpg,nurse\n", "text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("annotate:import_new", args=[study.slug]),
            {"archive": _zip_upload(), "manifest": manifest},
        )
    batch = ImportBatch.objects.get(study=study)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:import_detail", args=[batch.pk])
    assert batch.status == JobStatus.QUEUED and batch.upload and batch.manifest
    assert sent == [batch.pk]


def test_upload_that_is_not_a_zip_is_refused_with_the_reason(client, study):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.post(
        reverse("annotate:import_new", args=[study.slug]),
        {"archive": SimpleUploadedFile("photos.rar", b"x")},
    )
    assert response.status_code == 400
    assert UPLOAD_NOT_ZIP in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_dead_broker_creates_nothing_and_says_so(client, study):
    from tests.conftest import Broker, use_broker

    client.force_login(make_user(Role.RESEARCHER, study=study))
    with use_broker(Broker("redis://127.0.0.1:1/0", {})):
        response = client.post(
            reverse("annotate:import_new", args=[study.slug]), {"archive": _zip_upload()}
        )
    assert response.status_code == 200
    assert "nothing was created" in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_researchers_outside_the_study_cannot_upload_or_watch(client, study):
    batch = ImportBatch.objects.create(study=study)
    client.force_login(make_user(Role.RESEARCHER))
    assert client.get(reverse("annotate:import_new", args=[study.slug])).status_code == 403
    assert client.get(reverse("annotate:import_detail", args=[batch.pk])).status_code == 403
    assert client.get(reverse("annotate:import_status", args=[batch.pk])).status_code == 403


def test_coders_cannot_open_import_pages(client, study):
    client.force_login(make_user(Role.CODER, study=study))
    assert client.get(reverse("annotate:import_new", args=[study.slug])).status_code == 403


def test_status_endpoint_reports_progress_then_the_report(client, study):
    batch = ImportBatch.objects.create(study=study, status=JobStatus.RUNNING, total=10, done=4)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:import_status", args=[batch.pk])
    running = client.get(url).json()
    assert (running["percent"], running["finished"], running["report"]) == (40, False, None)
    batch.status, batch.done, batch.report = JobStatus.SUCCEEDED, 10, {"duplicates_skipped": 9}
    batch.save()
    make_source_image(study, batch=batch)
    done = client.get(url).json()
    assert done["finished"] and done["report"]["duplicates_skipped"] == 9
    assert done["report"]["imported"] == 1  # counted from the rows


def test_detail_page_shows_the_report_and_escapes_file_names(client, study):
    batch = ImportBatch.objects.create(
        study=study,
        status=JobStatus.SUCCEEDED,
        report={
            "imported": 3,
            "rejected_files": [{"file": "<script>x</script>.jpg", "reason": "not an image"}],
        },
    )
    for _ in range(3):
        make_source_image(study, batch=batch)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:import_detail", args=[batch.pk])).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;.jpg" in html and "<script>x</script>" not in html
    assert 'data-key="imported">3<' in html
