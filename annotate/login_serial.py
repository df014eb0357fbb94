"""Login attempts on one username run one at a time.

django-axes reads the failure count before the password is checked and records the failure
after: attempts in flight together all pass the check, so thirty parallel tries on one account
had thirty passwords evaluated, the lock notwithstanding. Each POST to a login form (ours and
the admin's) therefore runs in a transaction that first takes a PostgreSQL advisory lock on
its username, held until the attempt's failure is committed. The next attempt on that
username reads the count after it: no more than FACET_LOGIN_MAX_FAILURES passwords of one
account are tried however many requests arrive at once, in any number of web processes.

Attempts on different usernames do not wait for each other, so a room of coders behind one
address (a classroom's NAT, a crowd platform's proxy) logs in at once. Password spraying from
one address is stopped by axes's count per address; a burst on many usernames can overshoot
that count by at most the number of requests the web processes serve at once.

On another database (the embedded SQLite of the demo, one process) a process-wide lock does
the same. An attempt that waits longer than FACET_LOGIN_LOCK_WAIT_S (a flood) is answered 429
unchecked rather than holding a web worker until gunicorn kills it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

LOGIN_VIEWS = ("login", "admin:login")
LOGIN_BUSY = "Too many logins are waiting on this account."
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout
_process_lock = threading.Lock()


def login_lock_key(username: str) -> str:
    """The advisory lock an attempt on `username` takes; Victim and victim share one."""
    return f"facet-login-user:{username.strip().lower()}"


class LoginAttemptSerialMiddleware:
    """Runs each POST to a login form under the lock of its username."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._paths: frozenset[str] | None = None

    def _login_paths(self) -> frozenset[str]:
        if self._paths is None:
            self._paths = frozenset(reverse(name) for name in LOGIN_VIEWS)
        return self._paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path_info not in self._login_paths():
            return self.get_response(request)
        key = login_lock_key(str(request.POST.get("username", "")))
        if connection.vendor != "postgresql":
            with _process_lock, transaction.atomic():
                return self.get_response(request)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    wait = f"{settings.FACET_LOGIN_LOCK_WAIT_S}s"
                    cursor.execute("SELECT current_setting('lock_timeout')")
                    (usual,) = cursor.fetchone()
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [wait])
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
                    # The view's own statements wait as they always do.
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [usual])
                return self.get_response(request)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            context = {"message": LOGIN_BUSY, "busy": True}
            return render(request, "registration/locked_out.html", context, status=429)
