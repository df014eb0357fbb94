"""Login attempts on one username, or from one client address, run one at a time.

django-axes reads the failure count before the password is checked and records the failure
after: attempts in flight together all pass the check, so thirty parallel tries on one account
had thirty passwords evaluated, the lock notwithstanding. Each POST to a login form (ours and
the admin's) therefore runs in a transaction that first takes a PostgreSQL advisory lock on
its username and then one on its client address (always in that order, so two attempts never
wait on each other in a cycle), held until the attempt's failure is committed. The next
attempt on either reads the count after it: no more than FACET_LOGIN_MAX_FAILURES passwords
are tried however many requests arrive at once, in any number of web processes.

On another database (the embedded SQLite of the demo, one process) a process-wide lock does
the same. Attempts from one address wait for each other for the length of a password check
(tenths of a second), which a room of coders behind one NAT logging in at once can bear; an
attempt that waits longer than FACET_LOGIN_LOCK_WAIT_S (a flood) is answered 429 unchecked
rather than holding a web worker until gunicorn kills it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from annotate.client_address import client_ip

LOGIN_VIEWS = ("login", "admin:login")
LOGIN_BUSY = "Too many logins are waiting on this account or address."
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout
_process_lock = threading.Lock()


def login_lock_keys(*, username: str, address: str | None) -> list[str]:
    """The advisory lock names an attempt takes, in the order it takes them."""
    return [f"facet-login-user:{username.strip().lower()}", f"facet-login-ip:{address or ''}"]


class LoginAttemptSerialMiddleware:
    """Runs each POST to a login form under the locks of its username and client address."""

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
        keys = login_lock_keys(
            username=str(request.POST.get("username", "")), address=client_ip(request)
        )
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
                    for key in keys:
                        cursor.execute(
                            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key]
                        )
                    # The view's own statements wait as they always do.
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [usual])
                return self.get_response(request)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            context = {"message": LOGIN_BUSY, "busy": True}
            return render(request, "registration/locked_out.html", context, status=429)
