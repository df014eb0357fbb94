"""The queue round trip through a real worker process: web enqueues, worker writes the DB."""

from __future__ import annotations

import pytest

from annotate.models import HealthPing
from annotate.services.health import health_ping_send
from config.celery import Queue, app
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _round_trip(broker, start_worker) -> HealthPing:
    start_worker(broker)
    ping = health_ping_send()
    wait_for(
        lambda: HealthPing.objects.get(pk=ping.pk).received_at, timeout=60, message="the worker"
    )
    return HealthPing.objects.get(pk=ping.pk)


def test_round_trip_over_the_filesystem_broker(filesystem_broker, start_worker):
    ping = _round_trip(filesystem_broker, start_worker)
    assert ping.worker.startswith("test0@")


@pytest.mark.redis
def test_round_trip_over_real_redis(redis_broker, start_worker):
    ping = _round_trip(redis_broker, start_worker)
    assert ping.worker.startswith("test0@")


def test_queues_are_named_once():
    assert [q.value for q in Queue] == ["default", "gpu"]
    assert app.conf.task_default_queue == "default"


def test_every_modeling_task_declares_its_queue_and_is_routed_there():
    import annotate.tasks  # noqa: F401  (register every task, as a worker does)
    import modeling.tasks  # noqa: F401

    modeling_tasks = {name: t for name, t in app.tasks.items() if name.startswith("modeling.")}
    declared = {name: t.facet_queue for name, t in modeling_tasks.items()}
    assert declared == {
        "modeling.tasks.training_run": Queue.GPU,
        "modeling.tasks.prediction_run": Queue.GPU,
        "modeling.tasks.prediction_chunk": Queue.GPU,
        "modeling.validation_tasks.validation_results": Queue.DEFAULT,
    }
    for name, task in modeling_tasks.items():
        route = app.amqp.router.route({}, name, task_type=task)
        assert route["queue"].name == declared[name].value
    # A task that declares nothing (annotate's) falls to the default queue.
    health = app.tasks["annotate.tasks.health_ping"]
    assert app.amqp.router.route({}, health.name, task_type=health)["queue"].name == "default"


def test_dead_broker_is_reported_and_nothing_is_created():
    from config.celery import BrokerUnavailable
    from tests.conftest import Broker, use_broker

    with (
        use_broker(Broker("redis://127.0.0.1:1/0", {})),
        pytest.raises(BrokerUnavailable) as caught,
    ):
        health_ping_send()
    assert "nothing was created" in str(caught.value)
    assert not HealthPing.objects.exists()
