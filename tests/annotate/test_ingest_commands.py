"""The import_images and import_faces commands print the report and exit non-zero on failure."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Face, KnownLabel, SourceImage
from tests.annotate import hostile
from tests.factories import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def cpu_detector(settings):
    settings.FACET_DETECTOR = "mtcnn"


def test_import_images_from_a_zip_with_a_manifest_prints_the_report(tmp_path):
    study = make_study("jobs")
    archive = tmp_path / "photos.zip"
    archive.write_bytes(
        hostile.zip_bytes({"us/a.jpg": hostile.good_jpeg(), "us/b.jpg": hostile.html_as_jpeg()})
    )
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "file,query,job,country,language,rank,source_url\n"
        "us/a.jpg,nurse,nurse,US,en,1,https://example.org/a\n"
        "us/c.jpg,nurse,nurse,US,en,2,\n"
    )
    out = StringIO()
    call_command("import_images", str(archive), study="jobs", manifest=str(manifest), stdout=out)
    text = out.getvalue()
    assert "succeeded" in text and "imported: 1" in text and "faces found: 1" in text
    assert "rejected file us/b.jpg: not an image" in text
    assert "rejected manifest line 3 (us/c.jpg): names a file that is not in the upload" in text
    assert SourceImage.objects.get(study=study).job == "nurse"


def test_import_images_json_output_and_folder_source(tmp_path):
    make_study("jobs")
    (tmp_path / "a.jpg").write_bytes(hostile.good_jpeg())
    out = StringIO()
    call_command("import_images", str(tmp_path), study="jobs", json=True, stdout=out)
    report = json.loads(out.getvalue())
    assert report["imported"] == 1 and report["faces_found"] == 1


def test_import_images_names_existing_studies_when_the_study_is_unknown(tmp_path):
    make_study("real-one")
    with pytest.raises(CommandError, match="no study 'nope'; existing studies: real-one"):
        call_command("import_images", str(tmp_path), study="nope")


def test_import_images_fails_loudly_on_an_unusable_upload(tmp_path):
    make_study("jobs")
    bad = tmp_path / "not.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(CommandError, match="not a readable zip file"):
        call_command("import_images", str(bad), study="jobs", stdout=StringIO())


def test_import_faces_records_training_labels(tmp_path):
    study = make_study("faces")
    (tmp_path / "x.jpg").write_bytes(hostile.good_jpeg(120))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,gender,race,age\nx.jpg,Female,East Asian,20-29\n")
    out = StringIO()
    call_command("import_faces", str(tmp_path), labels=str(labels), study="faces", stdout=out)
    assert "labels imported: 1" in out.getvalue()
    label = KnownLabel.objects.get(face__study=study)
    assert (label.source, label.usage, label.gender, label.race) == (
        "labels.csv",
        "train",
        "female",
        "east_asian",
    )
    assert Face.objects.get().origin == Face.Origin.IMPORTED


def test_import_faces_reports_rejected_and_warned_rows_in_labels_file_words(tmp_path):
    make_study("utk")
    (tmp_path / "a.jpg").write_bytes(hostile.good_jpeg(120))
    (tmp_path / "b.jpg").write_bytes(hostile.encode(hostile.cat(120), "JPEG"))
    (tmp_path / "extra.jpg").write_bytes(hostile.good_jpeg(90))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,gender,race,age\na.jpg,female,asian,old\nb.jpg,?,white,\n")
    out = StringIO()
    call_command("import_faces", str(tmp_path), labels=str(labels), study="utk", stdout=out)
    text = out.getvalue()
    assert "labels file rows rejected: 1" in text
    assert "labels file rows kept with a warning: 1" in text
    assert "warning, labels file line 2 (a.jpg): race 'asian' could be any of:" in text
    assert "rejected labels file line 3 (b.jpg): gender '?' is not one of: male, female" in text
    assert "files not listed in the labels file (1): extra.jpg" in text
    assert "manifest" not in text
    out = StringIO()
    call_command(
        "import_faces", str(tmp_path), labels=str(labels), study="utk", json=True, stdout=out
    )
    report = json.loads(out.getvalue())
    assert (report["rows_rejected"], report["rows_warned"], report["rows_file"]) == (
        1,
        1,
        "labels file",
    )
