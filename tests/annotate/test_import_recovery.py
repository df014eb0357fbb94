"""Imports survive lost workers and redelivered messages, and their uploads do not linger.

Claims make a second delivery of a message a no-op, the sweep queues lost work again (or
fails it after FACET_IMPORT_MAX_ATTEMPTS claims), a finished report's counts are read from the
rows, the Redis visibility timeout is checked against every task's hard limit when a worker
starts, and uploads are deleted FACET_UPLOAD_RETENTION_HOURS after the import finished.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from annotate.models import Face, ImportBatch, ImportChunk, JobStatus, SourceImage
from annotate.roles import Role
from annotate.selectors.imports import import_counts
from annotate.services import import_jobs, import_sweep
from annotate.services import ingest as ingest_service
from annotate.services.image_pipeline import ImagePipeline
from annotate.services.import_jobs import (
    ClaimLost,
    Progress,
    batch_claim,
    batch_conclude,
    chunk_claim,
)
from annotate.services.import_sweep import imports_sweep
from annotate.services.ingest import import_batch_process, import_chunk_process
from annotate.services.uploads import uploads_expire
from tests.annotate import hostile
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sweep_only_when_called")]


class _Killed(BaseException):
    """What SIGKILL looks like from inside: nothing after it runs, no except clause sees it."""


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """Messages the services send (chunk tasks, imports queued again), captured in order."""
    messages: list[tuple] = []
    monkeypatch.setattr(
        "annotate.tasks.import_images_chunk.delay", lambda *a: messages.append(("chunk", *a))
    )
    monkeypatch.setattr(
        "annotate.tasks.import_images.delay", lambda *a: messages.append(("batch", *a))
    )
    return messages


def _queued_batch(study, *, images: int = 5) -> ImportBatch:
    files = {f"q/{i}.jpg": hostile.good_jpeg(224 + 8 * i) for i in range(images)}
    files["q/bad.jpg"] = hostile.html_as_jpeg()
    batch = ImportBatch(study=study, kind=ImportBatch.Kind.IMAGES, source_name="photos.zip")
    batch.upload.save("photos.zip", ContentFile(hostile.zip_bytes(files)), save=False)
    batch.manifest.save("m.csv", ContentFile(b"file,query\nq/0.jpg,nurse\n"), save=False)
    batch.save()
    return batch


def _go_stale(model, pk: int, settings) -> None:
    """Move a claim's heartbeat back past FACET_IMPORT_STALE_SECONDS (its worker went quiet)."""
    back = timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS + 1)
    row = model.objects.get(pk=pk)
    model.objects.filter(pk=pk).update(heartbeat_at=row.heartbeat_at - back)


def _split(batch, detector, settings, sent, capture) -> list[tuple[int, int]]:
    settings.FACET_IMPORT_CHUNK_FILES = 2
    with capture(execute=True):
        import_batch_process(batch_id=batch.pk, detector=detector)
    return [(start, stop) for kind, _, start, stop in sent if kind == "chunk"]


def _report_matches_rows(batch: ImportBatch) -> None:
    counts = import_counts(batch_id=batch.pk)
    assert {key: batch.report[key] for key in counts} == counts
    assert counts["imported"] == SourceImage.objects.filter(batch=batch).count()
    assert counts["faces_found"] == Face.objects.filter(source_image__batch=batch).count()


# --- a second delivery of the same message ---------------------------------------------------


def test_a_second_delivery_of_a_finished_chunk_changes_nothing(
    settings, detector, sent, django_capture_on_commit_callbacks
):
    batch = _queued_batch(make_study())
    chunks = _split(batch, detector, settings, sent, django_capture_on_commit_callbacks)
    for start, stop in chunks:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED and batch.report["imported"] == 5
    before = (batch.report, batch.done, list(ImportChunk.objects.values()))
    # Every message delivered once more: the chunks, and the one that planned them.
    for start, stop in chunks:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    import_batch_process(batch_id=batch.pk, detector=detector)
    batch.refresh_from_db()
    assert (batch.report, batch.done, list(ImportChunk.objects.values())) == before
    assert SourceImage.objects.count() == 5 and Face.objects.count() == 5
    _report_matches_rows(batch)


def test_a_second_delivery_of_a_running_chunk_does_nothing_while_its_heartbeat_is_fresh(
    settings, detector, sent, django_capture_on_commit_callbacks
):
    batch = _queued_batch(make_study())
    (start, stop), *_ = _split(batch, detector, settings, sent, django_capture_on_commit_callbacks)
    first = chunk_claim(batch_id=batch.pk, start=start, stop=stop)  # a worker is on it
    import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    chunk = ImportChunk.objects.get(pk=first.chunk_id)
    assert (chunk.status, chunk.claimed_by, chunk.attempts) == (JobStatus.RUNNING, first.token, 1)
    assert not SourceImage.objects.exists()


def test_a_redelivered_import_runs_once_and_its_report_matches_the_rows(
    settings, detector, monkeypatch, sent
):
    """The probe's case: a second copy of a running import reset progress and finished last
    with a report ("imported 33, 7 duplicates") that contradicted the rows."""
    monkeypatch.setattr(import_jobs, "PROGRESS_INTERVAL_S", 0.0)
    batch = _queued_batch(make_study())
    claims = []
    original_claim, original_store = (
        ingest_service.batch_claim,
        ImagePipeline._store_chunk,
    )
    monkeypatch.setattr(
        ingest_service,
        "batch_claim",
        lambda **kw: claims.append(original_claim(**kw)) or claims[-1],
    )

    def store_then_die(pipeline, chunk, crops):
        original_store(pipeline, chunk, crops)
        if SourceImage.objects.count() >= 2:
            raise _Killed()

    monkeypatch.setattr(ImagePipeline, "_store_chunk", store_then_die)
    with pytest.raises(_Killed):
        import_batch_process(batch_id=batch.pk, detector=detector)
    monkeypatch.setattr(ImagePipeline, "_store_chunk", original_store)
    batch.refresh_from_db()
    done_at_death = batch.done
    assert batch.status == JobStatus.RUNNING and done_at_death >= 2

    # Delivered again while the first copy's heartbeat is fresh: nothing happens.
    import_batch_process(batch_id=batch.pk, detector=detector)
    assert claims[-1] is None and SourceImage.objects.count() == 2

    # The heartbeat goes stale; the next delivery takes over and never moves progress back.
    # It looked for stored files before the first copy stored its two (a race the unique
    # constraint settles): they are counted as this import's, not as duplicates.
    _go_stale(ImportBatch, batch.pk, settings)
    original_init = ImagePipeline.__init__

    def init_with_an_old_snapshot(pipeline, *args):
        original_init(pipeline, *args)
        pipeline.existing = {}

    monkeypatch.setattr(ImagePipeline, "__init__", init_with_an_old_snapshot)
    seen: list[int] = []
    original_save = Progress.save

    def save_and_watch(progress):
        original_save(progress)
        seen.append(ImportBatch.objects.get(pk=batch.pk).done)

    monkeypatch.setattr(Progress, "save", save_and_watch)
    import_batch_process(batch_id=batch.pk, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED and batch.attempts == 2
    assert seen and min(seen) >= done_at_death and seen == sorted(seen)
    assert batch.done == batch.total == 6
    assert (batch.report["imported"], batch.report["duplicates_skipped"]) == (5, 0)
    assert batch.report["rejected"] == 1 and SourceImage.objects.count() == 5
    _report_matches_rows(batch)

    # The first copy, had it survived, could neither report progress nor finish the batch.
    stale_claim = claims[0]
    with pytest.raises(ClaimLost):
        Progress(stale_claim, interval=0).advance(1)
    report = dict(batch.report)
    batch_conclude(claim=stale_claim, report={"imported": 33, "duplicates_skipped": 7})
    batch.refresh_from_db()
    assert batch.report == report and batch.status == JobStatus.SUCCEEDED


# --- the sweep -------------------------------------------------------------------------------


def test_the_sweep_queues_a_lost_chunk_again_then_fails_it_after_its_attempts(
    settings, detector, sent, django_capture_on_commit_callbacks
):
    settings.FACET_IMPORT_MAX_ATTEMPTS = 2
    batch = _queued_batch(make_study())
    chunks = _split(batch, detector, settings, sent, django_capture_on_commit_callbacks)
    start, stop = chunks[0]
    claim = chunk_claim(batch_id=batch.pk, start=start, stop=stop)
    assert imports_sweep() == 0  # fresh heartbeat: left alone
    _go_stale(ImportChunk, claim.chunk_id, settings)
    sent.clear()
    assert imports_sweep() == 1
    assert sent == [("chunk", batch.pk, start, stop)]
    assert ImportChunk.objects.get(pk=claim.chunk_id).status == JobStatus.QUEUED

    # The second claim is lost too: with its attempts used, the chunk fails with the reason.
    claim = chunk_claim(batch_id=batch.pk, start=start, stop=stop)
    _go_stale(ImportChunk, claim.chunk_id, settings)
    assert imports_sweep() == 1
    chunk = ImportChunk.objects.get(pk=claim.chunk_id)
    assert chunk.status == JobStatus.FAILED and chunk.attempts == 2
    assert chunk.error.startswith("Files 1–2 could not be imported (the worker importing them")
    for start, stop in chunks[1:]:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED and batch.error == chunk.error
    assert batch.report["imported"] == 3  # q/2.jpg .. q/4.jpg; the lost chunk stored nothing
    _report_matches_rows(batch)


def test_the_sweep_queues_a_lost_single_task_import_again_then_fails_it_after_its_attempts(
    settings, sent, django_capture_on_commit_callbacks
):
    settings.FACET_IMPORT_MAX_ATTEMPTS = 2
    batch = _queued_batch(make_study())
    batch_claim(batch_id=batch.pk)
    _go_stale(ImportBatch, batch.pk, settings)
    assert imports_sweep() == 1 and sent == [("batch", batch.pk)]
    batch.refresh_from_db()
    assert batch.status == JobStatus.QUEUED and batch.claimed_by == ""

    batch_claim(batch_id=batch.pk)
    _go_stale(ImportBatch, batch.pk, settings)
    with django_capture_on_commit_callbacks(execute=True):
        assert imports_sweep() == 1
    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED and batch.attempts == 2
    assert batch.error.startswith("The worker importing this upload was lost 2 time(s)")
    assert batch.report["imported"] == 0 and batch.upload_deleted_at is not None


def test_messages_lost_before_any_worker_claimed_their_work_are_sent_again(
    settings, detector, sent, django_capture_on_commit_callbacks
):
    """A worker killed between taking a message and claiming its work: the filesystem broker
    has already dropped the message. Queued work untouched for a stale period is sent again."""
    queued = _queued_batch(make_study())
    split = _queued_batch(make_study())
    chunks = _split(split, detector, settings, sent, django_capture_on_commit_callbacks)
    sent.clear()
    assert imports_sweep() == 0  # just sent: nothing to do
    stale = timezone.now() + timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS + 1)
    assert imports_sweep(now=stale) == 1 + len(chunks)
    assert sent == [("batch", queued.pk)] + [("chunk", split.pk, *bounds) for bounds in chunks]
    sent.clear()
    assert imports_sweep(now=stale) == 0  # once per stale period
    # While a chunk of the batch runs, the others are only waiting their turn.
    chunk_claim(batch_id=split.pk, start=chunks[0][0], stop=chunks[0][1])
    later = stale + timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS + 1)
    ImportChunk.objects.filter(batch=split, status=JobStatus.RUNNING).update(heartbeat_at=later)
    ImportBatch.objects.filter(pk=split.pk).update(heartbeat_at=stale)
    imports_sweep(now=later + timedelta(seconds=1))
    assert [message for message in sent if message[0] == "chunk"] == []


def test_a_lost_import_command_is_failed_not_handed_to_a_worker_that_cannot_read_it(
    settings, sent, tmp_path
):
    from annotate.services.ingest import images_import

    (tmp_path / "a.jpg").write_bytes(hostile.good_jpeg())

    def killed(*args, **kwargs):
        raise _Killed()

    with pytest.MonkeyPatch.context() as patch:  # Ctrl-C, or the machine went down
        patch.setattr(ImagePipeline, "run", killed)
        with pytest.raises(_Killed):
            images_import(study=make_study(), source=tmp_path)
    batch = ImportBatch.objects.get()
    _go_stale(ImportBatch, batch.pk, settings)
    assert imports_sweep() == 1 and sent == []
    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("The process importing this folder stopped")


def test_polling_the_status_page_recovers_an_import_the_filesystem_broker_lost(
    client, settings, monkeypatch, sent
):
    """The embedded broker never hands a lost message back; the page's poll sweeps."""
    monkeypatch.setattr(import_sweep, "_last_sweep", None)
    study = make_study()
    batch = _queued_batch(study)
    batch_claim(batch_id=batch.pk)
    _go_stale(ImportBatch, batch.pk, settings)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    state = client.get(reverse("annotate:import_status", args=[batch.pk])).json()
    assert state["status"] == JobStatus.QUEUED and sent == [("batch", batch.pk)]


def test_a_batch_left_running_after_its_last_chunk_is_finished_by_the_sweep(
    settings, detector, sent, django_capture_on_commit_callbacks, monkeypatch
):
    batch = _queued_batch(make_study())
    chunks = _split(batch, detector, settings, sent, django_capture_on_commit_callbacks)
    conclude = ingest_service.batch_conclude_chunks
    monkeypatch.setattr(ingest_service, "batch_conclude_chunks", lambda **kw: None)  # lost here
    for start, stop in chunks:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    monkeypatch.setattr(ingest_service, "batch_conclude_chunks", conclude)
    assert ImportBatch.objects.get(pk=batch.pk).status == JobStatus.RUNNING
    _go_stale(ImportBatch, batch.pk, settings)
    sent.clear()
    imports_sweep()
    (kind, batch_id, start, stop), *_ = sent
    import_chunk_process(batch_id=batch_id, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED and batch.report["chunks_done"] == 3
    _report_matches_rows(batch)


def test_the_report_shown_counts_the_rows_not_what_a_task_stored(client):
    study = make_study()
    batch = _queued_batch(study)
    SourceImage.objects.create(study=study, batch=batch, sha256="a" * 64, file="x.jpg")
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=JobStatus.SUCCEEDED, report={"imported": 33, "duplicates_skipped": 7}
    )
    client.force_login(make_user(Role.RESEARCHER, study=study))
    report = client.get(reverse("annotate:import_status", args=[batch.pk])).json()["report"]
    assert (report["imported"], report["duplicates_skipped"]) == (1, 7)


# --- uploads ---------------------------------------------------------------------------------


def test_the_upload_is_deleted_when_the_import_finishes_and_the_page_still_works(
    client, detector, django_capture_on_commit_callbacks
):
    study = make_study()
    batch = _queued_batch(study)
    files = [batch.upload.name, batch.manifest.name]
    with django_capture_on_commit_callbacks(execute=True):
        import_batch_process(batch_id=batch.pk, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED and batch.upload_deleted_at is not None
    assert (batch.upload.name, batch.manifest.name) == ("", "")
    assert not any(default_storage.exists(name) for name in files)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.get(reverse("annotate:import_detail", args=[batch.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'data-testid="upload-deleted"' in html
    assert 'data-key="imported">5<' in html and "photos.zip" in html


def test_uploads_are_kept_for_the_retention_period_then_deleted_by_the_sweep(
    settings, detector, sent, django_capture_on_commit_callbacks
):
    settings.FACET_UPLOAD_RETENTION_HOURS = 2
    finished = _queued_batch(make_study())
    with django_capture_on_commit_callbacks(execute=True):
        import_batch_process(batch_id=finished.pk, detector=detector)
    running = _queued_batch(make_study())
    batch_claim(batch_id=running.pk)
    finished.refresh_from_db()
    name = finished.upload.name
    assert default_storage.exists(name)
    assert uploads_expire(now=timezone.now() + timedelta(hours=1)) == 0
    assert default_storage.exists(name)
    assert imports_sweep(now=timezone.now() + timedelta(hours=3)) == 1  # `running` requeued
    finished.refresh_from_db()
    assert not default_storage.exists(name) and finished.upload.name == ""
    assert finished.report["imported"] == 5
    running.refresh_from_db()  # not finished: its upload stays
    assert running.upload_deleted_at is None and default_storage.exists(running.upload.name)


# --- the Redis visibility timeout ------------------------------------------------------------


def _task_limits() -> dict[str, float]:
    import annotate.tasks  # noqa: F401  (register every task, as a worker does)
    import modeling.tasks  # noqa: F401
    from config.celery import app, task_time_limits

    return task_time_limits(app)


def test_a_visibility_timeout_at_or_below_a_task_hard_limit_is_refused_naming_the_task():
    from config.celery import VisibilityTimeoutTooShort, visibility_timeout_resolve

    limits = _task_limits()
    assert limits["annotate.tasks.import_images"] == 6 * 3600 + 300
    with pytest.raises(VisibilityTimeoutTooShort) as caught:
        visibility_timeout_resolve(configured=3600, limits=limits)
    message = str(caught.value)
    # Of the tasks with the longest limit, the first by name (the same one on every run).
    first = min(name for name, limit in limits.items() if limit == max(limits.values()))
    assert f"{first} (21900s)" in message and "\n" not in message
    with pytest.raises(VisibilityTimeoutTooShort):
        visibility_timeout_resolve(configured=int(max(limits.values())), limits=limits)


def test_the_default_visibility_timeout_is_above_every_task_hard_limit():
    from config.celery import visibility_timeout_resolve

    limits = _task_limits()
    resolved = visibility_timeout_resolve(configured=None, limits=limits)
    assert all(resolved > limit for limit in limits.values())
    assert visibility_timeout_resolve(configured=resolved, limits=limits) == resolved


@pytest.mark.slow
def test_a_redis_worker_refuses_to_start_with_a_visibility_timeout_below_a_task_limit(
    redis_url, tmp_path
):
    import os
    import subprocess

    from config.celery import VISIBILITY_TOO_SHORT, worker_argv
    from tests.conftest import ROOT

    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_VISIBILITY_TIMEOUT": "3600",
        "FACET_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        worker_argv(queues="default", concurrency=1, hostname="refused@%h"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "ready." not in done.stdout + done.stderr
    prefix = VISIBILITY_TOO_SHORT.split("{task}")[0].format(timeout=3600)
    assert last.startswith(f"facet worker not started: {prefix}")
    # It names a task with the longest hard limit (the imports share 6 h + 5 min).
    named = last.removeprefix(f"facet worker not started: {prefix}").split(" ")[0]
    assert current_app.tasks[named].time_limit == 6 * 3600 + 300
