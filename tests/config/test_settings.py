"""Settings come from the environment only; bad values stop start-up naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SHOW = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    " 'broker': s.CELERY_BROKER_URL, 'media': str(s.MEDIA_ROOT), 'debug': s.DEBUG,"
    " 'opts': s.CELERY_BROKER_TRANSPORT_OPTIONS}))"
)
FACET_VARS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "FACET_PRODUCTION",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "FACET_MEDIA_ROOT",
    "FACET_BROKER_DIR",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def run_python(code: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in FACET_VARS and not k.startswith("FACET_")
    }
    clean.update(
        {"DJANGO_SETTINGS_MODULE": "config.settings", "FACET_VAR_DIR": str(tmp_path / "var")}
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_manage(args: list[str], env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    code = f"import sys; sys.argv = ['manage.py', *{args!r}]; import manage; manage.main()"
    return run_python(code, env, tmp_path)


def test_no_variables_gives_the_embedded_default(tmp_path):
    result = run_python(SHOW, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"] == str(tmp_path / "var" / "facet.sqlite3")
    assert shown["broker"] == "filesystem://"
    assert shown["opts"]["data_folder_in"] == str(tmp_path / "var" / "broker" / "queue")
    # Worker start-up writes exchange tables there: under var/, never in the source tree.
    assert shown["opts"]["control_folder"] == str(tmp_path / "var" / "broker" / "control")
    assert shown["media"] == str(tmp_path / "var" / "media")
    assert shown["debug"] is True


def test_database_and_broker_urls_select_postgres_and_redis(tmp_path):
    env = {
        "DATABASE_URL": "postgres://u:p%40ss@db.example:5433/facet",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
    }
    code = SHOW.replace(
        "'debug'",
        "'user': s.DATABASES['default']['USER'], 'pw': "
        "s.DATABASES['default']['PASSWORD'], 'port': s.DATABASES['default']['PORT'], 'debug'",
    )
    result = run_python(code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.postgresql"
    assert (shown["name"], shown["user"], shown["pw"], shown["port"]) == (
        "facet",
        "u",
        "p@ss",
        "5433",
    )
    assert shown["broker"] == "redis://redis:6379/0"
    # Unset: each worker uses its longest task time limit plus a margin (config.celery).
    assert "visibility_timeout" not in shown["opts"]


def test_invalid_values_name_the_variable(tmp_path):
    cases = {
        "DATABASE_URL": "mysql://x/y",
        "CELERY_BROKER_URL": "amqp://guest@localhost//",
        "DJANGO_DEBUG": "maybe",
        "FACET_LOGIN_MAX_FAILURES": "many",
        "FACET_LOGIN_COOLOFF_MINUTES": "0",
        "FACET_TRUSTED_PROXY_COUNT": "-1",
        "FACET_SESSION_HOURS": "0",
        "FACET_MEDIA_ACCEL_REDIRECT": "protected-media",
        "FACET_CACHE_URL": "memcached://127.0.0.1:11211",
    }
    for name, value in cases.items():
        result = run_python(SHOW, {name: value}, tmp_path)
        assert result.returncode != 0
        last_line = result.stderr.strip().splitlines()[-1]
        assert name in last_line and "EnvError" in last_line, (name, result.stderr[-500:])


SHOW_LOGIN = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'limit': s.AXES_FAILURE_LIMIT, 'cooloff': s.AXES_COOLOFF_TIME.total_seconds(),"
    " 'proxies': s.FACET_TRUSTED_PROXY_COUNT, 'session': s.SESSION_COOKIE_AGE,"
    " 'by': s.AXES_LOCKOUT_PARAMETERS, 'handler': s.AXES_HANDLER}))"
)


def test_login_throttle_and_session_length_defaults(tmp_path):
    result = run_python(SHOW_LOGIN, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "limit": 5,
        "cooloff": 15 * 60,
        "proxies": 0,
        "session": 8 * 3600,
        # Separately by username and by address, counted in the shared database.
        "by": ["username", "ip_address"],
        "handler": "axes.handlers.database.AxesDatabaseHandler",
    }


def test_login_throttle_and_session_length_follow_the_environment(tmp_path):
    env = {
        "FACET_LOGIN_MAX_FAILURES": "10",
        "FACET_LOGIN_COOLOFF_MINUTES": "60",
        "FACET_TRUSTED_PROXY_COUNT": "1",
        "FACET_SESSION_HOURS": "2",
    }
    result = run_python(SHOW_LOGIN, env, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["limit"], shown["cooloff"], shown["proxies"], shown["session"]) == (
        10,
        3600,
        1,
        2 * 3600,
    )


SHOW_SESSIONS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.SESSION_ENGINE, 'cache': s.CACHES['default']['BACKEND'],"
    " 'location': s.CACHES['default'].get('LOCATION')}))"
)


def test_sessions_are_read_through_redis_only_when_a_cache_url_is_set(tmp_path):
    result = run_python(SHOW_SESSIONS, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.contrib.sessions.backends.db"
    assert shown["cache"] == "django.core.cache.backends.locmem.LocMemCache"

    result = run_python(SHOW_SESSIONS, {"FACET_CACHE_URL": "redis://redis:6379/1"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "engine": "config.sessions",
        "cache": "django_redis.cache.RedisCache",
        "location": "redis://redis:6379/1",
    }


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_python(
        SHOW, {"FACET_PRODUCTION": "1", "DJANGO_ALLOWED_HOSTS": "facet.example"}, tmp_path
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "FACET_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": "k" * 20 + "x9!Qz7#Lp2$Vw5^Rt8&Yb3*Nm6(Jh4)Gf1",
        "DJANGO_ALLOWED_HOSTS": "facet.example",
    }
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
