"""What modeling does when the coding flow reports progress (annotate.signals)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from annotate.signals import face_coded
from config.celery import BrokerUnavailable
from modeling.services import coding_bridge
from modeling.services.validation import validation_rounds_after_consensus

logger = logging.getLogger(__name__)


@receiver(face_coded, dispatch_uid="modeling.validation_results_when_round_complete")
def validation_results_when_round_complete(
    sender, *, face_id: int, priority: int, **kwargs
) -> None:
    """The face that completes a validation round starts the computation of its results.

    Rounds put their faces first in the work queue (coding_bridge.VALIDATION_PRIORITY), so
    any other face is no round's: most votes end here without a query.
    """
    if priority < coding_bridge.VALIDATION_PRIORITY:
        return
    try:
        validation_rounds_after_consensus(face_id=face_id)
    except BrokerUnavailable as exc:
        # The vote is committed; the results are computed when the round's page is opened.
        logger.warning("face %s completed a validation round, but %s", face_id, exc)
