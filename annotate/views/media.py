"""Every image the app serves: face crops, source images with a face's box drawn, and
source images themselves (display copy, original download).

Nothing is served by path. Each view loads its face or image and asks annotate.selectors.media
whether the user may see it, on every request; a refusal is the same 404 as a missing object,
so ids of other studies' faces reveal nothing. Coders get only re-encoded pictures (crops and
box-drawn sources), which carry no metadata; the original upload goes to researchers only.

Stored files go out through `media_response`: with FACET_MEDIA_ACCEL_REDIRECT set (media on
local disk), the web server in front sends the bytes (an `X-Accel-Redirect` to its internal
location over MEDIA_ROOT); otherwise Django streams the file from storage, local disk or the
object storage bucket alike. Media in a bucket are streamed rather than redirected to a
presigned URL: the bucket stays private on the internal network (browsers never need to reach
it, and the page's `img-src 'self'` policy stands), the headers below stay ours, and a crop's
URL stays the same from one request to the next, so browsers cache it. Either way the content
type comes from a fixed list of image types, with `nosniff` and a sandboxing CSP, so a
hostile upload cannot run script in the app's origin.
"""

from __future__ import annotations

import io
import logging
from pathlib import PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from annotate.access import role_required
from annotate.ingest.draw import SOURCE_MAX_SIDE, box_draw
from annotate.ingest.images import ImageRejected, image_open
from annotate.models import Face
from annotate.roles import Role
from annotate.selectors.media import face_for_media, image_for_media
from annotate.services.media import source_display_ensure

logger = logging.getLogger(__name__)

NOT_FOUND = "No such file."
FACE_NO_SOURCE = "This face was imported as a crop; it has no source image."
SOURCE_UNREADABLE = "The source image file is missing or unreadable."

SERVABLE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
SANDBOX = "default-src 'none'; sandbox"


def _harden(response: HttpResponseBase, *, max_age: int) -> HttpResponseBase:
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = SANDBOX
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response


def media_response(name: str, *, max_age: int, download_as: str | None = None) -> HttpResponseBase:
    """The stored file `name` as an image response (an attachment named `download_as` if
    given), sent by the web server when FACET_MEDIA_ACCEL_REDIRECT is set."""
    content_type = SERVABLE_TYPES.get(PurePosixPath(name).suffix.lower())
    if content_type is None:
        raise Http404(NOT_FOUND)
    prefix = settings.FACET_MEDIA_ACCEL_REDIRECT
    response: HttpResponseBase
    if prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix + quote(name)
        if download_as:
            response["Content-Disposition"] = content_disposition_header(True, download_as)
    else:
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError:
            raise Http404(NOT_FOUND) from None
        response = FileResponse(
            handle,
            content_type=content_type,
            as_attachment=download_as is not None,
            filename=download_as or "",
        )
    return _harden(response, max_age=max_age)


def face_source_response(face: Face) -> HttpResponseBase:
    """`face`'s source image as a JPEG with the face's box drawn, for a user allowed to see
    the face (the caller checks). Re-encoded from the decoded pixels, so no metadata."""
    image = face.source_image
    if image is None or not image.file:
        raise Http404(FACE_NO_SOURCE)
    try:
        with image.file.open("rb") as handle:
            opened = image_open(handle.read())
    except (ImageRejected, OSError):
        logger.warning("source image %s of face %s is unreadable", image.pk, face.pk)
        raise Http404(SOURCE_UNREADABLE) from None
    picture = box_draw(opened.image, face.box, max_side=SOURCE_MAX_SIDE)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return _harden(HttpResponse(buffer.getvalue(), content_type="image/jpeg"), max_age=600)


@role_required(Role.CODER, Role.RESEARCHER)
@require_GET
def face_crop(request: HttpRequest, pk: int) -> HttpResponseBase:
    face = face_for_media(pk=pk, user=request.user)
    if face is None or not face.crop.name:
        raise Http404(NOT_FOUND)
    return media_response(face.crop.name, max_age=3600)


@role_required(Role.CODER, Role.RESEARCHER)
@require_GET
def face_source(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The image a face was detected in, with its box drawn."""
    face = face_for_media(pk=pk, user=request.user)
    if face is None:
        raise Http404(NOT_FOUND)
    return face_source_response(face)


@role_required(Role.RESEARCHER)
@require_GET
def image_display(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The source image as browsers can show it: JPEG, no metadata, whatever was imported."""
    image = image_for_media(pk=pk, user=request.user)
    if image is None:
        raise Http404(NOT_FOUND)
    try:
        name = source_display_ensure(image=image)
    except (ImageRejected, OSError):
        logger.warning("source image %s is unreadable; no display copy", image.pk)
        raise Http404(SOURCE_UNREADABLE) from None
    return media_response(name, max_age=3600)


@role_required(Role.RESEARCHER)
@require_GET
def image_original(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The file as imported, metadata and all, as a download under its original name."""
    image = image_for_media(pk=pk, user=request.user)
    if image is None or not image.file.name:
        raise Http404(NOT_FOUND)
    stored = PurePosixPath(image.file.name)
    download_as = PurePosixPath(image.original_name).name or stored.name
    if PurePosixPath(download_as).suffix.lower() != stored.suffix.lower():
        download_as += stored.suffix
    return media_response(image.file.name, max_age=600, download_as=download_as)
