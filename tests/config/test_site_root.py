"""What browsers ask for at the site's root, whatever the page, is served (WHITENOISE_ROOT)."""

from __future__ import annotations

from django.test import Client

ICO_HEADER = b"\x00\x00\x01\x00"


def test_the_favicon_is_an_icon_served_to_anyone():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(ICO_HEADER)
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
