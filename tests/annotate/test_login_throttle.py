"""Login throttling (django-axes): by username and by address, on every login form, shared
between processes through the database, unlocked by an admin."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.cookiejar import CookieJar

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.backends import ModelBackend
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from annotate.client_address import forwarded_client
from annotate.login_serial import LOGIN_BUSY, login_lock_key
from annotate.roles import Role
from annotate.views.auth import LOCKED_OUT
from tests.conftest import ROOT, database_url_for_subprocess, sqlite_script_run
from tests.factories import PASSWORD, make_user

LIMIT = 5  # FACET_LOGIN_MAX_FAILURES's default
ATTACKER = "203.0.113.7"


def _post(client: Client, url: str, username: str, password: str, address: str, **extra):
    return client.post(
        url, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def _fail(client: Client, username: str, address: str = ATTACKER, url: str = "/login/"):
    return _post(client, url, username, "wrong-password", address)


def _assert_locked(response) -> None:
    assert response.status_code == 429
    assert "Location" not in response
    assert LOCKED_OUT in response.content.decode()


def _assert_logged_in(response, client: Client) -> None:
    assert response.status_code == 302 and response["Location"] == "/"
    assert "_auth_user_id" in client.session


# --- locking ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_locks_after_failures_even_for_the_right_password(client):
    make_user(Role.ADMIN, username="root")
    for _ in range(LIMIT - 1):
        assert _fail(client, "root", url="/admin/login/").status_code == 200
    _assert_locked(_fail(client, "root", url="/admin/login/"))

    right = _post(client, "/admin/login/?next=/admin/", "root", PASSWORD, ATTACKER)
    _assert_locked(right)
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the login page


@pytest.mark.django_db
def test_login_form_locks_after_failures_with_a_page_in_the_app_style(client):
    make_user(Role.CODER, username="victim")
    for _ in range(LIMIT - 1):
        assert _fail(client, "victim").status_code == 200
    _assert_locked(_fail(client, "victim"))
    locked = _post(client, "/login/", "victim", PASSWORD, ATTACKER)
    _assert_locked(locked)
    assert "_auth_user_id" not in client.session
    page = locked.content.decode()
    assert 'class="topbar"' in page and "15 minutes" in page and 'href="/login/"' in page


@pytest.mark.django_db
def test_spraying_many_usernames_from_one_address_locks_the_address(client):
    make_user(Role.CODER, username="real")
    for number in range(LIMIT):
        _fail(client, f"guess{number}")
    _assert_locked(_post(client, "/login/", "real", PASSWORD, ATTACKER))
    # The lock is on the address: the same account from elsewhere still gets in.
    other = Client()
    _assert_logged_in(_post(other, "/login/", "real", PASSWORD, "198.51.100.1"), other)


@pytest.mark.django_db
def test_one_username_from_many_addresses_locks_the_username(client):
    make_user(Role.CODER, username="target")
    make_user(Role.CODER, username="bystander")
    for number in range(LIMIT):
        _fail(client, "target", address=f"198.51.100.{number + 1}")
    _assert_locked(_post(client, "/login/", "target", PASSWORD, "192.0.2.50"))
    # The lock is on the username: another account from a used address still gets in.
    other = Client()
    _assert_logged_in(_post(other, "/login/", "bystander", PASSWORD, "198.51.100.1"), other)


@pytest.mark.django_db
def test_a_successful_login_does_not_clear_the_address_count(client):
    """Otherwise a sprayer with one valid account could log in between guesses."""
    make_user(Role.CODER, username="insider")
    for number in range(LIMIT - 1):
        _fail(client, f"guess{number}")
    insider = Client()
    _assert_logged_in(_post(insider, "/login/", "insider", PASSWORD, ATTACKER), insider)
    _assert_locked(_fail(client, "guess-after"))


@pytest.mark.django_db
def test_a_lock_ends_after_the_cool_off(client):
    make_user(Role.CODER, username="patient")
    for _ in range(LIMIT):
        _fail(client, "patient")
    _assert_locked(_post(client, "/login/", "patient", PASSWORD, ATTACKER))
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    _assert_logged_in(_post(client, "/login/", "patient", PASSWORD, ATTACKER), client)


# --- shared between processes ----------------------------------------------------------

FAIL_IN_ANOTHER_PROCESS = """
from django.test import Client
client = Client(REMOTE_ADDR="198.51.100.99")
codes = [
    client.post("/login/", {"username": "shared", "password": "wrong"}).status_code
    for _ in range(3)
]
print(codes)
"""


@pytest.mark.django_db(transaction=True)
def test_failures_in_another_process_count_here(client, tmp_path):
    make_user(Role.CODER, username="shared")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url_for_subprocess(),
        "FACET_VAR_DIR": str(tmp_path / "other-var"),
    }
    other = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", FAIL_IN_ANOTHER_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip().splitlines()[-1] == "[200, 200, 200]"
    # Two more failures here, from another address, reach the username's limit of five.
    assert _fail(client, "shared", address="192.0.2.1").status_code == 200
    _assert_locked(_fail(client, "shared", address="192.0.2.2"))


# --- parallel tries ----------------------------------------------------------------------

PARALLEL = 10  # the live test server's listen backlog; twice the limit


def _login_form(url: str) -> tuple[urllib.request.OpenerDirector, str]:
    """A browser-like opener with its own cookies, and the CSRF token of the form at `url`."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(url).read().decode()
    return opener, page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_parallel_tries_on_one_account_check_no_more_passwords_than_the_limit(
    live_server, settings, monkeypatch, path
):
    """The probe's case: tries sent at once all passed axes's count before the first failure
    was recorded (30 of 30 passwords checked). Now each waits for the one before it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    make_user(Role.ADMIN, username="victim")
    checked: list[str] = []
    check_password = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        checked.append(password)
        return check_password(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    url = f"{live_server.url}{path}"
    forms = [_login_form(url) for _ in range(PARALLEL)]
    start = threading.Barrier(PARALLEL)

    def attempt(number: int) -> int:
        opener, token = forms[number]
        fields = {"username": "victim", "password": f"guess{number}"}
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        start.wait()
        try:
            return opener.open(url, data=data).status
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(PARALLEL) as pool:
        codes = list(pool.map(attempt, range(PARALLEL)))
    assert len(checked) == LIMIT, codes
    assert sorted(set(codes)) == [200, 429] and codes.count(429) >= PARALLEL - LIMIT


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL's")
def test_an_attempt_that_waits_too_long_for_the_one_before_is_refused_unchecked(
    client, settings, monkeypatch
):
    settings.FACET_LOGIN_LOCK_WAIT_S = 1
    make_user(Role.CODER, username="flooded")
    checked: list[str] = []
    monkeypatch.setattr(ModelBackend, "authenticate", lambda *a, **kw: checked.append("x"))
    user_key = login_lock_key("flooded")
    other = connections.create_connection("default")  # an attempt in another web process
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [user_key])
        response = _post(client, "/login/", "flooded", PASSWORD, ATTACKER)
        assert response.status_code == 429 and LOGIN_BUSY in response.content.decode()
        assert "Try again in a minute." in response.content.decode()
        assert checked == [] and not AccessAttempt.objects.exists()
    finally:
        other.close()  # ends its session, and the lock with it
    monkeypatch.undo()
    _assert_logged_in(_post(client, "/login/", "flooded", PASSWORD, ATTACKER), client)


def test_an_attempt_locks_its_username_whatever_the_case():
    assert login_lock_key(" Victim ") == login_lock_key("victim") == "facet-login-user:victim"


@pytest.mark.django_db(transaction=True)
def test_logins_on_other_usernames_from_one_address_do_not_wait(live_server, settings, monkeypatch):
    """A classroom behind one address logs in at once: only attempts on one account queue."""
    settings.FACET_LOGIN_LOCK_WAIT_S = 2
    make_user(Role.CODER, username="slow")
    make_user(Role.CODER, username="classmate")
    checking, release = threading.Event(), threading.Event()
    check_password = ModelBackend.authenticate

    def held(self, request, username=None, password=None, **kwargs):
        if username == "slow":  # this attempt is in its password check until released
            checking.set()
            release.wait(20)
        return check_password(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", held)
    url = f"{live_server.url}/login/"
    forms = {name: _login_form(url) for name in ("slow", "classmate")}

    def login(username: str) -> tuple[int, str]:
        opener, token = forms[username]
        fields = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        try:
            response = opener.open(url, data=urllib.parse.urlencode(fields).encode())
            return response.status, response.url
        except urllib.error.HTTPError as error:
            return error.code, url

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(login, "slow")
        assert checking.wait(20)
        classmate = login("classmate")  # from the same address, while "slow" is checked
        release.set()
        assert slow.result()[0] == 200
    assert classmate[0] == 200 and not classmate[1].endswith("/login/"), classmate


SQLITE_LOGINS = """
import json, django
django.setup()
from django.core.management import call_command
from django.db import connection, connections
call_command("migrate", verbosity=0)
from django.db import connection
from django.test import Client
from annotate.roles import Role
from tests.factories import PASSWORD, make_user
make_user(Role.CODER, username="demo")
client = Client(REMOTE_ADDR="198.51.100.7")
codes = [client.post("/login/", {"username": "demo", "password": p}).status_code
         for p in ["wrong"] * 5 + [PASSWORD]]
fresh = Client(REMOTE_ADDR="198.51.100.8")
codes.append(fresh.post("/login/", {"username": "admin-less", "password": "x"}).status_code)
print(json.dumps({"vendor": connection.vendor, "codes": codes}))
"""


@pytest.mark.slow
def test_logins_on_the_embedded_sqlite_database_are_throttled_too(tmp_path):
    shown, _ = sqlite_script_run(SQLITE_LOGINS, tmp_path)
    assert shown == {"vendor": "sqlite", "codes": [200, 200, 200, 200, 429, 429, 200]}


# --- client address --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_give_a_fresh_address(client):
    make_user(Role.CODER, username="real")
    for number in range(LIMIT):
        response = _post(
            client,
            "/login/",
            f"guess{number}",
            "wrong",
            ATTACKER,
            HTTP_X_FORWARDED_FOR=f"10.9.9.{number}",
        )
    _assert_locked(response)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_address_it_appended_is_counted(client, settings):
    settings.FACET_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    make_user(Role.CODER, username="real")
    for number in range(LIMIT):
        # The attacker sends its own X-Forwarded-For; the proxy appends the real address.
        forged_then_real = f"192.0.2.{number}, {ATTACKER}"
        response = _post(
            client,
            "/login/",
            f"guess{number}",
            "wrong",
            proxy,
            HTTP_X_FORWARDED_FOR=forged_then_real,
        )
    _assert_locked(response)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # Another client behind the same proxy is not locked out with the attacker.
    other = Client()
    response = _post(other, "/login/", "real", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="198.51.100.5")
    _assert_logged_in(response, other)


@pytest.mark.parametrize(
    ("header", "trusted", "expected"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        ("1.1.1.1, 203.0.113.7", 1, "203.0.113.7"),
        ("1.1.1.1, 203.0.113.7, 10.0.0.1", 2, "203.0.113.7"),
        ("203.0.113.7", 2, None),  # shorter than the proxy chain: not through our proxies
        ("", 1, None),
        ("1.1.1.1, not-an-ip", 1, None),
        ("2001:db8::1", 1, "2001:db8::1"),
    ],
)
def test_forwarded_client_trusts_only_the_entries_our_proxies_wrote(header, trusted, expected):
    assert forwarded_client(header, trusted_proxies=trusted) == expected


# --- unlocking -------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_unlocks_by_deleting_the_attempts_in_the_admin(client):
    make_user(Role.CODER, username="locked")
    for _ in range(LIMIT):
        _fail(client, "locked")
    admin_client = Client()
    admin_client.force_login(make_user(Role.ADMIN))
    changelist = admin_client.get("/admin/axes/accessattempt/")
    assert changelist.status_code == 200 and "locked" in changelist.content.decode()
    assert "/admin/axes/accessattempt/" in admin_client.get("/admin/").content.decode()

    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    deleted = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert deleted.status_code == 302
    assert not AccessAttempt.objects.exists()
    _assert_logged_in(_post(client, "/login/", "locked", PASSWORD, ATTACKER), client)


@pytest.mark.django_db
def test_axes_reset_command_unlocks(client):
    make_user(Role.CODER, username="locked")
    for _ in range(LIMIT):
        _fail(client, "locked")
    _assert_locked(_post(client, "/login/", "locked", PASSWORD, ATTACKER))
    call_command("axes_reset")
    _assert_logged_in(_post(client, "/login/", "locked", PASSWORD, ATTACKER), client)


# --- session length --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_login_session_lasts_eight_hours(client):
    response = _post(client, "/login/", make_user(Role.CODER).username, PASSWORD, ATTACKER)
    assert response.status_code == 302
    assert int(response.cookies["sessionid"]["max-age"]) == 8 * 3600
