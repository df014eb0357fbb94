"""What the import commands share: printing a finished batch and failing when it failed."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotate.models import ImportBatch, JobStatus
from annotate.services.import_report import report_lines


def batch_report_write(command: BaseCommand, batch: ImportBatch, *, title: str, as_json: bool):
    """The batch's report (JSON, or a title line and plain lines); CommandError unless it
    succeeded, so the exit status tells scripts."""
    if as_json:
        command.stdout.write(json.dumps(batch.report, ensure_ascii=False, indent=2))
    else:
        command.stdout.write(f"{title} #{batch.pk} into {batch.study.slug}: {batch.status}")
        for line in report_lines(batch.report):
            command.stdout.write(line)
    if batch.status != JobStatus.SUCCEEDED:
        raise CommandError(batch.error)
