"""Commands refuse devices, pipes and oversized inputs before reading them, and --out paths
they cannot write, each with one line; they create no folder on the user's behalf."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotate.management import files
from annotate.models import ImportBatch
from modeling.models import ValidationRound
from tests.factories import make_plain_faces, make_study
from tests.modeling.validation_factories import make_version, plant

pytestmark = pytest.mark.django_db

MIB = 1024**2


def _refused(*args: str, **options) -> str:
    """The one-line message the command ends with."""
    with pytest.raises(CommandError) as refused:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    message = str(refused.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


@pytest.fixture
def fifo(tmp_path) -> Path:
    """A named pipe no one writes to: opening it for reading the usual way blocks forever."""
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path


@pytest.fixture
def sparse(tmp_path):
    """A file of `size` bytes that takes no disk space (holes read as zeros)."""

    def make(name: str, size: int) -> Path:
        path = tmp_path / name
        with open(path, "wb") as handle:
            handle.truncate(size)
        return path

    return make


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if the command opens an input file for reading."""

    def refuse(*args, **kwargs):
        raise AssertionError("the input was opened although its metadata refuse it")

    monkeypatch.setattr(files.os, "open", refuse)


# --- inputs ----------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "link"])
def test_import_images_refuses_a_device_or_pipe_as_the_upload(tmp_path, fifo, source):
    make_study("jobs")
    if source == "fifo":
        source = str(fifo)
    elif source == "link":
        (tmp_path / "photos.zip").symlink_to("/dev/zero")
        source = str(tmp_path / "photos.zip")
    message = _refused("import_images", source, study="jobs")
    assert message == files.NOT_REGULAR_FILE.format(what="file or folder", path=source)
    assert not ImportBatch.objects.exists()


def test_import_images_refuses_a_zip_over_the_import_limit_unread(settings, sparse, no_reading):
    make_study("jobs")
    settings.FACET_IMPORT_MAX_BYTES = MIB
    archive = sparse("photos.zip", MIB + 1)
    message = _refused("import_images", str(archive), study="jobs")
    assert "the limit is 1,048,576 (FACET_IMPORT_MAX_BYTES)" in message
    assert not ImportBatch.objects.exists()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("manifest", ["/dev/zero", "fifo"])
def test_import_images_refuses_a_device_or_pipe_as_the_manifest(tmp_path, fifo, manifest):
    make_study("jobs")
    manifest = str(fifo) if manifest == "fifo" else manifest
    message = _refused("import_images", str(tmp_path), study="jobs", manifest=manifest)
    assert message == files.NOT_REGULAR_FILE.format(what="manifest file", path=manifest)
    assert not ImportBatch.objects.exists()


def test_import_images_refuses_an_oversized_manifest_before_reading_it(
    tmp_path, sparse, no_reading
):
    from django.conf import settings

    make_study("jobs")
    limit = settings.FACET_MANIFEST_MAX_BYTES
    manifest = sparse("manifest.csv", limit + 1)  # sparse: no disk used, and never read
    message = _refused("import_images", str(tmp_path), study="jobs", manifest=str(manifest))
    assert message == files.FILE_TOO_LARGE.format(
        what="manifest file",
        path=manifest,
        size=limit + 1,
        limit=limit,
        setting="FACET_MANIFEST_MAX_BYTES",
    )
    assert not ImportBatch.objects.exists()


def test_a_manifest_that_grows_past_the_limit_after_the_check_is_still_refused(
    tmp_path, monkeypatch
):
    path = tmp_path / "m.csv"
    path.write_bytes(b"file\n")
    real_check = files.input_file_check

    def check_then_grow(*args, **kwargs):
        found = real_check(*args, **kwargs)
        path.write_bytes(b"file\n" + b"x" * 100)
        return found

    monkeypatch.setattr(files, "input_file_check", check_then_grow)
    with pytest.raises(CommandError, match="holds 11 bytes; the limit is 10"):
        files.input_file_read(path, what="manifest file", limit=10, setting="X")


def test_import_images_still_reads_a_manifest_within_the_limit(tmp_path):
    from tests.annotate import hostile

    make_study("jobs")
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(hostile.good_jpeg())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,query,job,country,language,rank,source_url\na.jpg,q,nurse,US,en,1,\n")
    out = io.StringIO()
    call_command("import_images", str(images), study="jobs", manifest=str(manifest), stdout=out)
    assert "imported: 1" in out.getvalue()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("labels", ["/dev/zero", "fifo", "big"])
def test_import_faces_refuses_a_device_pipe_or_oversized_labels_file(
    tmp_path, fifo, sparse, settings, labels
):
    make_study("faces")
    settings.FACET_MANIFEST_MAX_BYTES = MIB
    labels = {"fifo": str(fifo), "big": str(sparse("labels.csv", MIB + 1))}.get(labels, labels)
    message = _refused("import_faces", str(tmp_path), labels=labels, study="faces")
    assert "labels file" in message
    assert not ImportBatch.objects.exists()


# --- --out -----------------------------------------------------------------------------


@pytest.fixture
def versioned():
    """A study with an active version, predictions and consensus: every export has rows."""
    study = make_study("out")
    faces = make_plain_faces(study, 20)
    version = make_version(study, active=True)
    plant(faces, version, seed=3)
    return study


COMMANDS = {
    "export": ["export", "--study", "out", "--what", "predictions"],
    "estimates": ["estimates", "--study", "out", "--resamples", "50"],
    "methods_appendix": ["methods_appendix", "--study", "out"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_out_naming_a_folder_is_one_line(versioned, tmp_path, command):
    message = _refused(*COMMANDS[command], "--out", str(tmp_path))
    assert message == files.OUT_IS_FOLDER.format(path=tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
def test_out_in_a_missing_folder_creates_no_folder(versioned, tmp_path, command):
    out = tmp_path / "nonexistent" / "dir" / "x.csv"
    message = _refused(*COMMANDS[command], "--out", str(out))
    assert message == files.OUT_NO_FOLDER.format(path=out, folder=out.parent)
    assert not (tmp_path / "nonexistent").exists()


def test_out_under_the_root_in_a_missing_folder_creates_nothing(versioned):
    message = _refused(*COMMANDS["export"], "--out", "/nonexistent/dir/x.csv")
    assert "folder /nonexistent/dir does not exist" in message
    assert not Path("/nonexistent").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_out_is_one_line(versioned, tmp_path, command):
    if os.geteuid() == 0:  # root writes through permissions; /sys refuses it too
        out = Path("/sys/facet-export.csv")
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        out = folder / "x.csv"
    message = _refused(*COMMANDS[command], "--out", str(out))
    assert message.startswith(f"cannot write --out {out}: ")
    assert not out.exists()


def test_a_write_that_fails_midway_is_one_line():
    message = str(pytest.raises(CommandError, files.output_write, Path("/dev/full"), b"x").value)
    assert message.startswith("cannot write --out /dev/full: ") and "\n" not in message


@pytest.mark.parametrize("command", COMMANDS)
def test_out_in_an_existing_folder_is_written(versioned, tmp_path, command):
    out = tmp_path / "result.txt"
    call_command(*COMMANDS[command], "--out", str(out), stdout=io.StringIO())
    assert out.stat().st_size > 0


# --- numbers out of range --------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_validation_round_command_refuses_a_seed_out_of_range(versioned, seed):
    message = _refused("validation_round", "--study", "out", "--size", "5", "--seed", seed)
    assert message.startswith("The seed must be a whole number from 0 to")
    assert not ValidationRound.objects.exists()
