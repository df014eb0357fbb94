"""Login with a rate limit on failed attempts per username and client address."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_post_parameters

from annotate.access import public

TOO_MANY_ATTEMPTS = "Too many failed logins. Wait a few minutes, then try again."


def _attempt_key(request: HttpRequest) -> str:
    username = request.POST.get("username", "").strip().lower()
    address = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(f"{username}|{address}".encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


class RateLimitedLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        key = _attempt_key(request)
        if cache.get(key, 0) >= settings.FACET_LOGIN_MAX_FAILURES:
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, TOO_MANY_ATTEMPTS)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:  # the form came back: the login failed
            cache.add(key, 0, timeout=settings.FACET_LOGIN_WINDOW_SECONDS)
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, timeout=settings.FACET_LOGIN_WINDOW_SECONDS)
        else:
            cache.delete(key)
        return response


login = public(sensitive_post_parameters("password")(RateLimitedLoginView.as_view()))
logout = public(auth_views.LogoutView.as_view())
