"""The Celery app, wired once. Imported by config/__init__.py so tasks bind to it."""

from __future__ import annotations

import os
from enum import StrEnum

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class Queue(StrEnum):
    """Every queue Facet uses. Workers subscribe by these names (docker-compose, ./facet)."""

    DEFAULT = "default"
    GPU = "gpu"


app = Celery("facet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = Queue.DEFAULT.value
app.conf.task_routes = {
    "modeling.tasks.*": {"queue": Queue.GPU.value},
    "modeling.validation_tasks.*": {"queue": Queue.DEFAULT.value},
}
app.autodiscover_tasks()


BROKER_UNAVAILABLE_MESSAGE = (
    "The task queue is unreachable (broker at {broker}), so the job was not started and "
    "nothing was created. Check that Redis (or the configured broker) is running, then retry."
)


class BrokerUnavailable(RuntimeError):
    """The broker cannot take a task right now."""


def broker_check(*, timeout: float = 2.0) -> None:
    """Raise BrokerUnavailable unless the broker accepts a connection within `timeout`.

    Services call this before creating the rows a job needs, so a dead broker leaves no
    queued-forever run behind.
    """
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerUnavailable(
            BROKER_UNAVAILABLE_MESSAGE.format(broker=app.conf.broker_url.split("@")[-1])
        ) from exc


def worker_argv(*, queues: str, concurrency: int, hostname: str) -> list[str]:
    """The command line of a quiet, self-contained worker (tests and benchmarks start these)."""
    import sys

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        hostname,
    ]
