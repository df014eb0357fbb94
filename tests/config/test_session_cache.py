"""Sessions read through the shared Redis cache (FACET_CACHE_URL, config.sessions): every web
process sees the same sessions, a logout in one ends the session in all, an unreachable Redis
falls back to the database instead of failing requests, and a logout Redis missed holds once
the session's cache entry expires."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from annotate.roles import Role
from config.env import cache_from_url
from config.sessions import SESSION_CACHE_SECONDS
from tests.conftest import ROOT, database_url_for_subprocess
from tests.factories import make_user

SESSION_ENGINE = "config.sessions"

# A second web process: it serves the page named on its command line to the session in the
# cookie each time a line arrives, and says what it answered and how many statements it ran
# on the session table.
OTHER_PROCESS = """
import json, sys
import django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
connection.force_debug_cursor = True
client = Client()
client.cookies["sessionid"] = sys.argv[1]
for _ in sys.stdin:
    before = len(connection.queries)
    response = client.get(sys.argv[2])
    sql = [q["sql"] for q in connection.queries[before:]]
    print(json.dumps({"status": response.status_code,
                      "session_statements": sum("django_session" in s for s in sql)}), flush=True)
"""


@pytest.fixture
def other_process(tmp_path, session_cache):
    started: list[subprocess.Popen] = []

    def start(session_key: str, url: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACET_")}
        env |= {
            "DATABASE_URL": database_url_for_subprocess(),
            "FACET_CACHE_URL": session_cache,
            "FACET_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, session_key, url],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)

        def ask() -> dict:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write("\n")
            process.stdin.flush()
            line = process.stdout.readline()
            assert line, "the other process exited"
            return json.loads(line)

        return ask

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.django_db(transaction=True)
def test_a_logout_in_one_process_ends_the_session_in_another_that_read_it_from_the_cache(
    other_process,
):
    coder = make_user(Role.CODER)
    client = Client()
    client.force_login(coder)
    ask = other_process(client.cookies["sessionid"].value, reverse("home"))

    # The other process finds the session this one wrote in the shared cache: no statement.
    assert ask() == {"status": 200, "session_statements": 0}
    assert ask() == {"status": 200, "session_statements": 0}

    assert client.post(reverse("logout")).status_code == 302
    # A per-process cache would still hold the session there; the shared one does not.
    answer = ask()
    assert answer["status"] == 302, answer


@pytest.mark.django_db
def test_an_unreachable_cache_falls_back_to_the_database(client, settings):
    # Nothing listens on port 9: every cache call fails, within the socket timeouts.
    settings.CACHES = {"default": cache_from_url("redis://127.0.0.1:9/0")}
    settings.SESSION_ENGINE = SESSION_ENGINE
    coder = make_user(Role.CODER)
    client.force_login(coder)
    assert client.get(reverse("home")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_a_logout_redis_missed_holds_once_the_sessions_cache_entry_expires(
    client, session_cache, settings, monkeypatch
):
    coder = make_user(Role.CODER)
    client.force_login(coder)
    key = client.cookies["sessionid"].value
    entry = KEY_PREFIX + key
    cache = caches["default"]
    # The session lasts hours; its cache entry, minutes.
    assert settings.SESSION_COOKIE_AGE > SESSION_CACHE_SECONDS
    assert 0 < cache.ttl(entry) <= SESSION_CACHE_SECONDS

    # The logout's cache delete is lost, as when Redis cannot be reached (IGNORE_EXCEPTIONS);
    # the session's row is deleted.
    with monkeypatch.context() as lost:
        lost.setattr(type(cache), "delete", lambda *args, **kwargs: None)
        assert client.post(reverse("logout")).status_code == 302
    client.cookies["sessionid"] = key  # the ended session's cookie, kept by its browser
    # Redis is back with the entry: it still answers for the ended session, until it expires.
    assert client.get(reverse("home")).status_code == 200
    cache.expire(entry, 1)  # what SESSION_CACHE_SECONDS does, sooner
    time.sleep(1.2)
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_cache_url_must_name_redis():
    from config.env import EnvError

    with pytest.raises(EnvError, match="FACET_CACHE_URL"):
        cache_from_url("memcached://127.0.0.1:11211")
