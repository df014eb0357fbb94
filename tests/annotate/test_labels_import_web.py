"""A labeled face set (zip + labels CSV) imported from the study page: an ImportBatch of kind
faces, run by the import_faces task under the import claim, with the progress page and a
report of the same shape as the import_faces command's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Face, ImportBatch, JobStatus, KnownLabel
from annotate.roles import Role
from annotate.services.import_sweep import imports_sweep
from annotate.services.ingest_faces import faces_batch_process, faces_import
from annotate.tasks import import_faces
from annotate.views.imports import LABELS_NOT_CSV, UPLOAD_NOT_ZIP
from tests.annotate import hostile
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db

FILES = {
    "set/a.jpg": hostile.good_jpeg(200),
    "set/b.png": hostile.encode(hostile.cat(120), "PNG"),
    "set/c.jpg": hostile.good_jpeg(160),
    "set/broken.jpg": hostile.truncated_jpeg(),
    "set/unlabeled.jpg": hostile.good_jpeg(100),
}
LABELS = (
    "path,gender,race,age,glasses,quality\n"
    "set/a.jpg,Female,East Asian,30-39,no,good\n"
    "set/b.png,Male,Latino_Hispanic,more than 70,,\n"
    "set/c.jpg,male,,3-9,,\n"
    "set/broken.jpg,female,,,,\n"
    "set/missing.jpg,female,,,,\n"
    "set/a.jpg,male,,,,\n"
    "../escape.jpg,male,,,,\n"
    "set/c.jpg,robot,,,,\n"
    "set/a.jpg,female,purple,,,\n"
)


@pytest.fixture
def study():
    return make_study()


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    messages: list[int] = []
    monkeypatch.setattr("annotate.tasks.import_faces.delay", messages.append)
    monkeypatch.setattr("annotate.services.ingest_faces.broker_check", lambda: None)
    return messages


def _upload(client, study, files=FILES, labels=LABELS, *, names=("faces.zip", "labels.csv")):
    return client.post(
        reverse("annotate:labels_import_new", args=[study.slug]),
        {
            "archive": SimpleUploadedFile(names[0], hostile.zip_bytes(files), "application/zip"),
            "labels": SimpleUploadedFile(names[1], labels.encode(), "text/csv"),
        },
    )


def test_the_study_page_links_to_the_labeled_set_import(client, study):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    html = client.get(reverse("annotate:study_detail", args=[study.slug])).content.decode()
    assert reverse("annotate:labels_import_new", args=[study.slug]) in html
    form = client.get(reverse("annotate:labels_import_new", args=[study.slug]))
    assert form.status_code == 200 and 'name="labels"' in form.content.decode()


def test_upload_runs_through_the_task_with_the_report_of_the_command(
    client, study, sent, django_capture_on_commit_callbacks, tmp_path
):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(client, study)
    batch = ImportBatch.objects.get(study=study)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate:import_detail", args=[batch.pk])
    assert batch.kind == ImportBatch.Kind.FACES and batch.status == JobStatus.QUEUED
    assert batch.upload and batch.manifest and sent == [batch.pk]

    import_faces(batch.pk)  # what the worker runs, in this process
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    # Progress counts the rows the labels file left to import (a, b, c, broken, missing).
    assert batch.done == batch.total == 5 and batch.claimed_by and batch.attempts == 1
    assert Face.objects.filter(study=study).count() == KnownLabel.objects.count() == 3

    # The command on the same files, in another study: the same report, field for field.
    folder = tmp_path / "faces"
    for name, data in FILES.items():
        (folder / Path(name).parent).mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    command = faces_import(
        study=make_study(), folder=folder, labels=LABELS.encode(), labels_name="labels.csv"
    )
    assert batch.report == command.report
    assert batch.report["imported"] == batch.report["labels_imported"] == 3
    assert batch.report["files_without_manifest_row"] == ["set/unlabeled.jpg"]

    status = client.get(reverse("annotate:import_status", args=[batch.pk])).json()
    assert status["finished"] and status["report"] == batch.report
    html = client.get(reverse("annotate:import_detail", args=[batch.pk])).content.decode()
    assert 'Faces imported</dt><dd data-key="imported">3<' in html
    assert "Labels file rows not used" in html


def test_a_zipped_folder_is_matched_to_the_labels_inside_its_top_folder(
    client, study, sent, django_capture_on_commit_callbacks
):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    nested = {f"fairface/{name}": data for name, data in FILES.items()}
    with django_capture_on_commit_callbacks(execute=True):
        _upload(client, study, nested)
    batch = faces_batch_process(batch_id=sent[0])
    assert batch.status == JobStatus.SUCCEEDED and batch.report["imported"] == 3
    assert batch.report["files_without_manifest_row"] == ["fairface/set/unlabeled.jpg"]


@pytest.mark.parametrize(
    ("names", "message"),
    [(("faces.rar", "labels.csv"), UPLOAD_NOT_ZIP), (("faces.zip", "labels.txt"), LABELS_NOT_CSV)],
)
def test_wrong_file_types_are_refused_with_the_reason_and_create_nothing(
    client, study, sent, names, message
):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = _upload(client, study, names=names)
    assert response.status_code == 400 and message in response.content.decode()
    assert not ImportBatch.objects.exists() and not sent


def test_a_labels_file_without_a_gender_column_fails_the_batch_with_the_reason(
    client, study, sent, django_capture_on_commit_callbacks
):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    with django_capture_on_commit_callbacks(execute=True):
        _upload(client, study, labels="path,race\nset/a.jpg,white\n")
    batch = faces_batch_process(batch_id=sent[0])
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("The labels file cannot be used")
    assert not Face.objects.exists()


def test_coders_and_outside_researchers_cannot_upload(client, study, sent):
    client.force_login(make_user(Role.CODER, study=study))
    assert _upload(client, study).status_code == 403
    client.force_login(make_user(Role.RESEARCHER, study=make_study()))
    assert _upload(client, study).status_code == 403
    assert not ImportBatch.objects.exists()


def test_a_second_delivery_does_nothing_and_a_lost_worker_is_swept_and_recounted(
    client, study, sent, settings, django_capture_on_commit_callbacks
):
    client.force_login(make_user(Role.RESEARCHER, study=study))
    with django_capture_on_commit_callbacks(execute=True):
        _upload(client, study)
    batch = faces_batch_process(batch_id=sent[0])
    report = batch.report
    assert faces_batch_process(batch_id=batch.pk).finished_at == batch.finished_at

    # As if the worker died after storing every face: running, its heartbeat gone stale.
    stale = timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS + 1)
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=batch.heartbeat_at - stale, finished_at=None
    )
    assert imports_sweep() == 1 and sent == [batch.pk, batch.pk]
    again = faces_batch_process(batch_id=batch.pk)
    assert again.status == JobStatus.SUCCEEDED and again.attempts == 2
    # Faces the lost run stored are counted, not stored twice or called duplicates.
    assert again.report["imported"] == report["imported"] == 3
    assert again.report["duplicates_skipped"] == report["duplicates_skipped"]
    assert Face.objects.filter(study=study).count() == 3


def test_the_upload_page_takes_bodies_up_to_the_upload_limit_checked_from_the_headers(
    rf, settings, study
):
    from config.request_limits import body_limit

    settings.FACET_MAX_UPLOAD_BYTES = 123 * 1024**2
    request = rf.post(reverse("annotate:labels_import_new", args=[study.slug]))
    assert body_limit(request) == settings.FACET_MAX_UPLOAD_BYTES
    other = rf.post(reverse("annotate:codebook_add", args=[study.slug]))
    assert body_limit(other) < settings.FACET_MAX_UPLOAD_BYTES
