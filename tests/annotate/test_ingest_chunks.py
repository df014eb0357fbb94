"""Large uploads split into chunk tasks keyed by (batch, start, stop), merged into one report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile

from annotate.models import ImportBatch, ImportChunk, JobStatus, SourceImage
from annotate.services import ingest as ingest_service
from annotate.services.image_pipeline import ImagePipeline
from annotate.services.ingest import import_batch_process, import_chunk_process
from tests.annotate import hostile
from tests.factories import make_study

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sweep_only_when_called")]


def _queued_batch(study) -> ImportBatch:
    files = {f"q/{i}.jpg": hostile.good_jpeg(224 + 8 * i) for i in range(5)}
    files["q/bad.jpg"] = hostile.html_as_jpeg()
    batch = ImportBatch(study=study, kind=ImportBatch.Kind.IMAGES, source_name="big.zip")
    batch.upload.save("big.zip", ContentFile(hostile.zip_bytes(files)), save=False)
    batch.manifest.save(
        "m.csv",
        ContentFile(b"file,query\nq/0.jpg,nurse\nq/9.jpg,nurse\n../x.jpg,nurse\n"),
        save=False,
    )
    batch.save()
    return batch


def _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("annotate.tasks.import_images_chunk.delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        planned = import_batch_process(batch_id=batch.pk, detector=detector)
    return planned, sent


def test_a_large_upload_is_planned_into_chunk_tasks_and_merged_in_any_order(
    settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    settings.FACET_IMPORT_CHUNK_FILES = 2
    batch = _queued_batch(make_study())
    planned, sent = _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks)
    assert planned.status == JobStatus.RUNNING and planned.total == 6
    assert sent == [(batch.pk, 0, 2), (batch.pk, 2, 4), (batch.pk, 4, 6)]
    for _, start, stop in reversed(sent):  # workers may finish in any order
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED and batch.done == batch.total == 6
    report = batch.report
    assert (report["chunks"], report["chunks_done"]) == (3, 3)
    assert report["imported"] == 5 and report["faces_found"] == 5 and report["rejected"] == 1
    assert report["rejected_files"][0]["file"] == "q/bad.jpg"
    assert {(row["line"], row["reason"].split(":")[0]) for row in report["rejected_rows"]} == {
        (4, "bad file name"),
        (3, "names a file that is not in the upload"),
    }
    assert SourceImage.objects.get(original_name="q/0.jpg").query == "nurse"
    assert SourceImage.objects.count() == 5


def test_a_failed_chunk_fails_the_batch_naming_its_files_and_keeps_the_others(
    settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    settings.FACET_IMPORT_CHUNK_FILES = 2
    batch = _queued_batch(make_study())
    _, sent = _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks)
    original = ImagePipeline.run

    def run(self, work):
        if work and work[0][0].name == "q/2.jpg":
            raise OSError("worker lost its volume")
        return original(self, work)

    monkeypatch.setattr(ImagePipeline, "run", run)
    for _, start, stop in sent:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith(
        "Files 3–4 could not be imported (OSError: worker lost its volume)"
    )
    assert SourceImage.objects.count() == 3 and batch.report["chunks_done"] == 3


def test_small_uploads_are_imported_in_the_first_task(
    detector, monkeypatch, django_capture_on_commit_callbacks
):
    batch = _queued_batch(make_study())
    finished, sent = _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks)
    assert sent == [] and finished.status == JobStatus.SUCCEEDED
    assert finished.report["imported"] == 5 and "chunks" not in finished.report


class _Killed(BaseException):
    """What SIGKILL looks like from inside: nothing after it runs, no except clause sees it."""


def test_a_chunk_run_again_after_a_lost_worker_counts_its_files_once(
    settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    settings.FACET_IMPORT_CHUNK_FILES = 3
    batch = _queued_batch(make_study())
    _, sent = _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks)
    (_, start, stop), second = sent
    # The first delivery stores its images, then the worker dies before recording the chunk.
    original_finish = ingest_service.chunk_finish

    def killed(**kwargs):
        raise _Killed()

    monkeypatch.setattr(ingest_service, "chunk_finish", killed)
    with pytest.raises(_Killed):
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    monkeypatch.setattr(ingest_service, "chunk_finish", original_finish)
    assert SourceImage.objects.count() == 3
    chunk = ImportChunk.objects.get(batch=batch, start=start)
    # Delivered again while its heartbeat is fresh (the worker may still be alive): nothing.
    import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    assert ImportChunk.objects.get(pk=chunk.pk).attempts == 1
    # Its heartbeat goes stale and the message comes back; every chunk completes.
    ImportChunk.objects.filter(pk=chunk.pk).update(
        heartbeat_at=chunk.heartbeat_at - timedelta(seconds=settings.FACET_IMPORT_STALE_SECONDS + 1)
    )
    for _, start, stop in sent:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    batch.refresh_from_db()
    assert batch.status == JobStatus.SUCCEEDED
    report = batch.report
    assert report["imported"] == 5 and report["duplicates_skipped"] == 0
    assert report["faces_found"] == 5 and SourceImage.objects.count() == 5
    assert ImportChunk.objects.get(pk=chunk.pk).attempts == 2


def test_near_duplicates_across_chunks_that_ran_together_are_flagged_at_the_end(
    settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    """Every image holds the same face; chunks that looked at the query before any of them
    stored (as concurrent ones do) flag nothing of each other's, the last one mends that."""
    from annotate.ingest.phash import HashIndex
    from annotate.models import Face

    settings.FACET_IMPORT_CHUNK_FILES = 2
    batch = _queued_batch(make_study())
    _, sent = _plan(batch, detector, monkeypatch, django_capture_on_commit_callbacks)
    snapshots = {}  # each chunk's view of the query: taken before any chunk stored a face
    monkeypatch.setattr(
        ImagePipeline,
        "_hash_index",
        lambda pipeline, query: snapshots.setdefault((id(pipeline), query), HashIndex()),
    )
    for _, start, stop in sent:
        import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    faces = list(Face.objects.filter(source_image__batch=batch).order_by("id"))
    by_query: dict[str, list[Face]] = {}
    for face in faces:
        by_query.setdefault(face.source_image.query, []).append(face)
    first_of_query = {group[0].pk for group in by_query.values()}
    for face in faces:
        if face.pk in first_of_query:
            assert face.near_duplicate_of_id is None
        else:  # points at an earlier face of its own query
            assert face.near_duplicate_of_id < face.pk
            assert Face.objects.get(pk=face.near_duplicate_of_id).source_image.query == (
                face.source_image.query
            )
    batch.refresh_from_db()
    assert batch.report["near_duplicate_faces"] == len(faces) - len(first_of_query) == 3
