"""FACET_STORAGE_URL: parsed in config.env, refused with a message naming what is wrong."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from config.env import EnvError, storages_from_url
from config.storage import ArtifactFileStorage
from tests.config.test_settings import run_python


def test_no_url_keeps_media_and_artifacts_on_local_disk():
    storages = storages_from_url("")
    assert storages["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storages["artifacts"]["BACKEND"] == "config.storage.ArtifactFileStorage"


def test_an_s3_url_puts_media_and_artifacts_under_two_prefixes_of_one_bucket():
    storages = storages_from_url(
        "s3://facet/site-a?endpoint_url=http://minio:9000&region_name=eu-west-1"
        "&addressing_style=path"
    )
    media, artifacts = storages["default"]["OPTIONS"], storages["artifacts"]["OPTIONS"]
    assert storages["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert media["bucket_name"] == artifacts["bucket_name"] == "facet"
    assert (media["location"], artifacts["location"]) == ("site-a/media", "site-a/artifacts")
    assert media["endpoint_url"] == "http://minio:9000" and media["region_name"] == "eu-west-1"
    assert media["addressing_style"] == "path"
    # Media never replace a file (names are random); artifacts are replaced whole.
    assert media["file_overwrite"] is False and artifacts["file_overwrite"] is True
    assert storages_from_url("s3://facet")["default"]["OPTIONS"]["location"] == "media"


@pytest.mark.parametrize(
    "url,message",
    [
        ("/data/media", "is not an object storage URL"),
        ("http://minio:9000/facet", "is not an object storage URL"),
        ("s3://facet?endpoint=http://x", "unknown option(s) endpoint; valid: endpoint_url"),
        ("s3://facet?addressing_style=sideways", "valid: path, virtual, auto"),
    ],
)
def test_a_bad_url_is_refused_naming_the_variable(url, message):
    with pytest.raises(EnvError, match="FACET_STORAGE_URL") as error:
        storages_from_url(url)
    assert message in str(error.value)


def test_object_storage_with_an_accel_redirect_location_stops_start_up(tmp_path):
    result = run_python(
        "import django; django.setup()",
        {
            "FACET_STORAGE_URL": "s3://facet?endpoint_url=http://minio:9000",
            "FACET_MEDIA_ACCEL_REDIRECT": "/protected-media/",
        },
        tmp_path,
    )
    assert result.returncode != 0
    assert "leave it unset when FACET_STORAGE_URL puts media in object storage" in result.stderr


def test_local_artifacts_are_replaced_whole_under_the_same_name(tmp_path):
    storage = ArtifactFileStorage(location=tmp_path, allow_overwrite=True)
    assert storage.save("feature-cache/a.f32", ContentFile(b"old")) == "feature-cache/a.f32"
    assert storage.save("feature-cache/a.f32", ContentFile(b"new")) == "feature-cache/a.f32"
    assert (tmp_path / "feature-cache" / "a.f32").read_bytes() == b"new"
    assert [p.name for p in (tmp_path / "feature-cache").iterdir()] == ["a.f32"]
