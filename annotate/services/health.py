"""The queue round trip: web creates a ping and enqueues it; a worker stamps it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotate.models import HealthPing
from config.celery import broker_check


def health_ping_send() -> HealthPing:
    """Create a ping and enqueue it after commit. Raises BrokerUnavailable first if down."""
    from annotate.tasks import health_ping

    broker_check()
    with transaction.atomic():
        ping = HealthPing.objects.create()
        transaction.on_commit(lambda: health_ping.delay(ping.pk))
    return ping


def health_ping_receive(*, ping_id: int, worker: str) -> None:
    HealthPing.objects.filter(pk=ping_id).update(received_at=timezone.now(), worker=worker[:200])
