"""Request body limits, enforced from the headers before anything reads the body.

Django reads a body lazily and never past its Content-Length, but the first `request.POST`
(the CSRF check makes it on every POST) parses a multipart body to the end and spools its
files to disk, so a size check in a form or view runs only after the whole body arrived.
This middleware decides from the request line and headers alone, before any other code:

- views marked with `accepts_upload` take bodies up to FACET_MAX_UPLOAD_BYTES;
- every other view up to DATA_UPLOAD_MAX_MEMORY_SIZE plus BODY_MARGIN (multipart framing;
  Django applies its own exact limit to the fields afterwards);
- a body framed by Transfer-Encoding instead of a Content-Length is refused: Django would
  read it as empty, and its size is unknown until it has been read.

The reverse proxy in docker-compose (deploy/nginx.conf) applies the same two limits first.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

ACCEPTS_UPLOAD = "facet_accepts_upload"
BODY_MARGIN = 1024 * 1024
BODY_TOO_LARGE = "The request body is {size:,} bytes; this page accepts at most {limit:,} bytes."
LENGTH_REQUIRED = "Send the request body with a Content-Length header (chunked bodies are refused)."
BAD_LENGTH = "The Content-Length header must be a whole number of bytes."

View = Callable[..., HttpResponse]


def accepts_upload(view: View) -> View:
    """Mark a view that takes file uploads up to FACET_MAX_UPLOAD_BYTES."""
    setattr(view, ACCEPTS_UPLOAD, True)
    return view


def body_limit(request: HttpRequest) -> int:
    """The largest body, in bytes, the view at the request's path accepts."""
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        view = None
    if getattr(view, ACCEPTS_UPLOAD, False):
        return settings.FACET_MAX_UPLOAD_BYTES
    return _ordinary_limit()


def _ordinary_limit() -> int:
    """The largest body of a view that takes no upload."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE + BODY_MARGIN


def _refuse(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    """Refuse an oversized or unsized body (413, 411, 400) before the body is read.

    Put it first, or at least before anything that touches request.body or request.POST.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            return _refuse(LENGTH_REQUIRED, 411)
        raw = request.META.get("CONTENT_LENGTH") or "0"
        if not (raw.isascii() and raw.isdigit()):
            return _refuse(BAD_LENGTH, 400)
        size = int(raw)
        # A body no view refuses needs no look at the view (resolving the path cost as
        # much as the rest of this middleware stack on a vote).
        if size > min(_ordinary_limit(), settings.FACET_MAX_UPLOAD_BYTES):
            limit = body_limit(request)
            if size > limit:
                return _refuse(BODY_TOO_LARGE.format(size=size, limit=limit), 413)
        return self.get_response(request)
