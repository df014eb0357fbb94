"""Importing images into a study: every bad input is reported and the rest is imported whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from annotate.models import Face, ImportBatch, JobStatus, SourceImage
from annotate.services import ingest as ingest_service
from annotate.services.ingest import images_import
from tests.annotate import hostile
from tests.factories import make_study

pytestmark = pytest.mark.django_db

MANIFEST_HEADER = "file,query,job,country,language,rank,source_url,engine\n"


@pytest.fixture
def study():
    return make_study()


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "upload"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _media_files(media_root: Path) -> list[Path]:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def _run(study, source, detector, manifest: str | bytes | None = None) -> ImportBatch:
    if isinstance(manifest, str):
        manifest = manifest.encode("utf-8")
    batch = images_import(study=study, source=source, manifest=manifest, detector=detector)
    batch.refresh_from_db()
    return batch


def _rejected(batch: ImportBatch) -> dict[str, str]:
    return {item["file"]: item["reason"] for item in batch.report["rejected_files"]}


@pytest.mark.parametrize(
    "name,maker,reason_start",
    [
        ("zero.jpg", lambda: b"", "empty file (0 bytes)"),
        ("page.jpg", hostile.html_as_jpeg, "not an image"),
        ("cut.jpg", hostile.truncated_jpeg, "corrupt or truncated image"),
        ("broken.png", hostile.corrupt_png, "corrupt or truncated image"),
        ("bomb.png", lambda: hostile.png_claiming(9_000, 9_000), "decompression bomb refused"),
        ("wide.png", lambda: hostile.png_claiming(20_000, 10), "image too large: 20000×10"),
    ],
    ids=["zero-byte", "not-an-image", "truncated", "corrupt", "decompression-bomb", "huge"],
)
def test_a_bad_file_is_rejected_with_its_reason_and_the_rest_imported(
    tmp_path, media_root, study, detector, name, maker, reason_start
):
    folder = _folder(tmp_path, {"good.jpg": hostile.good_jpeg(), name: maker()})
    batch = _run(study, folder, detector)
    assert batch.status == JobStatus.SUCCEEDED
    assert _rejected(batch)[name].startswith(reason_start)
    assert batch.report["imported"] == 1 and batch.report["faces_found"] == 1
    assert (batch.done, batch.total) == (2, 2)
    image = SourceImage.objects.get(study=study)
    assert image.original_name == "good.jpg" and image.faces.count() == 1
    # Exactly the good image and its crop were written: nothing of the bad file.
    assert len(_media_files(media_root)) == 2


@pytest.mark.parametrize(
    "maker,mode",
    [
        (hostile.cmyk_jpeg, "CMYK"),
        (hostile.palette_png, "P"),
        (hostile.alpha_png, "RGBA"),
        (hostile.grey16_png, "I;16"),
        (hostile.la_png, "LA"),
    ],
    ids=["cmyk", "palette", "alpha", "16-bit", "la"],
)
def test_other_colour_modes_are_imported_and_their_faces_found(
    tmp_path, study, detector, maker, mode
):
    batch = _run(study, _folder(tmp_path, {"odd.img.png": maker()}), detector)
    assert batch.report["imported"] == 1, batch.report
    image = SourceImage.objects.get(study=study)
    assert image.metadata["ingest_notes"] == [f"converted from {mode} to RGB"]
    face = image.faces.get()
    with face.crop.open("rb") as handle:
        crop = Image.open(io.BytesIO(handle.read()))
        assert crop.size == (224, 224) and crop.mode == "RGB"


def test_exif_rotation_is_applied_before_detection(tmp_path, study, detector):
    sideways = Image.open(io.BytesIO(hostile.rotated_with_exif(6))).convert("RGB")
    assert detector.detect([sideways]) == [[]]  # as stored, the face is on its side
    batch = _run(study, _folder(tmp_path, {"turned.jpg": hostile.rotated_with_exif(6)}), detector)
    image = SourceImage.objects.get(study=study)
    assert (image.width, image.height) == (256, 192)  # upright, not the stored 192×256
    assert batch.report["faces_found"] == 1
    face = image.faces.get()
    assert face.box_x + face.box_w <= 256 and face.box_y + face.box_h <= 192
    assert image.metadata["ingest_notes"] == ["EXIF orientation 6 applied"]


def test_animated_gif_is_imported_from_its_first_frame(tmp_path, study, detector):
    batch = _run(study, _folder(tmp_path, {"moving.gif": hostile.animated_gif(3)}), detector)
    assert batch.report["imported"] == 1 and batch.report["faces_found"] == 1
    image = SourceImage.objects.get(study=study)
    assert "animated image: first of 3 frames used" in image.metadata["ingest_notes"]
    assert image.file.name.endswith(".gif")


def test_zip_traversal_is_refused_nothing_lands_outside_and_the_rest_is_imported(
    tmp_path, media_root, study, detector
):
    archive = tmp_path / "upload.zip"
    archive.write_bytes(
        hostile.zip_bytes(
            {
                "../../evil.jpg": hostile.good_jpeg(64),
                "/tmp/abs-evil.jpg": hostile.good_jpeg(64),
                "photos/good.jpg": hostile.good_jpeg(),
            },
            symlinks={"photos/link.jpg": "/etc/passwd"},
        )
    )
    batch = _run(study, archive, detector)
    rejected = _rejected(batch)
    assert "climbs out of the folder" in rejected["../../evil.jpg"]
    assert "absolute path" in rejected["/tmp/abs-evil.jpg"]
    assert rejected["photos/link.jpg"] == "symbolic link refused"
    assert batch.report["imported"] == 1
    assert not list(tmp_path.parent.rglob("evil.jpg")) and not Path("/tmp/abs-evil.jpg").exists()
    assert all(media_root in p.parents for p in _media_files(media_root))


def test_zip_bomb_entry_is_rejected_and_the_rest_imported(tmp_path, settings, study, detector):
    settings.FACET_IMPORT_MAX_FILE_BYTES = 1_000_000
    archive = tmp_path / "upload.zip"
    archive.write_bytes(
        hostile.zip_bytes({"bomb.jpg": b"\0" * 5_000_000, "good.jpg": hostile.good_jpeg()})
    )
    batch = _run(study, archive, detector)
    assert _rejected(batch)["bomb.jpg"] == "file unpacks to more than 1,000,000 bytes"
    assert batch.report["imported"] == 1


def test_zip_bomb_by_total_size_fails_the_batch_with_the_reason(
    tmp_path, settings, study, detector
):
    settings.FACET_IMPORT_MAX_BYTES = 2_000_000
    archive = tmp_path / "upload.zip"
    archive.write_bytes(hostile.zip_bytes({f"{i}.jpg": b"\0" * 1_000_000 for i in range(3)}))
    batch = _run(study, archive, detector)
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("The upload cannot be used, so nothing was imported:")
    assert "would unpack to 3,000,000 bytes" in batch.error
    assert not SourceImage.objects.exists()


def test_zip_with_too_many_files_fails_the_batch_with_the_reason(
    tmp_path, settings, study, detector
):
    settings.FACET_IMPORT_MAX_FILES = 5
    archive = tmp_path / "upload.zip"
    archive.write_bytes(hostile.zip_bytes({f"{i}.jpg": b"x" for i in range(6)}))
    batch = _run(study, archive, detector)
    assert batch.status == JobStatus.FAILED and "holds 6 files; the limit is 5" in batch.error


def test_nested_zip_is_ignored_with_a_reason(tmp_path, study, detector):
    archive = tmp_path / "upload.zip"
    inner = hostile.zip_bytes({"a.jpg": hostile.good_jpeg()})
    archive.write_bytes(hostile.zip_bytes({"more.zip": inner, "good.jpg": hostile.good_jpeg()}))
    batch = _run(study, archive, detector)
    assert _rejected(batch)["more.zip"].startswith("nested archive ignored")
    assert batch.report["imported"] == 1


def test_manifest_metadata_is_stored_and_row_problems_reported(tmp_path, study, detector):
    folder = _folder(
        tmp_path, {"nurse/1.jpg": hostile.good_jpeg(), "loose.png": hostile.palette_png()}
    )
    manifest = (
        MANIFEST_HEADER + "nurse/1.jpg,nurse,nurse,US,en,3,https://example.org/1.jpg,google\n"
        "nurse/1.jpg,nurse,nurse,US,en,3,https://example.org/1.jpg,google\n"
        "nurse/1.jpg,doctor,doctor,US,en,9,,bing\n"
        "nurse/2.jpg,nurse,nurse,US,en,4,,google\n"
        "nurse/3.jpg,nurse,nurse,US,en,not-a-rank,,google\n"
    )
    batch = _run(study, folder, detector, manifest)
    image = SourceImage.objects.get(original_name="nurse/1.jpg")
    assert (image.query, image.job, image.country, image.language, image.rank) == (
        "nurse",
        "nurse",
        "US",
        "en",
        3,
    )
    assert image.source_url == "https://example.org/1.jpg"
    assert image.metadata["engine"] == "google" and image.metadata["manifest_line"] == 2
    rows = {(row["line"], row["reason"]) for row in batch.report["rejected_rows"]}
    assert rows == {
        (3, "duplicate row: line 2 already describes this file identically"),
        (4, "conflicting duplicate: line 2 already describes this file differently"),
        (5, "names a file that is not in the upload"),
        (6, "rank 'not-a-rank' is not a whole number ≥ 0"),
    }
    assert batch.report["files_without_manifest_row"] == ["loose.png"]
    assert batch.report["imported"] == 2


def test_windows_encoded_manifest_is_read_with_a_note(tmp_path, study, detector):
    folder = _folder(tmp_path, {"a.jpg": hostile.good_jpeg()})
    manifest = (MANIFEST_HEADER + "a.jpg,geschäftsführer,ceo,DE,de,1,,\n").encode("cp1252")
    batch = _run(study, folder, detector, manifest)
    assert SourceImage.objects.get().query == "geschäftsführer"
    assert any("read as cp1252" in note for note in batch.report["notes"])


def test_unusable_manifest_fails_the_batch_and_imports_nothing(tmp_path, study, detector):
    folder = _folder(tmp_path, {"a.jpg": hostile.good_jpeg()})
    batch = _run(study, folder, detector, "name,query\na.jpg,q\n")
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("The manifest cannot be used, so nothing was imported:")
    assert not SourceImage.objects.exists()


def test_same_content_is_imported_once_per_study(tmp_path, study, detector):
    data = hostile.good_jpeg()
    folder = _folder(tmp_path, {"a.jpg": data, "copy-of-a.jpg": data})
    first = _run(study, folder, detector)
    assert first.report["imported"] == 1
    assert first.report["duplicates"] == [
        {
            "file": "copy-of-a.jpg",
            "reason": "duplicate: same content as 'a.jpg' earlier in this upload",
        }
    ]
    second = _run(study, folder, detector)
    assert second.report["imported"] == 0 and second.report["duplicates_skipped"] == 2
    assert SourceImage.objects.count() == 1
    other = make_study()
    assert _run(other, folder, detector).report["imported"] == 1


def test_near_duplicate_faces_within_a_query_are_flagged_not_dropped(tmp_path, study, detector):
    folder = _folder(
        tmp_path,
        {
            "a.jpg": hostile.encode(hostile.astronaut(256), "JPEG", quality=95),
            "b.jpg": hostile.encode(hostile.astronaut(256), "JPEG", quality=70),
            "c.jpg": hostile.encode(hostile.astronaut(256), "JPEG", quality=50),
        },
    )
    manifest = MANIFEST_HEADER + "a.jpg,nurse,,,,,,\nb.jpg,nurse,,,,,,\nc.jpg,doctor,,,,,,\n"
    batch = _run(study, folder, detector, manifest)
    assert batch.report["imported"] == 3 and batch.report["near_duplicate_faces"] == 1
    a, b, c = (Face.objects.get(source_image__original_name=n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    assert b.near_duplicate_of == a
    assert a.near_duplicate_of is None and c.near_duplicate_of is None  # c is another query


def test_faces_below_the_minimum_size_are_skipped_and_counted(tmp_path, detector):
    study = make_study(min_face_px=200)
    batch = _run(study, _folder(tmp_path, {"a.jpg": hostile.good_jpeg()}), detector)
    assert batch.report["imported"] == 1
    assert batch.report["faces_found"] == 0 and batch.report["faces_too_small"] == 1
    assert batch.report["images_without_faces"] == 1


def test_detected_face_has_box_score_crop_hash_and_provenance(tmp_path, study, detector):
    _run(study, _folder(tmp_path, {"a.jpg": hostile.good_jpeg(512)}), detector)
    face = Face.objects.get()
    assert face.origin == Face.Origin.DETECTED and face.detector == "mtcnn"
    assert face.detector_score > 0.95
    assert 140 < face.box_x + face.box_w / 2 < 260
    assert len(face.phash) == 16 and len(face.crop_sha256) == 64
    assert face.coding_status == "open" and face.votes_target == study.votes_per_face


def test_an_image_that_fails_to_store_leaves_no_row_and_no_file(
    tmp_path, media_root, study, detector, monkeypatch
):
    from django.db.models.query import QuerySet

    original = QuerySet.bulk_create

    def failing_bulk_create(self, objs, *args, **kwargs):
        if any(getattr(obj, "original_name", "") == "bad-luck.jpg" for obj in objs):
            raise RuntimeError("disk full")
        return original(self, objs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "bulk_create", failing_bulk_create)
    folder = _folder(
        tmp_path, {"bad-luck.jpg": hostile.good_jpeg(256), "fine.jpg": hostile.good_jpeg(300)}
    )
    batch = _run(study, folder, detector)
    assert _rejected(batch) == {"bad-luck.jpg": "could not be stored: disk full"}
    assert list(SourceImage.objects.values_list("original_name", flat=True)) == ["fine.jpg"]
    assert Face.objects.count() == 1
    assert len(_media_files(media_root)) == 2  # fine.jpg and its crop; bad-luck's files removed


def test_a_failure_outside_any_file_marks_the_batch_failed_with_the_reason(
    tmp_path, study, detector, monkeypatch
):
    def broken_listing(*args, **kwargs):
        raise OSError("the shared volume went away")

    monkeypatch.setattr(ingest_service, "upload_list", broken_listing)
    batch = _run(study, _folder(tmp_path, {"a.jpg": hostile.good_jpeg()}), detector)
    assert batch.status == JobStatus.FAILED
    assert "OSError: the shared volume went away" in batch.error
    assert batch.finished_at is not None


cell = st.one_of(
    st.text(max_size=15),
    st.sampled_from(["a.jpg", "b.jpg", "x/a.jpg", "../a.jpg", "1", "-1", "https://a.org/x", ""]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.lists(cell, min_size=1, max_size=8), max_size=6), st.binary(max_size=30))
def test_arbitrary_manifests_never_write_half_an_image(tmp_path_factory, detector, rows, junk):
    import csv

    folder = _folder(
        tmp_path_factory.mktemp("hyp"),
        {"a.jpg": hostile.good_jpeg(96), "b.jpg": hostile.html_as_jpeg()},
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "query", "rank", "source_url", "job", "country", "language", "x"])
    writer.writerows(rows)
    study = make_study()
    batch = _run(study, folder, detector, buffer.getvalue().encode() + junk)
    assert batch.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    images = SourceImage.objects.filter(study=study)
    if batch.status == JobStatus.FAILED:
        assert batch.error.startswith("The manifest cannot be used") and not images.exists()
        return
    assert images.count() == batch.report["imported"] == 1
    image = images.get()
    assert image.faces.count() == batch.report["faces_found"]
    assert image.file.storage.exists(image.file.name)


def test_the_same_face_twice_in_one_image_is_flagged_to_the_first(tmp_path, study, detector):
    twice = Image.new("RGB", (512, 256))
    twice.paste(hostile.astronaut(256), (0, 0))
    twice.paste(hostile.astronaut(256), (256, 0))
    batch = _run(study, _folder(tmp_path, {"twice.jpg": hostile.encode(twice, "JPEG")}), detector)
    first, second = Face.objects.order_by("box_x")
    assert batch.report["faces_found"] == 2 and batch.report["near_duplicate_faces"] == 1
    assert second.near_duplicate_of == first and first.near_duplicate_of is None
