"""The web upload path end to end through real Celery worker processes, including workers
killed in the middle of an import and messages Redis delivers a second time."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Face, ImportBatch, ImportChunk, JobStatus, SourceImage
from annotate.roles import Role
from annotate.selectors.imports import import_counts
from annotate.services.ingest import import_batch_create
from tests.annotate import hostile
from tests.conftest import Worker, wait_for
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


# --- workers killed mid-import, messages delivered twice --------------------------------------

STALE_S = 4  # FACET_IMPORT_STALE_SECONDS for these tests and their workers
# Detection on the CPU on every machine, so an import lasts long enough to be caught midway.
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
WORKER_ENV = {"FACET_IMPORT_STALE_SECONDS": str(STALE_S), **CPU_ONLY}


def _upload(study, images: int) -> ImportBatch:
    """A zip of `images` distinct photos (one face each), queued as the web page would."""
    files = {f"q/{i:02}.jpg": hostile.good_jpeg(800 + 16 * i) for i in range(images)}
    upload = SimpleUploadedFile("photos.zip", hostile.zip_bytes(files), "application/zip")
    return import_batch_create(study=study, user=None, upload=upload)


def _finish_watching_done(batch: ImportBatch, *, timeout: float = 180) -> list[int]:
    """Wait for the batch to finish; every `done` seen on the way, in order."""
    seen: list[int] = []

    def finished() -> bool:
        batch.refresh_from_db()
        seen.append(batch.done)
        return batch.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

    wait_for(finished, timeout=timeout, interval=0.1, message="the import to finish")
    return seen


def _report_matches_rows(batch: ImportBatch) -> None:
    counts = import_counts(batch_id=batch.pk)
    assert {key: batch.report[key] for key in counts} == counts
    assert counts["faces_found"] == Face.objects.filter(source_image__batch=batch).count()


def _kill_when(worker: Worker, moment, *, timeout: float = 120) -> None:
    """SIGKILL the worker's process group at a moment `moment()` recognises. The group is
    frozen (SIGSTOP) before looking, so the moment cannot pass between the look and the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        os.killpg(worker.process.pid, signal.SIGSTOP)
        if moment():
            worker.kill()
            return
        os.killpg(worker.process.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the worker never reached the moment to kill it")


def _redis_deliver_again() -> int:
    """What Redis does to a message unacknowledged for the visibility timeout: back to its
    queue. Forced now through kombu's own restore with a timeout of 0. Returns how many
    messages were unacknowledged."""
    from config.celery import app

    with app.connection_for_write(transport_options={"visibility_timeout": 0}) as conn:
        channel = conn.default_channel
        waiting = channel.client.hlen(channel.unacked_key)
        channel.qos.restore_visible(num=100)
        return waiting


def test_a_killed_worker_s_chunk_is_queued_again_and_finished_by_a_new_worker_filesystem(
    settings, filesystem_broker, start_worker
):
    """The embedded broker drops a message its worker took: the sweep of the next worker to
    start queues the lost chunk again; nothing is stored twice and the report is the rows."""
    settings.FACET_IMPORT_STALE_SECONDS = STALE_S
    env = {**WORKER_ENV, "FACET_IMPORT_CHUNK_FILES": "3"}
    first = start_worker(filesystem_broker, queues="default", extra_env=env)
    batch = _upload(make_study(), images=18)
    chunks = ImportChunk.objects.filter(batch=batch)
    _kill_when(
        first,
        lambda: (
            chunks.filter(status=JobStatus.SUCCEEDED).exists()
            and chunks.filter(status=JobStatus.RUNNING).exists()
        ),
    )
    lost = chunks.get(status=JobStatus.RUNNING)
    batch.refresh_from_db()
    done_at_kill = batch.done
    assert batch.status == JobStatus.RUNNING and done_at_kill < batch.total == 18
    time.sleep(STALE_S + 1)

    second = start_worker(filesystem_broker, queues="default", extra_env=env)
    seen = _finish_watching_done(batch)
    assert batch.status == JobStatus.SUCCEEDED, (batch.error, second.output()[-3000:])
    assert "its worker was lost; queued again (attempt 2)" in second.output()
    assert min(seen) >= done_at_kill and seen == sorted(seen)
    lost.refresh_from_db()
    assert lost.status == JobStatus.SUCCEEDED and lost.attempts == 2
    assert (batch.report["chunks"], batch.report["chunks_done"]) == (6, 6)
    assert batch.report["imported"] == 18 and batch.report["duplicates_skipped"] == 0
    assert SourceImage.objects.filter(batch=batch).count() == 18
    _report_matches_rows(batch)
    wait_for(  # just after the batch's commit
        lambda: ImportBatch.objects.get(pk=batch.pk).upload_deleted_at,
        timeout=10,
        message="the upload deleted",
    )


def test_a_killed_worker_s_import_redelivered_by_redis_is_finished_once(
    settings, redis_broker, start_worker
):
    settings.FACET_IMPORT_STALE_SECONDS = STALE_S
    first = start_worker(redis_broker, queues="default", extra_env=WORKER_ENV)
    assert "Redis visibility timeout: 22800s" in first.output()  # 6 h 5 min + 15 min
    batch = _upload(make_study(), images=24)
    _kill_when(first, lambda: ImportBatch.objects.get(pk=batch.pk).done >= 2)
    batch.refresh_from_db()
    done_at_kill = batch.done
    assert batch.status == JobStatus.RUNNING and done_at_kill < batch.total == 24
    assert _redis_deliver_again() == 1  # the killed worker's message, never acknowledged
    time.sleep(STALE_S + 1)

    second = start_worker(redis_broker, queues="default", extra_env=WORKER_ENV)
    seen = _finish_watching_done(batch)
    assert batch.status == JobStatus.SUCCEEDED, (batch.error, second.output()[-3000:])
    # Redelivered (and perhaps queued again by the new worker's sweep too): claimed once more.
    assert batch.attempts == 2
    assert min(seen) >= done_at_kill and seen == sorted(seen)
    assert batch.report["imported"] == 24 and batch.report["duplicates_skipped"] == 0
    assert SourceImage.objects.filter(batch=batch).count() == 24
    _report_matches_rows(batch)


def test_a_message_redelivered_while_its_import_runs_does_nothing(redis_broker, start_worker):
    """The probe's case: the visibility timeout ran out while the import ran and a second
    worker got the message. It finds the import claimed with a fresh heartbeat and leaves it;
    progress never goes back and the report is the rows."""
    workers = [start_worker(redis_broker, queues="default", extra_env=CPU_ONLY) for _ in "ab"]
    batch = _upload(make_study(), images=30)
    wait_for(
        lambda: ImportBatch.objects.get(pk=batch.pk).done >= 2,
        timeout=120,
        interval=0.05,
        message="the import under way",
    )
    assert _redis_deliver_again() == 1
    seen = _finish_watching_done(batch)
    logs = "".join(worker.output() for worker in workers)
    assert batch.status == JobStatus.SUCCEEDED, (batch.error, logs[-3000:])
    assert f"import batch {batch.pk}: this delivery does nothing (running" in logs
    assert batch.attempts == 1 and seen == sorted(seen)
    assert batch.report["imported"] == 30 and batch.report["duplicates_skipped"] == 0
    _report_matches_rows(batch)
