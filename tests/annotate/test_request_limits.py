"""Request bodies are limited from their headers, before any code reads them: an oversized
upload is refused at once, not after gigabytes have been received and spooled to disk.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import ImportBatch
from annotate.roles import Role
from annotate.views.imports import UPLOAD_NOT_ZIP
from config.request_limits import BAD_LENGTH, BODY_MARGIN, LENGTH_REQUIRED
from tests.conftest import login
from tests.factories import PASSWORD, make_study, make_user

HUGE = 5 * 1024**3
# A well-formed CSRF cookie: without one the CSRF check refuses a POST before reading it,
# with one (as any browser that opened a form has) it parses the body for the token.
CSRF_COOKIE = "csrftoken=" + "a" * 32
BOUNDARY = "facetboundary"
# The start of a multipart body whose file part never ends: what a slow or hostile client
# has sent when its headers announce gigabytes.
PARTIAL_MULTIPART = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="archive"; filename="big.zip"\r\n'
    "Content-Type: application/zip\r\n\r\n"
    "PK\x03\x04 only the first bytes of a very large file"
).encode()


@pytest.fixture
def upload_tmp(settings, tmp_path):
    """Where Django would spool uploaded files; the tests assert it stays empty."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


def _post_raw(url: str, path: str, *, length: int, cookie: str = CSRF_COOKIE) -> tuple[str, float]:
    """POST a few bytes under a Content-Length of `length`; return the status line and how
    long the answer took. The socket stays open, as a client still uploading would keep it."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        )
        sock.sendall(head.encode() + PARTIAL_MULTIPART)
        answer = sock.recv(4096).decode(errors="replace")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_a_huge_upload_is_refused_from_its_headers_without_a_temp_file(
    live_server, client, upload_tmp
):
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    cookie = f"{CSRF_COOKIE}; sessionid={client.cookies['sessionid'].value}"
    path = reverse("annotate:import_new", args=[study.slug])
    status, seconds = _post_raw(live_server.url, path, length=HUGE, cookie=cookie)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert seconds < 5
    assert list(upload_tmp.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_a_large_body_to_a_page_that_takes_no_upload_is_refused_before_the_csrf_check_reads_it(
    live_server, upload_tmp
):
    status, seconds = _post_raw(live_server.url, reverse("login"), length=HUGE)
    assert status.split(" ")[1] == "413"
    assert seconds < 5
    assert list(upload_tmp.iterdir()) == []


@pytest.mark.django_db
def test_the_refusal_says_the_size_and_the_limit(client, settings):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + BODY_MARGIN
    # The test client's payload cannot be read past its few bytes: reading would fail.
    response = client.generic(
        "POST", reverse("login"), PARTIAL_MULTIPART, CONTENT_LENGTH=str(limit + 1)
    )
    assert response.status_code == 413
    assert response.content.decode() == (
        f"The request body is {limit + 1:,} bytes; this page accepts at most {limit:,} bytes."
    )
    assert response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_upload_page_takes_bodies_up_to_the_upload_limit_and_no_more(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body_size = 3 * BODY_MARGIN  # far above the ordinary limit
    settings.FACET_MAX_UPLOAD_BYTES = body_size + 64 * 1024
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    upload = SimpleUploadedFile("notes.txt", b"x" * body_size, "text/plain")
    response = client.post(reverse("annotate:import_new", args=[study.slug]), {"archive": upload})
    # The body was read and the form judged it: the limit did not stop it.
    assert response.status_code == 400
    assert UPLOAD_NOT_ZIP in response.content.decode()

    settings.FACET_MAX_UPLOAD_BYTES = body_size // 2
    upload.seek(0)
    response = client.post(reverse("annotate:import_new", args=[study.slug]), {"archive": upload})
    assert response.status_code == 413
    assert f"at most {body_size // 2:,} bytes" in response.content.decode()


@pytest.mark.django_db
def test_an_upload_limit_below_the_ordinary_one_still_binds_the_upload_page(client, settings):
    # Bodies within both limits skip the look at the view; this one is within the ordinary
    # limit only.
    settings.FACET_MAX_UPLOAD_BYTES = 2048
    study = make_study()
    client.force_login(make_user(Role.RESEARCHER, study=study))
    upload = SimpleUploadedFile("notes.txt", b"x" * 8192, "text/plain")
    response = client.post(reverse("annotate:import_new", args=[study.slug]), {"archive": upload})
    assert response.status_code == 413
    assert "at most 2,048 bytes" in response.content.decode()


@pytest.mark.django_db
def test_a_chunked_body_without_a_length_is_refused(client):
    response = client.generic(
        "POST", reverse("login"), b"", HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH=""
    )
    assert response.status_code == 411
    assert response.content.decode() == LENGTH_REQUIRED


@pytest.mark.django_db
def test_a_malformed_length_is_refused(client):
    response = client.generic("POST", reverse("login"), b"abc", CONTENT_LENGTH="-3")
    assert response.status_code == 400
    assert response.content.decode() == BAD_LENGTH


@pytest.mark.django_db
def test_ordinary_requests_pass(client):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    assert response.status_code in (200, 403)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_import_form_says_an_upload_is_too_large_before_sending_it(page, live_server, settings):
    settings.FACET_MAX_UPLOAD_BYTES = 1000
    study = make_study()
    researcher = make_user(Role.RESEARCHER, study=study)
    login(page, live_server, researcher.username, PASSWORD)
    url = live_server.url + reverse("annotate:import_new", args=[study.slug])
    page.goto(url)
    page.set_input_files(
        "input[name=archive]",
        {"name": "photos.zip", "mimeType": "application/zip", "buffer": b"x" * 1500},
    )
    page.get_by_role("button", name="Start import").click()
    warning = page.get_by_test_id("upload-too-large")
    warning.wait_for(state="visible")
    assert warning.inner_text() == (
        "The files are 1,500 bytes; one upload may be at most 1,000 bytes. "
        "Split the images into several zips."
    )
    assert page.url == url and not ImportBatch.objects.exists()
