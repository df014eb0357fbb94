"""Importing a labeled face set: training labels kept apart from votes, never handed to coders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.models import Face, FaceStatus, ImportBatch, JobStatus, KnownLabel, Vote
from annotate.services.ingest_faces import faces_import
from tests.annotate import hostile
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def _faces_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    (folder / "set").mkdir(parents=True)
    (folder / "set" / "a.jpg").write_bytes(hostile.good_jpeg(200))
    (folder / "set" / "b.png").write_bytes(hostile.encode(hostile.cat(120), "PNG"))
    (folder / "set" / "c.jpg").write_bytes(hostile.good_jpeg(160))
    (folder / "set" / "broken.jpg").write_bytes(hostile.truncated_jpeg())
    (folder / "set" / "unlabeled.jpg").write_bytes(hostile.good_jpeg(100))
    return folder


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
)


def test_labeled_faces_become_training_labels_kept_apart_from_votes(tmp_path):
    study = make_study()
    batch = faces_import(
        study=study, folder=_faces_folder(tmp_path), labels=LABELS.encode(), labels_name="ff.csv"
    )
    assert batch.status == JobStatus.SUCCEEDED and batch.kind == ImportBatch.Kind.FACES
    assert batch.report["imported"] == 3
    labels = {
        k.face.original_name: (k.gender, k.race, k.age_band, k.glasses, k.quality)
        for k in KnownLabel.objects.select_related("face")
    }
    assert labels == {
        "set/a.jpg": ("female", "east_asian", "30-39", "none", "good"),
        "set/b.png": ("male", "latino_hispanic", "70+", "", ""),
        "set/c.jpg": ("male", "", "3-9", "", ""),
    }
    assert set(KnownLabel.objects.values_list("usage", "source")) == {("train", "ff.csv")}
    faces = Face.objects.filter(study=study)
    assert {f.origin for f in faces} == {Face.Origin.IMPORTED}
    assert {f.coding_status for f in faces} == {FaceStatus.COMPLETE}  # not handed to coders
    assert all(f.source_image is None and len(f.phash) == 16 for f in faces)
    assert not Vote.objects.exists()
    reasons = {row["line"]: row["reason"] for row in batch.report["rejected_rows"]}
    assert reasons[5].startswith("corrupt or truncated image")
    assert reasons[6] == "no such file in the folder"
    assert reasons[7] == "duplicate: line 2 already labels this path"
    assert "climbs out of the folder" in reasons[8]
    assert reasons[9] == "gender 'robot' is not one of: male, female"
    assert batch.report["files_without_manifest_row"] == ["set/unlabeled.jpg"]


def test_importing_the_same_faces_again_skips_them_as_duplicates(tmp_path):
    study = make_study()
    folder = _faces_folder(tmp_path)
    faces_import(study=study, folder=folder, labels=LABELS.encode(), labels_name="ff.csv")
    again = faces_import(study=study, folder=folder, labels=LABELS.encode(), labels_name="ff.csv")
    assert again.report["imported"] == 0 and again.report["duplicates_skipped"] == 3
    assert Face.objects.count() == KnownLabel.objects.count() == 3


def test_symlinked_face_file_is_refused(tmp_path):
    study = make_study()
    folder = _faces_folder(tmp_path)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(hostile.good_jpeg(90))
    (folder / "set" / "link.jpg").symlink_to(secret)
    batch = faces_import(
        study=study,
        folder=folder,
        labels=b"path,gender\nset/link.jpg,male\n",
        labels_name="x.csv",
    )
    assert batch.report["rejected_rows"][0]["reason"].startswith("not a regular file")
    assert not Face.objects.exists()


def test_labels_file_without_a_gender_column_fails_the_batch(tmp_path):
    batch = faces_import(
        study=make_study(),
        folder=_faces_folder(tmp_path),
        labels=b"path,age\nset/a.jpg,3-9\n",
        labels_name="x.csv",
    )
    assert batch.status == JobStatus.FAILED
    assert "no 'gender' column" in batch.error
    assert not Face.objects.exists()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set/a.jpg", "set/b.png", "set/broken.jpg", "nope.jpg", "", "../x"]),
            st.sampled_from(["Male", "female", "x", "", "F"]),
            st.one_of(st.text(max_size=12), st.sampled_from(["East Asian", "70+", "3-9"])),
        ),
        max_size=6,
    ),
    st.binary(max_size=40),
)
def test_arbitrary_labels_files_never_write_half_a_face(tmp_path_factory, rows, junk):
    import csv
    import io

    folder = _faces_folder(tmp_path_factory.mktemp("hyp"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "gender", "age"])
    writer.writerows(rows)
    study = make_study()
    batch = faces_import(
        study=study,
        folder=folder,
        labels=buffer.getvalue().encode() + junk,
        labels_name="h.csv",
    )
    assert batch.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    faces = Face.objects.filter(study=study)
    labels = KnownLabel.objects.filter(face__study=study)
    # Every stored face has its label and every label its face: nothing half-written.
    assert faces.count() == labels.count() == batch.report.get("imported", 0)
    if batch.status == JobStatus.FAILED:
        assert batch.error


def test_unknown_optional_values_keep_the_face_and_warn_with_the_line(tmp_path):
    """UTKFace-style race values (`asian`, `other`) used to drop faces with a valid gender."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for name, side in (("a.jpg", 200), ("b.jpg", 150), ("c.png", 120)):
        image = hostile.astronaut(side) if name != "c.png" else hostile.cat(side)
        (folder / name).write_bytes(hostile.encode(image, "PNG" if name == "c.png" else "JPEG"))
    labels = (
        "path,gender,race,age\na.jpg,female,asian,30-39\nb.jpg,male,other,old\nc.png,robot,white,\n"
    )
    batch = faces_import(
        study=make_study(), folder=folder, labels=labels.encode(), labels_name="utk.csv"
    )
    assert batch.status == JobStatus.SUCCEEDED
    report = batch.report
    assert (report["imported"], report["rows_rejected"], report["rows_warned"]) == (2, 1, 2)
    stored = {
        k.face.original_name: (k.gender, k.race, k.age_band)
        for k in KnownLabel.objects.select_related("face")
    }
    assert stored == {"a.jpg": ("female", "", "30-39"), "b.jpg": ("male", "", "")}
    warned = [(w["line"], w["file"], w["reason"].split(";")[0]) for w in report["row_warnings"]]
    assert warned == [
        (2, "a.jpg", "race 'asian' could be any of: east_asian, southeast_asian, indian"),
        (3, "b.jpg", warned[1][2]),
        (
            3,
            "b.jpg",
            "age 'old' is not one of: 0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, 70+",
        ),
    ]
    assert warned[1][2].startswith("race 'other' could be any of: white, black")
    assert report["rejected_rows"] == [
        {"line": 4, "file": "c.png", "reason": "gender 'robot' is not one of: male, female"}
    ]


def test_identical_files_with_conflicting_labels_are_reported_and_the_first_kept(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    picture = hostile.good_jpeg(200)
    for name in ("first.jpg", "same.jpg", "again.jpg"):
        (folder / name).write_bytes(picture)
    labels = (
        "path,gender,age\nfirst.jpg,female,30-39\nsame.jpg,female,30-39\nagain.jpg,male,30-39\n"
    )
    study = make_study()
    batch = faces_import(study=study, folder=folder, labels=labels.encode(), labels_name="x.csv")
    assert batch.report["imported"] == 1 and batch.report["duplicates_skipped"] == 2
    assert KnownLabel.objects.get().gender == "female"
    assert batch.report["label_conflicts"] == [
        {
            "line": 4,
            "file": "again.jpg",
            "labels": "gender=male, age_band=30-39",
            "kept_line": 2,
            "kept_file": "first.jpg",
            "kept_labels": "gender=female, age_band=30-39",
        }
    ]
    # A later import of the same picture is checked against the label kept before.
    later = tmp_path / "later"
    later.mkdir()
    (later / "copy.jpg").write_bytes(picture)
    again = faces_import(
        study=study, folder=later, labels=b"path,gender\ncopy.jpg,male\n", labels_name="y.csv"
    )
    [conflict] = again.report["label_conflicts"]
    assert (conflict["file"], conflict["kept_file"], conflict["kept_line"]) == (
        "copy.jpg",
        "first.jpg",
        2,
    )
    assert conflict["labels"] == "gender=male"
    assert Face.objects.count() == KnownLabel.objects.count() == 1


def test_an_unusable_labels_file_is_called_a_labels_file(tmp_path):
    batch = faces_import(
        study=make_study(),
        folder=_faces_folder(tmp_path),
        labels=b"\xff\xfe\x00garbage\x00" * 3,
        labels_name="x.csv",
    )
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("The labels file cannot be used, so nothing was imported")
    assert "manifest" not in batch.error
