"""Celery tasks of the annotate app. Thin: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from annotate.services.health import health_ping_receive


@shared_task(name="annotate.tasks.health_ping", soft_time_limit=30, time_limit=60)
def health_ping(ping_id: int) -> None:
    health_ping_receive(ping_id=ping_id, worker=health_ping.request.hostname or "")
