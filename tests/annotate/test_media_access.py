"""Media views: crops and source images only for those who may see them, sent by the web server
in production, with no metadata for coders, in every format that imports, under random names.

Who gets which view, role by role, is in tests/test_access_matrix.py.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from annotate.assignment import face_votes_reset
from annotate.filenames import RandomName
from annotate.ingest.detect import Detection
from annotate.labels import Gender
from annotate.models import Assignment, Face, SourceImage
from annotate.roles import Role
from annotate.selectors.coding import assignment_payload
from annotate.services.ingest import images_import
from annotate.services.media import source_display_ensure
from annotate.services.team import member_remove
from tests.annotate import hostile
from tests.factories import (
    lease_take,
    make_faces,
    make_source_image,
    make_study,
    make_user,
    votes_cast,
)

pytestmark = pytest.mark.django_db

ARTIST = "Secret Photographer"
COMMENT = b"taken at 51.5074N 0.1278W"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">xmp-owner-secret</x:xmpmeta>'
RANDOM_NAME = re.compile(r"[a-z]+/\d{4}/\d{2}/[0-9a-f]{32}\.[a-z]+")


class FixedBox:
    """A detector that finds one face in the middle of every image (the import's seam)."""

    name = "fixed"
    batch_size = 1

    def detect(self, images):
        return [
            [
                Detection(
                    x=im.width // 4, y=im.height // 4, w=im.width // 2, h=im.height // 2, score=0.99
                )
            ]
            for im in images
        ]


def jpeg_with_metadata() -> bytes:
    """The astronaut photo with EXIF (artist, GPS position), a JPEG comment and XMP."""
    exif = Image.Exif()
    exif[0x013B] = ARTIST
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 27.0), 3: "W", 4: (0.0, 7.0, 40.0)}
    return hostile.encode(hostile.astronaut(256), "JPEG", exif=exif, comment=COMMENT, xmp=XMP)


def assert_no_metadata(data: bytes) -> None:
    assert ARTIST.encode() not in data and COMMENT not in data and b"xmp-owner" not in data
    image = Image.open(io.BytesIO(data))
    assert not image.getexif(), dict(image.getexif())
    assert "comment" not in image.info and "xmp" not in image.info and "exif" not in image.info


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def study():
    return make_study()


def _face_with_source(study, data: bytes | None = None) -> Face:
    image = make_source_image(study)
    image.file.save("scene.jpg", ContentFile(data or hostile.good_jpeg()), save=False)
    image.width = image.height = 256
    image.save()
    (face,) = make_faces(study, 1, source_image=image, box_x=80, box_y=30, box_w=50, box_h=60)
    return face


def _face_urls(face) -> list[str]:
    return [reverse(f"annotate:{view}", args=[face.pk]) for view in ("face_crop", "face_source")]


def _import(study, tmp_path, files: dict[str, bytes]):
    folder = tmp_path / f"upload-{study.slug}"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    batch = images_import(study=study, source=folder, detector=FixedBox())
    assert batch.report["imported"] == len(files), batch.report
    return batch


# --- nothing by path --------------------------------------------------------------------------


def test_the_old_media_path_serves_nothing(client, study):
    (face,) = make_faces(study, 1)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    assert client.get(f"/media/{face.crop.name}").status_code == 404
    assert client.get(reverse("annotate:face_crop", args=[face.pk])).status_code == 200


def test_a_stored_file_of_another_type_is_never_served(client, study):
    (face,) = make_faces(study, 1)
    face.crop.name = default_storage.save("faces/evil.html", ContentFile(b"<script>x</script>"))
    face.save()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    assert client.get(reverse("annotate:face_crop", args=[face.pk])).status_code == 404


# --- who: coders only faces they hold or coded, members only, revoked at once ------------------


def test_a_coder_holding_the_face_gets_the_crop_as_an_inert_image(client, study):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    lease_take(face, coder)
    client.force_login(coder)
    response = client.get(reverse("annotate:face_crop", args=[face.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Cache-Control"].startswith("private")
    with face.crop.open("rb") as handle:
        assert body(response) == handle.read()


def test_a_coder_holding_the_face_sees_its_source_with_the_box_drawn(client, study):
    face = _face_with_source(study, hostile.encode(hostile.astronaut(256), "JPEG"))
    coder = make_user(Role.CODER, study=study)
    lease_take(face, coder)
    client.force_login(coder)
    response = client.get(reverse("annotate:face_source", args=[face.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "sandbox" in response["Content-Security-Policy"]
    picture = Image.open(io.BytesIO(body(response))).convert("RGB")
    assert picture.size == (256, 256)
    r, g, b = picture.getpixel((105, 31))  # on the box's top edge: the box colour
    assert r > 200 and g > 150 and b < 90


def test_a_coder_who_voted_keeps_seeing_the_face(client, study):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    votes_cast(face.pk, [{"gender": Gender.FEMALE}], coders=[coder])
    client.force_login(coder)
    assert [client.get(url).status_code for url in _face_urls(face)] == [200, 200]


@pytest.mark.parametrize("lease", [None, "expired", "released"])
def test_a_coder_of_the_study_without_a_live_lease_or_vote_gets_404(client, study, lease):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    if lease is not None:
        assignment = lease_take(face, coder)
    if lease == "expired":  # a minute past its end, not yet reclaimed
        Assignment.objects.filter(pk=assignment.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    if lease == "released":  # the face's coding started over
        face_votes_reset(face=face, reason="label error")
    client.force_login(coder)
    assert [client.get(url).status_code for url in _face_urls(face)] == [404, 404]


def test_a_coder_of_another_study_gets_404_even_holding_a_face_there(client, study):
    face = _face_with_source(study)
    elsewhere = make_study()
    coder = make_user(Role.CODER, study=elsewhere)
    lease_take(_face_with_source(elsewhere), coder)
    client.force_login(coder)
    assert [client.get(url).status_code for url in _face_urls(face)] == [404, 404]


def test_removal_from_the_study_revokes_a_coder_at_once(client, study):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    assignment = lease_take(face, coder)
    client.force_login(coder)
    urls = [*_face_urls(face), reverse("annotate:code_source", args=[study.slug, assignment.pk])]
    assert [client.get(url).status_code for url in urls] == [200, 200, 200]
    member_remove(study=study, user=coder)
    # Same session, same lease: the next request is refused.
    assert [client.get(url).status_code for url in urls] == [404, 404, 403]


def test_removal_from_the_study_revokes_a_researcher_at_once(client, study):
    face = _face_with_source(study)
    researcher = make_user(Role.RESEARCHER, study=study)
    client.force_login(researcher)
    urls = [
        *_face_urls(face),
        reverse("annotate:image_display", args=[face.source_image_id]),
        reverse("annotate:image_original", args=[face.source_image_id]),
    ]
    assert [client.get(url).status_code for url in urls] == [200] * 4
    member_remove(study=study, user=researcher)
    assert [client.get(url).status_code for url in urls] == [404] * 4


def test_coders_never_open_a_source_image_file_even_of_a_face_they_hold(client, study):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    lease_take(face, coder)
    client.force_login(coder)
    for view in ("image_display", "image_original"):
        url = reverse(f"annotate:{view}", args=[face.source_image_id])
        assert client.get(url).status_code == 403


def test_a_face_imported_as_a_crop_has_no_source_image(client, study):
    (face,) = make_faces(study, 1)
    client.force_login(make_user(Role.RESEARCHER, study=study))
    assert client.get(reverse("annotate:face_source", args=[face.pk])).status_code == 404


def test_a_missing_or_unreadable_source_file_is_a_404_not_an_error(client, study):
    face = _face_with_source(study)
    image = face.source_image
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(b"not an image any more"))
    client.force_login(make_user(Role.RESEARCHER, study=study))
    assert client.get(reverse("annotate:face_source", args=[face.pk])).status_code == 404
    assert client.get(reverse("annotate:image_display", args=[image.pk])).status_code == 404
    image.refresh_from_db()
    assert not image.display  # nothing half-made was kept


def test_the_coding_payload_names_the_crop_view_and_the_coder_can_fetch_it(client, study):
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    assignment = lease_take(face, coder)
    payload = assignment_payload(study=study, assignment=assignment)
    assert payload["crop"] == reverse("annotate:face_crop", args=[face.pk])
    client.force_login(coder)
    assert client.get(payload["crop"]).status_code == 200
    assert client.get(payload["source"]).status_code == 200


# --- the web server sends the bytes in production ---------------------------------------------


def test_with_accel_redirect_set_the_view_checks_and_the_web_server_sends(client, settings, study):
    settings.FACET_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    face = _face_with_source(study)
    coder = make_user(Role.CODER, study=study)
    lease_take(face, coder)
    client.force_login(coder)
    response = client.get(reverse("annotate:face_crop", args=[face.pk]))
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{face.crop.name}"
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]

    client.force_login(make_user(Role.CODER, study=study))  # holds nothing
    refused = client.get(reverse("annotate:face_crop", args=[face.pk]))
    assert refused.status_code == 404 and not refused.has_header("X-Accel-Redirect")


def test_with_accel_redirect_researchers_get_the_display_copy_and_the_original(
    client, settings, study
):
    settings.FACET_MEDIA_ACCEL_REDIRECT = "/protected-media/"
    image = _face_with_source(study).source_image
    image.original_name = "jobs/nurse 01.jpg"
    image.save()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    display = client.get(reverse("annotate:image_display", args=[image.pk]))
    image.refresh_from_db()
    assert display["X-Accel-Redirect"] == f"/protected-media/{image.display.name}"
    assert display.content == b"" and display["Content-Type"] == "image/jpeg"
    original = client.get(reverse("annotate:image_original", args=[image.pk]))
    assert original["X-Accel-Redirect"] == f"/protected-media/{image.file.name}"
    assert original["Content-Disposition"] == 'attachment; filename="nurse 01.jpg"'


# --- no metadata for coders ------------------------------------------------------------------


def test_coders_get_no_metadata_from_a_photo_that_carries_it(client, study):
    upload = jpeg_with_metadata()
    assert ARTIST.encode() in upload and COMMENT in upload  # the test photo really carries it
    face = _face_with_source(study, upload)
    coder = make_user(Role.CODER, study=study)
    assignment = lease_take(face, coder)
    client.force_login(coder)
    for url in (
        reverse("annotate:face_source", args=[face.pk]),
        reverse("annotate:code_source", args=[study.slug, assignment.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert_no_metadata(body(response))


def test_researchers_see_a_clean_display_copy_and_can_download_the_original(client, study):
    upload = jpeg_with_metadata()
    image = _face_with_source(study, upload).source_image
    client.force_login(make_user(Role.RESEARCHER, study=study))
    display = client.get(reverse("annotate:image_display", args=[image.pk]))
    assert display.status_code == 200 and display["Content-Type"] == "image/jpeg"
    assert_no_metadata(body(display))
    original = client.get(reverse("annotate:image_original", args=[image.pk]))
    assert original.status_code == 200 and original["Content-Type"] == "image/jpeg"
    assert original["Content-Disposition"].startswith("attachment")
    data = body(original)
    assert data == upload
    assert Image.open(io.BytesIO(data)).getexif()[0x013B] == ARTIST


def test_crops_cut_from_a_photo_with_metadata_carry_none(study, tmp_path):
    _import(study, tmp_path, {"tagged.jpg": jpeg_with_metadata()})
    face = Face.objects.get(study=study)
    with face.crop.open("rb") as handle:
        assert_no_metadata(handle.read())


# --- every format that imports can be shown -------------------------------------------------


@pytest.mark.parametrize(
    "fmt,suffix,content_type",
    [
        ("GIF", ".gif", "image/gif"),
        ("BMP", ".bmp", "image/bmp"),
        ("TIFF", ".tif", "image/tiff"),
        ("WEBP", ".webp", "image/webp"),
        ("PNG", ".png", "image/png"),
    ],
)
def test_every_imported_format_is_shown_and_downloadable(
    client, study, tmp_path, fmt, suffix, content_type
):
    upload = hostile.encode(hostile.astronaut(256), fmt)
    _import(study, tmp_path, {f"photo{suffix}": upload})
    image = SourceImage.objects.get(study=study)
    face = image.faces.get()
    client.force_login(make_user(Role.RESEARCHER, study=study))

    display = client.get(reverse("annotate:image_display", args=[image.pk]))
    assert display.status_code == 200 and display["Content-Type"] == "image/jpeg"
    shown = Image.open(io.BytesIO(body(display)))
    assert shown.format == "JPEG" and shown.size == (256, 256)

    original = client.get(reverse("annotate:image_original", args=[image.pk]))
    assert original.status_code == 200 and original["Content-Type"] == content_type
    assert original["Content-Disposition"] == f'attachment; filename="photo{suffix}"'
    assert original["X-Content-Type-Options"] == "nosniff"
    assert body(original) == upload

    source = client.get(reverse("annotate:face_source", args=[face.pk]))
    assert source.status_code == 200 and source["Content-Type"] == "image/jpeg"


def test_the_display_copy_is_made_once_and_reused(client, study):
    image = _face_with_source(study).source_image
    client.force_login(make_user(Role.RESEARCHER, study=study))
    url = reverse("annotate:image_display", args=[image.pk])
    first = body(client.get(url))
    image.refresh_from_db()
    name = image.display.name
    assert RANDOM_NAME.fullmatch(name) and name.startswith("display/")
    assert body(client.get(url)) == first
    image.refresh_from_db()
    assert image.display.name == name


def test_two_requests_racing_to_make_the_display_copy_keep_one_file(study):
    image = _face_with_source(study).source_image
    first, second = SourceImage.objects.get(pk=image.pk), SourceImage.objects.get(pk=image.pk)
    winner = source_display_ensure(image=first)
    assert source_display_ensure(image=second) == winner  # `second` was stale: it lost
    assert [p.name for p in Path(default_storage.path(winner)).parent.iterdir()] == [
        PurePosixPath(winner).name
    ]


# --- names say nothing ------------------------------------------------------------------------


def test_stored_names_are_random_not_derived_from_the_content(study, tmp_path):
    photo = hostile.good_jpeg()
    sha = hashlib.sha256(photo).hexdigest()
    other = make_study()
    _import(study, tmp_path, {"a.jpg": photo})
    _import(other, tmp_path, {"a.jpg": photo})
    images = list(SourceImage.objects.filter(sha256=sha))
    crops = [face.crop.name for face in Face.objects.filter(source_image__in=images)]
    names = [image.file.name for image in images] + crops
    assert len(images) == 2 and len(crops) == 2 and len(set(names)) == 4
    for name in names:
        assert RANDOM_NAME.fullmatch(name), name
        assert sha[:8] not in name


@pytest.mark.parametrize(
    "given,suffix",
    [("photo.JPG", ".jpg"), ("x.tiff", ".tiff"), ("noext", ""), ("a.<script>", ""), ("a.", "")],
)
def test_random_names_keep_only_a_plain_suffix(given, suffix):
    name = RandomName("images")(None, given)
    assert name.startswith("images/") and name.endswith(suffix)
    assert re.fullmatch(r"images/\d{4}/\d{2}/[0-9a-f]{32}" + re.escape(suffix), name)
    assert RandomName("images")(None, given) != name
