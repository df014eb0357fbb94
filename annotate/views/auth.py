"""Login and logout. Failed logins are throttled by django-axes (see AXES_* in settings):
its backend refuses a locked-out username or address, its middleware swaps the response
for `locked_out`, on this form and on the admin's alike."""

from __future__ import annotations

from axes.helpers import get_cool_off
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.debug import sensitive_post_parameters

from annotate.access import public

LOCKED_OUT = "Too many failed logins from this account or address."


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The page axes shows instead of the login form while a lock holds (AXES_LOCKOUT_CALLABLE)."""
    cool_off = get_cool_off(request)
    minutes = round(cool_off.total_seconds() / 60) if cool_off else None
    context = {"message": LOCKED_OUT, "minutes": minutes}
    return render(request, "registration/locked_out.html", context, status=429)


login = public(sensitive_post_parameters("password")(LoginView.as_view()))
logout = public(auth_views.LogoutView.as_view())
