"""Shared fixtures: real services when present, media in a temp folder, a real worker.

Services are found through the variables `./facet test` sets: DATABASE_URL (PostgreSQL),
FACET_TEST_REDIS_URL and FACET_CHROMIUM. With FACET_REQUIRE_SERVICES=1 (CI) a missing
service fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("FACET_REQUIRE_SERVICES") == "1"
# Playwright's sync API runs an event loop in the test thread; the ORM calls a test makes
# around it are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FACET_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items) -> None:
    from django.db import connection

    on_postgres = connection.vendor == "postgresql"
    for item in items:
        if item.get_closest_marker("postgres") and not on_postgres:
            if REQUIRE_SERVICES:
                item.add_marker(
                    pytest.mark.xfail(reason="PostgreSQL required", strict=True, run=False)
                )
            else:
                item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL not set)"))


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings) -> Path:
    """Every test writes media and artifacts (the feature cache too) under its own temp folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FACET_ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def summaries_exact(settings) -> None:
    """Pages compute their figures on every view (FACET_SUMMARY_MAX_AGE_S=0), so a test sees
    what it just did; tests/annotate/test_summaries.py covers stored figures and their refresh."""
    settings.FACET_SUMMARY_MAX_AGE_S = 0


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("FACET_TEST_REDIS_URL")
    if not url:
        missing_service("needs Redis (FACET_TEST_REDIS_URL not set)")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError:
        missing_service(f"Redis at {url} is not reachable")
    return url


@pytest.fixture
def session_cache(settings, redis_url) -> str:
    """Sessions read through the shared Redis cache (config.sessions), as FACET_CACHE_URL sets."""
    from config.env import cache_from_url

    settings.CACHES = {"default": cache_from_url(redis_url)}
    settings.SESSION_ENGINE = "config.sessions"
    return redis_url


@pytest.fixture
def chromium_path() -> str:
    path = os.environ.get("FACET_CHROMIUM") or shutil.which("chromium")
    if not path:
        missing_service("needs headless Chromium (Debian package chromium)")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
            # ORM calls made while Playwright's loop ran used their own connection (asgiref
            # keeps connections per context); close it here, in that context, or the test
            # database cannot be dropped at the end of the run.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def page(browser):
    """A page that fails the test on any JavaScript error."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def login(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


# --- the embedded database, as ./facet demo runs -----------------------------------------


def sqlite_script_run(script: str, var_dir: Path) -> tuple[dict, str]:
    """Run `script` (Python, after django.setup()) in a fresh process on the embedded SQLite
    database under `var_dir`, as `./facet demo` does, though the suite runs on PostgreSQL;
    return the JSON object its last line prints, and its stderr."""
    import json
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"FACET_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


# --- a real Celery worker process -------------------------------------------------------


def database_url_for_subprocess() -> str:
    """The URL of the database this test uses (the test database), for a worker process."""
    from django.db import connection

    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(sd['NAME']).resolve()}"
    auth = quote(sd["USER"] or "", safe="")
    if sd.get("PASSWORD"):
        auth += ":" + quote(sd["PASSWORD"], safe="")
    return f"postgres://{auth}@{sd['HOST'] or 'localhost'}:{sd['PORT'] or 5432}/{sd['NAME']}"


@dataclass
class Broker:
    url: str
    env: dict[str, str]


@contextmanager
def use_broker(broker: Broker) -> Iterator[None]:
    """Point this process's Celery app at `broker` for the duration."""
    from config.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    if broker.url.startswith("filesystem"):
        folder = Path(broker.env["FACET_BROKER_DIR"])
        options = {
            "control_folder": str(folder / "control"),
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
        }
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
    else:
        options = {"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 10}
    app.conf.broker_url = broker.url
    app.conf.broker_transport_options = options
    _reset_pools(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _reset_pools(app)


def _reset_pools(app) -> None:
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    # Celery's pools come from kombu's process-wide registry, keyed by broker URL: drop
    # them too, or the next use of the same URL is handed the pool just closed.
    pools.reset()


@pytest.fixture
def filesystem_broker(tmp_path) -> Iterator[Broker]:
    broker = Broker(
        "filesystem://", {"CELERY_BROKER_URL": "", "FACET_BROKER_DIR": str(tmp_path / "broker")}
    )
    with use_broker(broker):
        yield broker


@pytest.fixture
def redis_broker(redis_url) -> Iterator[Broker]:
    broker = Broker(redis_url, {"CELERY_BROKER_URL": redis_url})
    with use_broker(broker):
        yield broker


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole worker (main process and pool children) at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)


@pytest.fixture
def start_worker(tmp_path, settings) -> Iterator[Callable[..., Worker]]:
    """Start `celery worker` processes on the test database and media; stopped at teardown.

    Needs the test data committed: use it with `transactional_db`.
    """
    workers: list[Worker] = []

    def start(
        broker: Broker,
        *,
        queues: str = "default,gpu",
        concurrency: int = 1,
        extra_env: dict[str, str] | None = None,
        ready_timeout: float = 60,
    ) -> Worker:
        from config.celery import worker_argv

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url_for_subprocess(),
            "FACET_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "FACET_ARTIFACT_ROOT": str(settings.FACET_ARTIFACT_ROOT),
            "FACET_VAR_DIR": str(tmp_path / "worker-var"),
            **broker.env,
            **(extra_env or {}),
        }
        if not env.get("CELERY_BROKER_URL"):
            env.pop("CELERY_BROKER_URL", None)
        log = tmp_path / f"worker-{len(workers)}.log"
        process = subprocess.Popen(
            worker_argv(queues=queues, concurrency=concurrency, hostname=f"test{len(workers)}@%h"),
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(process, log)
        workers.append(worker)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if "ready." in worker.output():
                return worker
            if process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"Celery worker did not start:\n{worker.output()[-4000:]}")

    yield start
    for worker in workers:
        # The whole process group goes at once, so no pool child keeps the test DB open.
        with suppress(ProcessLookupError):
            worker.kill()


def wait_for(
    predicate: Callable[[], object],
    *,
    timeout: float = 60,
    interval: float = 0.2,
    message: str = "condition",
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


FAIRFACE540 = (ROOT.parent / "shared" / "data" / "fairface540").resolve()


@pytest.fixture(scope="session")
def fairface540() -> Path:
    """The 540 real FairFace crops beside the project (CC BY 4.0; see its README). CI has the
    folder; elsewhere the tests that need it skip, unless FACET_REQUIRE_SERVICES is set."""
    if not (FAIRFACE540 / "labels.csv").is_file():
        missing_service(f"needs the real faces at {FAIRFACE540}")
    return FAIRFACE540


# --- a real S3-compatible server ---------------------------------------------------------------
# moto's server mode, on a free port of this machine, started once per session; each test that
# asks for `s3_bucket` gets its own prefix in one bucket, configured as FACET_STORAGE_URL would.

BUCKET = "facet-test"
REGION = "us-east-1"


@dataclass
class Bucket:
    client: object  # a boto3 S3 client talking to the server
    name: str
    prefix: str

    def keys(self, folder: str = "") -> set[str]:
        """Keys under this test's prefix (+ folder), relative to the prefix."""
        start = f"{self.prefix}/{folder}".rstrip("/")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=start
        )
        return {
            item["Key"].removeprefix(f"{self.prefix}/")
            for page in pages
            for item in page.get("Contents", [])
        }

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=f"{self.prefix}/{key}", Body=data)


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of a moto S3 server running in this process, with the test bucket created."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="facet-test",
        aws_secret_access_key="facet-test-secret",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, settings, monkeypatch) -> Bucket:
    """Media and artifacts in the bucket under a prefix of this test's own, configured as
    FACET_STORAGE_URL would configure them."""
    import boto3

    from config.env import storages_from_url

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "facet-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "facet-test-secret")
    prefix = f"run-{uuid.uuid4().hex[:12]}"
    url = f"s3://{BUCKET}/{prefix}?endpoint_url={s3_endpoint}&region_name={REGION}"
    settings.FACET_STORAGE_URL = url
    settings.STORAGES = {**storages_from_url(url), "staticfiles": settings.STORAGES["staticfiles"]}
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="facet-test",
        aws_secret_access_key="facet-test-secret",
    )
    return Bucket(client, BUCKET, prefix)
