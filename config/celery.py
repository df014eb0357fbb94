"""The Celery app, wired once. Imported by config/__init__.py so tasks bind to it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from enum import StrEnum

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
logger = logging.getLogger(__name__)


class Queue(StrEnum):
    """Every queue Facet uses. Workers subscribe by these names (docker-compose, ./facet)."""

    DEFAULT = "default"
    GPU = "gpu"


def queue_route(name, args, kwargs, options, task=None, **_) -> dict[str, str] | None:
    """Route a task to the queue its decorator declares (`@shared_task(facet_queue=Queue.GPU)`);
    a task that declares none goes to task_default_queue.

    Celery's own `queue=` task attribute is deprecated (it stops working in Celery 6), so the
    declaration is Facet's attribute and this router, Celery's supported hook, reads it.
    """
    queue = getattr(task, "facet_queue", None)
    return None if queue is None else {"queue": Queue(queue).value}


app = Celery("facet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = Queue.DEFAULT.value
app.conf.task_routes = (queue_route,)
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
            # kombu's stub types the timeout as int; it is any number of seconds.
            conn.ensure_connection(max_retries=1, timeout=timeout)  # type: ignore[arg-type]
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerUnavailable(
            BROKER_UNAVAILABLE_MESSAGE.format(broker=app.conf.broker_url.split("@")[-1])
        ) from exc


# Above the longest hard limit by this much, so a task killed at its limit is acknowledged
# (failed) before Redis would hand it out again.
VISIBILITY_MARGIN_S = 900
VISIBILITY_TOO_SHORT = (
    "CELERY_VISIBILITY_TIMEOUT={timeout}s is not above the hard time limit of task {task} "
    "({limit:.0f}s), so Redis would hand it to a second worker while the first still runs it; "
    "unset it (the default is the longest limit plus {margin}s) or set it above {limit:.0f}."
)


class VisibilityTimeoutTooShort(ValueError):
    """The configured Redis visibility timeout is not above some task's hard time limit."""


def task_time_limits(celery_app: Celery) -> dict[str, float]:
    """The hard time limit (seconds) of every registered task; the global one where a task
    names none. A task with no limit at all counts as infinite."""
    default = celery_app.conf.task_time_limit
    return {
        name: float(task.time_limit or default or "inf") for name, task in celery_app.tasks.items()
    }


def visibility_timeout_resolve(*, configured: int | None, limits: Mapping[str, float]) -> int:
    """The visibility timeout a Redis worker must use: `configured`, which must be above every
    limit in `limits` (else VisibilityTimeoutTooShort naming the task), or by default the
    longest limit plus VISIBILITY_MARGIN_S."""
    # Sorted first, so a tie between equally long limits always names the same task.
    task, longest = max(sorted(limits.items()), key=lambda item: item[1], default=("", 0.0))
    if configured is None:
        if longest == float("inf"):
            raise VisibilityTimeoutTooShort(f"task {task} has no time limit; give it one")
        return int(longest) + VISIBILITY_MARGIN_S
    if configured <= longest:
        raise VisibilityTimeoutTooShort(
            VISIBILITY_TOO_SHORT.format(
                timeout=configured, task=task, limit=longest, margin=VISIBILITY_MARGIN_S
            )
        )
    return configured


@signals.worker_init.connect
def _visibility_timeout_check(sender=None, **_) -> None:
    """At worker start (tasks registered, broker not yet connected): settle the Redis
    visibility timeout, or refuse to start with one line naming the task it would cut short."""
    if not str(app.conf.broker_url or "").startswith(("redis://", "rediss://")):
        return  # the filesystem transport never redelivers; the import sweep covers it
    options = dict(app.conf.broker_transport_options or {})
    try:
        options["visibility_timeout"] = visibility_timeout_resolve(
            configured=options.get("visibility_timeout"), limits=task_time_limits(app)
        )
    except VisibilityTimeoutTooShort as exc:
        raise SystemExit(f"facet worker not started: {exc}") from None
    app.conf.broker_transport_options = options
    logger.info("Redis visibility timeout: %ss", options["visibility_timeout"])


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
