"""Uploads are kept only as long as they are needed.

An uploaded zip (and its manifest) is deleted FACET_UPLOAD_RETENTION_HOURS after its import
finished (0, the default: as soon as it finishes); the batch keeps its report and the name of
what was uploaded.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from annotate.models import ImportBatch, JobStatus

logger = logging.getLogger(__name__)

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def uploads_expire(*, now: datetime | None = None) -> int:
    """Delete the uploaded zip and manifest of imports that finished more than
    FACET_UPLOAD_RETENTION_HOURS ago (0: as soon as they finish). The batch keeps its report
    and source name. A file that cannot be deleted is logged and tried again next time.
    Returns how many batches lost their upload."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.FACET_UPLOAD_RETENTION_HOURS)
    expired = ImportBatch.objects.filter(
        status__in=FINISHED, finished_at__lte=cutoff, upload_deleted_at__isnull=True
    ).exclude(upload="", manifest="")
    count = 0
    for batch in expired:
        try:
            for name in (batch.upload.name, batch.manifest.name):
                if name:
                    default_storage.delete(name)
        except Exception:
            logger.warning(
                "could not delete the upload of import batch %s", batch.pk, exc_info=True
            )
            continue
        ImportBatch.objects.filter(pk=batch.pk).update(
            upload="", manifest="", upload_deleted_at=now
        )
        count += 1
    if count:
        logger.info("deleted the uploads of %d finished import(s)", count)
    return count
