"""With FACET_STORAGE_URL set, media, checkpoints and the feature cache live in the bucket:
import, train, predict and serve all go through a real S3-compatible server (moto's), and
nothing lands on local disk."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from annotate.models import Face, FaceStatus, JobStatus, SourceImage
from annotate.roles import Role
from annotate.services.ingest import import_batch_create, import_batch_process
from modeling.ml.checkpoint import checkpoint_load
from modeling.ml.errors import CHECKPOINT_CHANGED, CheckpointError
from modeling.models import Prediction
from modeling.services.prediction import predictions_run_create, predictions_run_execute
from modeling.services.training import (
    artifact_verified,
    training_run_create,
    training_run_execute,
)
from tests.annotate import hostile
from tests.factories import make_faces, make_source_image, make_study, make_user
from tests.modeling.conftest import TINY
from tests.modeling.helpers import trained_version

pytestmark = pytest.mark.django_db

REAL_FACES = 4


def _local_files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def _no_local_files(settings) -> None:
    assert _local_files(Path(settings.MEDIA_ROOT), Path(settings.FACET_ARTIFACT_ROOT)) == []


def _predict(version):
    return predictions_run_execute(run_id=predictions_run_create(version=version, enqueue=False).pk)


def test_an_uploaded_zip_of_real_faces_is_imported_into_the_bucket_and_not_onto_local_disk(
    s3_bucket, settings, fairface540, detector, django_capture_on_commit_callbacks
):
    study = make_study()
    researcher = make_user(Role.RESEARCHER, study=study)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((fairface540 / "fairface").glob("*.jpg"))[:REAL_FACES]:
            zipped.write(path, path.name)
    upload = SimpleUploadedFile("faces.zip", archive.getvalue(), "application/zip")

    batch = import_batch_create(study=study, user=researcher, upload=upload)
    assert f"media/{batch.upload.name}" in s3_bucket.keys("media")  # the upload went up too
    with django_capture_on_commit_callbacks(execute=True):  # the upload's clean-up
        batch = import_batch_process(batch_id=batch.pk, detector=detector)

    assert batch.status == JobStatus.SUCCEEDED, batch.error
    assert batch.report["imported"] == REAL_FACES
    faces = list(Face.objects.filter(study=study))
    assert len(faces) >= REAL_FACES - 1  # MTCNN finds nearly every FairFace face
    images = list(SourceImage.objects.filter(study=study))
    stored = {f"media/{image.file.name}" for image in images}
    stored |= {f"media/{face.crop.name}" for face in faces}
    # Exactly the images and crops; the upload was deleted from the bucket once imported.
    assert s3_bucket.keys("media") == stored
    for face in faces:
        data = s3_bucket.read(f"media/{face.crop.name}")
        assert hashlib.sha256(data).hexdigest() == face.crop_sha256
        assert Image.open(io.BytesIO(data)).size == (224, 224)
    _no_local_files(settings)


def test_training_and_prediction_read_crops_from_the_bucket_and_keep_their_files_there(
    s3_bucket, settings
):
    version = trained_version(faces=60)

    artifacts = s3_bucket.keys("artifacts")
    checkpoint = s3_bucket.read(f"artifacts/{version.artifact.name}")
    assert hashlib.sha256(checkpoint).hexdigest() == version.artifact_sha256
    entries = {key for key in artifacts if key.startswith("artifacts/feature-cache/")}
    vectors = [key for key in entries if key.endswith(".f32")]
    assert len(vectors) == version.metrics["cache"]["misses"] > 0
    assert any(key.endswith("/key.json") for key in entries)

    run = _predict(version)
    assert run.status == JobStatus.SUCCEEDED, run.error
    expected = Face.objects.filter(study=version.study).exclude(coding_status=FaceStatus.EXCLUDED)
    assert Prediction.objects.filter(version=version).count() == expected.count() == run.total

    # A second run on another worker would find the features in the bucket: all hits.
    again = training_run_execute(
        run_id=training_run_create(study=version.study, config=TINY, enqueue=False).pk
    )
    assert again.metrics["cache"] == {"hits": len(vectors), "misses": 0}
    _no_local_files(settings)


def test_a_checkpoint_with_one_byte_changed_in_the_bucket_is_refused(s3_bucket, settings):
    version = trained_version(faces=60)
    key = f"artifacts/{version.artifact.name}"
    intact = s3_bucket.read(key)
    changed = bytearray(intact)
    changed[len(changed) // 2] ^= 0xFF  # inside the weights: the file still loads
    s3_bucket.write(key, bytes(changed))
    checkpoint_load(io.BytesIO(bytes(changed)))  # the loader alone would not notice

    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        artifact_verified(version)
    run = _predict(version)
    assert run.status == JobStatus.FAILED
    assert run.error == CHECKPOINT_CHANGED.format(number=version.number)
    assert not Prediction.objects.exists()

    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=f"{s3_bucket.prefix}/{key}")
    run = _predict(version)
    assert run.status == JobStatus.FAILED and "file not found" in run.error

    s3_bucket.write(key, intact)
    assert _predict(version).status == JobStatus.SUCCEEDED
    _no_local_files(settings)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_crop_is_streamed_from_the_bucket_to_a_member_and_to_no_one_else(
    s3_bucket, settings, client
):
    study = make_study()
    (face,) = make_faces(study, 1)
    url = reverse("annotate:face_crop", args=[face.pk])

    client.force_login(make_user(Role.RESEARCHER, study=make_study()))
    assert client.get(url).status_code == 404

    client.force_login(make_user(Role.RESEARCHER, study=study))
    response = client.get(url)
    assert response.status_code == 200
    assert _body(response) == s3_bucket.read(f"media/{face.crop.name}")
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "X-Accel-Redirect" not in response and "Location" not in response

    s3_bucket.client.delete_object(
        Bucket=s3_bucket.name, Key=f"{s3_bucket.prefix}/media/{face.crop.name}"
    )
    assert client.get(url).status_code == 404
    _no_local_files(settings)


def test_a_source_image_in_the_bucket_is_shown_without_metadata_and_downloaded_as_uploaded(
    s3_bucket, settings, client
):
    study = make_study()
    exif = Image.Exif()
    exif[0x013B] = "Secret Photographer"
    original = hostile.encode(hostile.astronaut(256), "JPEG", exif=exif)
    image = make_source_image(study)
    image.file.save("scene.jpg", ContentFile(original))
    client.force_login(make_user(Role.RESEARCHER, study=study))

    shown = _body(client.get(reverse("annotate:image_display", args=[image.pk])))
    image.refresh_from_db()
    assert s3_bucket.read(f"media/{image.display.name}") == shown  # the copy is kept there
    assert b"Secret Photographer" not in shown and not Image.open(io.BytesIO(shown)).getexif()
    downloaded = client.get(reverse("annotate:image_original", args=[image.pk]))
    assert _body(downloaded) == original
    assert downloaded["Content-Disposition"].startswith("attachment")
    _no_local_files(settings)


def test_each_chunk_of_a_large_upload_fetches_its_own_files_from_the_bucket_not_the_whole_zip(
    s3_bucket, settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    from annotate.models import ImportBatch
    from annotate.services.ingest import import_chunk_process

    monkeypatch.setattr("config.storage.RANGE_BYTES", 64 * 1024)
    settings.FACET_IMPORT_CHUNK_FILES = 2
    files = {f"q/{i}.jpg": hostile.good_jpeg(224 + 8 * i) for i in range(6)}
    files["q/recording.bin"] = random.Random(1).randbytes(4 * 1024 * 1024)  # skipped, by name
    upload = hostile.zip_bytes(files)
    batch = ImportBatch(study=make_study(), kind=ImportBatch.Kind.IMAGES, source_name="big.zip")
    batch.upload.save("big.zip", ContentFile(upload), save=False)
    batch.save()
    fetched: list[int] = []
    default_storage.connection.meta.client.meta.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: fetched.append(parsed["ContentLength"])
    )

    sent = []
    monkeypatch.setattr("annotate.tasks.import_images_chunk.delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):  # the split sends its chunks
        import_batch_process(batch_id=batch.pk, detector=detector)
    with django_capture_on_commit_callbacks(execute=True):  # the upload's clean-up
        for _, start, stop in sent:
            import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)

    batch.refresh_from_db()
    assert len(sent) == 3  # 6 images in chunks of 2
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    assert batch.report["imported"] == 6 and batch.report["rejected"] == 1
    # Planning and three chunks fetched less than one copy of the upload: each read the zip's
    # directory and its own files. Opened through the storage, each would have fetched it all.
    assert fetched and sum(fetched) < len(upload) / 2, (sum(fetched), len(upload), fetched)


@pytest.mark.parametrize("where", ["local disk", "bucket"])
def test_an_upload_gone_from_storage_fails_its_import_saying_so_and_loses_nothing(
    where, request, detector
):
    from django.core.files.storage import default_storage

    from annotate.models import ImportBatch
    from annotate.services.ingest import UPLOAD_MISSING

    if where == "bucket":
        request.getfixturevalue("s3_bucket")
    study = make_study()
    kept = make_source_image(study)
    batch = ImportBatch(study=study, kind=ImportBatch.Kind.IMAGES, source_name="faces.zip")
    batch.upload.save("faces.zip", ContentFile(hostile.zip_bytes({"a.jpg": hostile.good_jpeg()})))
    default_storage.delete(batch.upload.name)  # removed by hand, or by a sweep gone wrong

    batch = import_batch_process(batch_id=batch.pk, detector=detector)
    assert batch.status == JobStatus.FAILED
    assert batch.error.endswith(UPLOAD_MISSING)  # not a path, a key or an exception's name
    assert list(SourceImage.objects.filter(study=study)) == [kept]


def test_a_chunk_whose_upload_left_the_bucket_fails_its_files_saying_so(
    s3_bucket, settings, detector, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    from annotate.models import ImportBatch
    from annotate.services.ingest import UPLOAD_MISSING, import_chunk_process

    settings.FACET_IMPORT_CHUNK_FILES = 2
    files = {f"q/{i}.jpg": hostile.good_jpeg(224 + 8 * i) for i in range(4)}
    batch = ImportBatch(study=make_study(), kind=ImportBatch.Kind.IMAGES, source_name="big.zip")
    batch.upload.save("big.zip", ContentFile(hostile.zip_bytes(files)))
    sent = []
    monkeypatch.setattr("annotate.tasks.import_images_chunk.delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        import_batch_process(batch_id=batch.pk, detector=detector)
    (_, start, stop), second = sent
    import_chunk_process(batch_id=batch.pk, start=start, stop=stop, detector=detector)
    default_storage.delete(batch.upload.name)
    import_chunk_process(batch_id=batch.pk, start=second[1], stop=second[2], detector=detector)

    batch.refresh_from_db()
    assert batch.status == JobStatus.FAILED
    assert (
        batch.error.startswith("Files 3–4 could not be imported") and UPLOAD_MISSING in batch.error
    )
    assert batch.report["imported"] == 2  # the first chunk's images are kept
