"""Media files (crops, source images) for signed-in users only, never rendered as HTML.

Everything under MEDIA_ROOT is served with an image content type chosen from the file
suffix (any other suffix is refused), `nosniff`, and a sandboxing CSP, so a hostile upload
cannot run script in the app's origin.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse

from annotate.access import role_required
from annotate.roles import Role

SERVABLE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


@role_required(Role.CODER, Role.RESEARCHER)
def media_file(request: HttpRequest, path: str) -> HttpResponse:
    parts = PurePosixPath(path).parts
    if not parts or any(part in {"..", ""} or part.startswith(".") for part in parts):
        raise Http404("No such file.")
    content_type = SERVABLE_TYPES.get(PurePosixPath(path).suffix.lower())
    if content_type is None or not default_storage.exists(path):
        raise Http404("No such file.")
    response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
