"""The session engine when FACET_CACHE_URL is set: Django's cached_db (sessions in the
database, read through the shared Redis first) whose cache entries live at most
SESSION_CACHE_SECONDS, however long the session.

A logout deletes the session's row and its cache entry. While Redis is unreachable the cache's
delete is ignored (django-redis's IGNORE_EXCEPTIONS): the row is gone, so the session ends on
every request that cannot read Redis either; but a Redis that comes back with its data would
serve the ended session again from its entry. Capping the entry's life bounds that to
SESSION_CACHE_SECONDS, at the cost of one statement per session that often.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache import caches

SESSION_CACHE_SECONDS = 300


class _CappedTimeouts:
    """A cache whose `set` keeps an entry at most SESSION_CACHE_SECONDS; the rest as is."""

    def __init__(self, cache) -> None:
        self._cache = cache

    def set(self, key, value, timeout=None, **kwargs):
        return self._cache.set(key, value, _capped(timeout), **kwargs)

    async def aset(self, key, value, timeout=None, **kwargs):
        return await self._cache.aset(key, value, _capped(timeout), **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._cache, name)

    def __contains__(self, key) -> bool:
        return key in self._cache

    def __str__(self) -> str:
        return str(self._cache)


def _capped(timeout: float | None) -> float:
    return SESSION_CACHE_SECONDS if timeout is None else min(timeout, SESSION_CACHE_SECONDS)


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = _CappedTimeouts(caches[settings.SESSION_CACHE_ALIAS])
