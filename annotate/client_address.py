"""The client address the login throttle counts, trusting only our own reverse proxies.

Every proxy in front of Facet appends the address it received the request from to
X-Forwarded-For, so with N trusted proxies the N-th entry from the right was written by the
outermost one and is the real client. Entries further left came from the client itself and
are ignored: a forged header must not give an attacker a fresh address to count against.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def forwarded_client(forwarded_for: str, *, trusted_proxies: int) -> str | None:
    """The address `trusted_proxies` proxies vouch for in an X-Forwarded-For value, or None
    when the header is too short or that entry is not an IP address."""
    entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
    if trusted_proxies < 1 or len(entries) < trusted_proxies:
        return None
    candidate = entries[-trusted_proxies]
    return candidate if _valid(candidate) else None


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or with FACET_TRUSTED_PROXY_COUNT > 0 the address our outermost proxy saw.

    A request that did not pass through all the proxies (header missing or too short) is
    counted under REMOTE_ADDR, the peer that actually connected.
    """
    remote = request.META.get("REMOTE_ADDR")
    trusted = settings.FACET_TRUSTED_PROXY_COUNT
    if trusted == 0:
        return remote
    forwarded = forwarded_client(
        request.META.get("HTTP_X_FORWARDED_FOR", ""), trusted_proxies=trusted
    )
    if forwarded is None:
        logger.warning(
            "X-Forwarded-For from %s does not name a client behind %d proxies; using the peer.",
            remote,
            trusted,
        )
        return remote
    return forwarded
