"""The one place that reads the environment.

Every setting that can vary between machines comes through these readers, so a missing or
malformed value stops start-up with one message that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, overload
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured


class EnvError(ImproperlyConfigured):
    """An environment variable is missing or has a value that cannot be used."""


@overload
def env_str(name: str, default: str, *, required: bool = False) -> str: ...
@overload
def env_str(name: str, default: None = None, *, required: Literal[True]) -> str: ...
@overload
def env_str(name: str, default: None = None, *, required: bool = False) -> str | None: ...
def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise EnvError(f"Environment variable {name} is required but not set.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"Environment variable {name}={value!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(f"Environment variable {name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise EnvError(f"Environment variable {name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# psycopg prepares a statement once it has run this many times on a connection, or at once
# when the caller asks (annotate.compiled_sql.prepared_cursor, for the vote path). Django's
# default, None, refuses even that. No statement runs this often, so only asked ones are
# prepared: an ORM statement with its constants as parameters would get a generic plan blind
# to the partial indexes.
PREPARE_ONLY_ASKED = 2**31 - 1


def database_from_url(url: str, *, name: str = "DATABASE_URL") -> dict:
    """Django DATABASES entry from `postgres://user:pass@host:port/db` or `sqlite:///path`."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if not path or path == "/":
            raise EnvError(f"Environment variable {name}={url!r} names no SQLite file.")
        return sqlite_database(Path(path))
    if parsed.scheme in {"postgres", "postgresql"}:
        db_name = unquote(parsed.path.lstrip("/"))
        if not db_name:
            raise EnvError(f"Environment variable {name}={url!r} names no database.")
        try:
            port = parsed.port
        except ValueError:
            raise EnvError(f"Environment variable {name}={url!r} has an invalid port.") from None
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db_name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"prepare_threshold": PREPARE_ONLY_ASKED, **options},
        }
    raise EnvError(
        f"Environment variable {name}={url!r} has scheme {parsed.scheme!r}; "
        "use postgres://user:password@host:port/name or sqlite:///absolute/path."
    )


def sqlite_database(path: Path) -> dict:
    """SQLite tuned for a web server and a worker writing at the same time."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on
        # the busy timeout instead of failing mid-transaction with "database is locked".
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(path.with_name(path.stem + "-test.sqlite3"))},
    }


# The query options FACET_STORAGE_URL accepts, as django-storages' S3Storage names them.
STORAGE_URL_OPTIONS = ("endpoint_url", "region_name", "addressing_style")
# Prefixes inside the bucket: media (images, crops, uploads) and artifacts (model files and
# the feature cache, never served) are two storages, so one bucket holds both.
STORAGE_PREFIXES = {"default": "media", "artifacts": "artifacts"}


def cache_from_url(url: str, *, name: str = "FACET_CACHE_URL") -> dict:
    """Django's default cache on the Redis at `url` (redis://host:port/db), which every web
    process shares (django-redis). An unreachable Redis answers as an empty cache within half
    a second instead of failing the request, so sessions fall back to the database."""
    if not url.startswith(("redis://", "rediss://")):
        raise EnvError(f"{name}={url!r} is not supported; use redis://host:port/db.")
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "facet",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
        },
    }


def storages_from_url(url: str | None, *, name: str = "FACET_STORAGE_URL") -> dict[str, dict]:
    """The media ("default") and "artifacts" entries of Django's STORAGES.

    No URL: local disk, media under MEDIA_ROOT and artifacts under FACET_ARTIFACT_ROOT. A URL
    `s3://bucket[/prefix][?endpoint_url=...&region_name=...&addressing_style=path]` puts both
    in one S3-compatible bucket under `<prefix>/media/` and `<prefix>/artifacts/`; the
    credentials come from boto3's usual sources (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
    a profile, an instance role).
    """
    # Media files are named at random (annotate.filenames) and never replaced: a name clash
    # gets another name instead of destroying a file.
    if not url:
        return {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "artifacts": {
                "BACKEND": "config.storage.ArtifactFileStorage",
                "OPTIONS": {"allow_overwrite": True},
            },
        }
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.hostname:
        raise EnvError(
            f"Environment variable {name}={url!r} is not an object storage URL; use "
            "s3://bucket[/prefix]?endpoint_url=https://host:port, or leave it unset for "
            "local disk."
        )
    query = parse_qs(parsed.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(STORAGE_URL_OPTIONS))
    if unknown:
        raise EnvError(
            f"Environment variable {name} has unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(STORAGE_URL_OPTIONS)}."
        )
    options: dict[str, object] = {key: values[-1] for key, values in query.items()}
    addressing = options.pop("addressing_style", None)
    if addressing not in (None, "path", "virtual", "auto"):
        raise EnvError(
            f"Environment variable {name} has addressing_style={addressing!r}; "
            "valid: path, virtual, auto."
        )
    prefix = unquote(parsed.path).strip("/")
    common = {
        "bucket_name": parsed.netloc,
        **options,
        "default_acl": None,
        "querystring_auth": True,
    }
    if addressing:
        common["addressing_style"] = addressing
    return {
        alias: {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                **common,
                "location": f"{prefix}/{folder}".lstrip("/"),
                # Artifacts are written under their final name and replaced whole (feature
                # cache entries); a PUT is atomic, so a reader sees the old or the new.
                "file_overwrite": alias == "artifacts",
            },
        }
        for alias, folder in STORAGE_PREFIXES.items()
    }
