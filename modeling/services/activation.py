"""Activation: exactly one active version per study, behind the subgroup gate.

Activating a version whose CV accuracy for any subgroup with enough faces falls more than
the margin below the active version's is refused, unless an admin overrides with a reason
(recorded on the version). After activation, batch prediction starts automatically for the
faces the version has not predicted yet; a candidate can predict before, in shadow
(`predictions_start`), to be validated and compared first.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from annotate.access import is_admin
from config.celery import broker_check
from modeling.gate import GateFailure, gate_failures
from modeling.models import ModelVersion, PredictionRun
from modeling.services.prediction import predictions_start
from modeling.services.training import ADMIN_ONLY

logger = logging.getLogger(__name__)
GATE_REFUSED = (
    "Activation refused: CV accuracy drops more than {margin:.0%} below the active version "
    "v{active} for {groups}. An admin may override with a recorded reason."
)


class ActivationRefused(Exception):  # noqa: N818 - reads as "activation was refused"
    def __init__(self, message: str, failures: list[GateFailure]) -> None:
        super().__init__(message)
        self.failures = failures


def gate_settings() -> tuple[float, int]:
    return (
        settings.FACET_GATE_MARGIN,
        settings.FACET_GATE_MIN_N,
    )


def version_activate(
    *, version: ModelVersion, user, override_reason: str | None = None
) -> PredictionRun | None:
    """Make `version` the study's active version and start its batch prediction.

    Admins only; `user` None is the command line (whoever runs manage.py operates the
    deployment), recorded as no user. Checks the broker first, so a dead broker leaves the
    active version as it was. Locks the study's version rows while swapping. Returns the prediction run (None
    when every face already has a prediction from this version; the version's shadow run
    when one is still going).
    """
    if user is not None and not is_admin(user):
        raise PermissionDenied(ADMIN_ONLY)
    broker_check()
    margin, min_n = gate_settings()
    reason = (override_reason or "").strip()
    with transaction.atomic():
        versions = list(
            ModelVersion.objects.select_for_update().filter(study=version.study).order_by("pk")
        )
        version = next(v for v in versions if v.pk == version.pk)
        active = next((v for v in versions if v.is_active), None)
        if active is not None and active.pk == version.pk:
            return None
        failures = (
            gate_failures(version.metrics, active.metrics, margin=margin, min_n=min_n)
            if active
            else []
        )
        if active is not None and failures and not reason:
            raise ActivationRefused(
                GATE_REFUSED.format(
                    margin=margin,
                    active=active.number,
                    groups="; ".join(f.describe() for f in failures),
                ),
                failures,
            )
        if active is not None:
            active.is_active = False
            active.save(update_fields=["is_active"])
        version.is_active = True
        version.activated_at = timezone.now()
        version.activated_by = user
        version.gate_override_reason = reason if failures else ""
        version.save(
            update_fields=["is_active", "activated_at", "activated_by", "gate_override_reason"]
        )
        logger.info(
            "%s activated by %s%s",
            version,
            user or "the command line",
            " (gate overridden)" if failures else "",
        )
        return predictions_start(version=version, user=user)
