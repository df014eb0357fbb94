"""Facet settings. Everything that varies comes from the environment (config.env).

With no variables set this is the embedded default: SQLite and media under var/, Celery on
kombu's filesystem transport under var/broker, DEBUG on. FACET_PRODUCTION=1 switches to
production: a secret key is required and the HTTPS/security settings are on.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from config.env import (
    EnvError,
    cache_from_url,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    sqlite_database,
    storages_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FACET_VAR_DIR", str(BASE_DIR / "var"))).resolve()

PRODUCTION = env_bool("FACET_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise EnvError("DJANGO_DEBUG must not be on when FACET_PRODUCTION=1.")

_DEV_SECRET_KEY = "django-insecure-facet-embedded-default-not-for-production"
SECRET_KEY: str = (
    env_str("DJANGO_SECRET_KEY", required=True)
    if PRODUCTION
    else env_str("DJANGO_SECRET_KEY", _DEV_SECRET_KEY)
)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET_KEY):
    raise EnvError("DJANGO_SECRET_KEY must be a random string of at least 50 characters.")

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise EnvError("DJANGO_ALLOWED_HOSTS is required when FACET_PRODUCTION=1 (comma-separated).")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "annotate",
    "modeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads the body (the CSRF check parses POST): refuses oversized bodies.
    "config.request_limits.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Login attempts on one username one at a time, so parallel tries cannot all pass
    # axes's count before the first failure is recorded.
    "annotate.login_serial.LoginAttemptSerialMiddleware",
    # Last, as axes asks: it turns a lockout flagged during the view into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annotate.context_processors.roles",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": (
        database_from_url(_database_url)
        if _database_url
        else sqlite_database(VAR_DIR / "facet.sqlite3")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out username or address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "annotate.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("FACET_STATIC_ROOT", str(VAR_DIR / "static")))
# Served by WhiteNoise at the site's root: what browsers ask for there (/favicon.ico), on
# every page, the admin's included.
WHITENOISE_ROOT = BASE_DIR / "public"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("FACET_MEDIA_ROOT", str(VAR_DIR / "media")))
# Media is served only through views that check access (annotate.views.media). With a web
# server in front, set this to its internal location over MEDIA_ROOT (e.g. nginx's
# `location /protected-media/ { internal; alias /data/media/; }`): the view then answers
# with `X-Accel-Redirect: <prefix><file>` and the web server sends the bytes.
FACET_MEDIA_ACCEL_REDIRECT = env_str("FACET_MEDIA_ACCEL_REDIRECT", "")
if FACET_MEDIA_ACCEL_REDIRECT and not (
    FACET_MEDIA_ACCEL_REDIRECT.startswith("/") and FACET_MEDIA_ACCEL_REDIRECT.endswith("/")
):
    raise EnvError(
        f"Environment variable FACET_MEDIA_ACCEL_REDIRECT={FACET_MEDIA_ACCEL_REDIRECT!r} must "
        "be a URL path that starts and ends with '/', such as /protected-media/."
    )
# Media and model artifacts (config.storage): local folders by default; FACET_STORAGE_URL
# (s3://bucket[/prefix]?endpoint_url=...) puts both in an S3-compatible bucket instead, so
# web servers and workers on several machines share them (credentials: AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY). The backbone feature cache is a folder of the artifacts storage.
FACET_STORAGE_URL = env_str("FACET_STORAGE_URL", "")
FACET_ARTIFACT_ROOT = Path(env_str("FACET_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
STORAGES = {
    **storages_from_url(FACET_STORAGE_URL),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
if FACET_STORAGE_URL and FACET_MEDIA_ACCEL_REDIRECT:
    # The web server cannot send a file from the bucket by path; Facet streams it instead.
    raise EnvError(
        "FACET_MEDIA_ACCEL_REDIRECT names a web server location over MEDIA_ROOT; leave it "
        "unset when FACET_STORAGE_URL puts media in object storage."
    )
# Crops a training run keeps in memory once read (fine-tuning reads each once per epoch).
FACET_CROP_CACHE_MB = env_int("FACET_CROP_CACHE_MB", 256, minimum=0)
FACET_WEIGHTS_FILE = env_str("FACET_WEIGHTS_FILE")
# Face detector for imports: "mtcnn" (default, measured best on real photos) or "haar".
FACET_DETECTOR = env_str("FACET_DETECTOR", "mtcnn")
# Limits on one image upload (zip bombs): files, total unpacked bytes, bytes per file.
FACET_IMPORT_MAX_FILES = env_int("FACET_IMPORT_MAX_FILES", 100_000, minimum=1)
FACET_IMPORT_MAX_BYTES = env_int("FACET_IMPORT_MAX_BYTES", 8 * 1024**3, minimum=1)
# Uploads with more files than this are split into chunk tasks of this many files.
FACET_IMPORT_CHUNK_FILES = env_int("FACET_IMPORT_CHUNK_FILES", 200, minimum=1)
FACET_IMPORT_MAX_FILE_BYTES = env_int("FACET_IMPORT_MAX_FILE_BYTES", 60 * 1024**2, minimum=1)
# An import (or chunk) whose heartbeat is older than this lost its worker: the sweep queues it
# again, and fails it with the reason once it was claimed FACET_IMPORT_MAX_ATTEMPTS times.
FACET_IMPORT_STALE_SECONDS = env_int("FACET_IMPORT_STALE_SECONDS", 300, minimum=2)
FACET_IMPORT_MAX_ATTEMPTS = env_int("FACET_IMPORT_MAX_ATTEMPTS", 3, minimum=1)
# Hours an uploaded zip (+ manifest) is kept after its import finished; 0 deletes it at once.
FACET_UPLOAD_RETENTION_HOURS = env_int("FACET_UPLOAD_RETENTION_HOURS", 0, minimum=0)
# Largest manifest or labels CSV the import commands read (refused before a byte is read).
FACET_MANIFEST_MAX_BYTES = env_int("FACET_MANIFEST_MAX_BYTES", 50 * 1024**2, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest import upload request (zip + manifest), refused from its Content-Length before
# the body is read; other requests may carry DATA_UPLOAD_MAX_MEMORY_SIZE + 1 MiB
# (config.request_limits). deploy/nginx.conf repeats both limits.
FACET_MAX_UPLOAD_BYTES = env_int("FACET_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)

# Celery: filesystem transport under var/broker unless a real broker is named.
FACET_BROKER_DIR = Path(env_str("FACET_BROKER_DIR", str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    for _folder in ("queue", "processed", "control"):
        (FACET_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # kombu's default control folder is "control" relative to the working directory,
        # which would put broker state in the source tree.
        "control_folder": str(FACET_BROKER_DIR / "control"),
        "data_folder_in": str(FACET_BROKER_DIR / "queue"),
        "data_folder_out": str(FACET_BROKER_DIR / "queue"),
        "processed_folder": str(FACET_BROKER_DIR / "processed"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3, "socket_timeout": 10}
    # A lost worker's unacknowledged task comes back after this long, so it must be above every
    # task's hard time limit or Redis hands a running task to a second worker. Unset, a worker
    # uses the longest limit plus a margin; set at or below one, it refuses to start
    # (config.celery.visibility_timeout_resolve).
    if env_str("CELERY_VISIBILITY_TIMEOUT"):
        CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = env_int(
            "CELERY_VISIBILITY_TIMEOUT", 0, minimum=60
        )
else:
    raise EnvError(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} is not supported; "
        "use redis://host:port/db or leave it unset for the embedded filesystem broker."
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3900, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must fail fast when the broker is down, so the web request can say so.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 3

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("FACET_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# The study, home and agreement pages show stored figures (annotate.services.summaries) up to
# this many seconds old, then ask a worker to refresh them; 0 computes them on every view.
FACET_SUMMARY_MAX_AGE_S = env_int("FACET_SUMMARY_MAX_AGE_S", 30, minimum=0)

# Login throttling (django-axes) on every login form, the admin's included. Failures are
# rows in the database, so all web processes share the count, and attempts on one username
# run one at a time (annotate.login_serial). A username is locked after
# FACET_LOGIN_MAX_FAILURES failures from any addresses, and separately an address after as
# many failures on any usernames (password spraying), until FACET_LOGIN_COOLOFF_MINUTES
# pass without a failure or an admin deletes the attempts (admin, or `manage.py axes_reset`).
FACET_LOGIN_MAX_FAILURES = env_int("FACET_LOGIN_MAX_FAILURES", 5, minimum=1)
FACET_LOGIN_COOLOFF_MINUTES = env_int("FACET_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
# How long a login attempt waits for the one before it on its username; then 429.
FACET_LOGIN_LOCK_WAIT_S = env_int("FACET_LOGIN_LOCK_WAIT_S", 30, minimum=1)
# Reverse proxies in front of Facet that append to X-Forwarded-For; 0 trusts no header.
FACET_TRUSTED_PROXY_COUNT = env_int("FACET_TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = FACET_LOGIN_MAX_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=FACET_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "annotate.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "annotate.views.auth.locked_out"
# A success must not clear failures: with the address as a parameter it would clear the
# address's count too, so one valid account would let a sprayer start over.
AXES_RESET_ON_SUCCESS = False

if PRODUCTION:
    # Safe only behind a proxy that overwrites X-Forwarded-Proto, with gunicorn reachable
    # from nothing else: docker-compose's nginx (deploy/nginx.conf) and an unpublished port.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("FACET_SESSION_HOURS", 8, minimum=1) * 3600
# Sessions live in the database. With FACET_CACHE_URL (a Redis every web process shares) they
# are read through that cache first (cached_db): a request that finds its session there runs
# no statement for it, which is one of a coder's few statements per vote. The cache must be
# shared: a per-process one would keep a session that a logout in another process ended.
# Its entries live at most 5 minutes (config.sessions: a logout while Redis is unreachable).
FACET_CACHE_URL = env_str("FACET_CACHE_URL")
if FACET_CACHE_URL:
    CACHES = {"default": cache_from_url(FACET_CACHE_URL)}
    SESSION_ENGINE = "config.sessions"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response: scripts and styles only from our
# own static files, so templates carry no inline <script>, style="" or on*= handlers. A view
# that sets its own policy (media files: sandbox) keeps it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Modeling: promotion gate, stale-run detection, weights, devices and time limits.
FACET_GATE_MARGIN = float(env_str("FACET_GATE_MARGIN", "0.05"))
FACET_GATE_MIN_N = env_int("FACET_GATE_MIN_N", 30, minimum=1)
FACET_RUN_STALE_SECONDS = env_int("FACET_RUN_STALE_SECONDS", 300, minimum=10)
FACET_WEIGHTS_DOWNLOAD = env_bool("FACET_WEIGHTS_DOWNLOAD", True)
FACET_DEVICE = env_str("FACET_DEVICE", "auto")
FACET_TRAIN_SOFT_TIME_LIMIT = env_int("FACET_TRAIN_SOFT_TIME_LIMIT", 4 * 3600, minimum=60)
# Faces per prediction chunk: one bulk insert and one progress/heartbeat update each.
FACET_PREDICT_CHUNK = env_int("FACET_PREDICT_CHUNK", 256, minimum=1)
