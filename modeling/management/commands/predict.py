"""`manage.py predict --study NAME [--version N] [--wait] [--inline]`: batch prediction."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotate.models import JobStatus, Study
from config.celery import BrokerUnavailable
from modeling.management.commands._jobs import job_finish
from modeling.management.version_option import version_option_free
from modeling.models import ModelVersion
from modeling.services.prediction import predictions_run_create, predictions_run_execute

NO_ACTIVE = "Study {study} has no active model version; pass --version N."
NO_VERSION = "Study {study} has no version {number}."


class Command(BaseCommand):
    help = (
        "Predict every face of a study still missing a prediction from a model version "
        "(queue gpu). --version N predicts with any version, active or not, without "
        "activating it (shadow predictions, to validate a candidate first); default: the "
        "active version."
    )

    def add_arguments(self, parser) -> None:
        version_option_free(parser)
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument(
            "--version",
            type=int,
            help="Version number, active or not (default: the active one).",
        )
        parser.add_argument("--wait", action="store_true", help="Block until it is done.")
        parser.add_argument("--inline", action="store_true", help="Run here, without a worker.")

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        versions = ModelVersion.objects.filter(study=study)
        number = options["version"]
        version = (
            versions.filter(number=number).first()
            if number is not None
            else versions.filter(is_active=True).first()
        )
        if version is None:
            raise CommandError(
                NO_VERSION.format(study=study.slug, number=number)
                if number is not None
                else NO_ACTIVE.format(study=study.slug)
            )
        try:
            run = predictions_run_create(version=version, enqueue=not options["inline"])
        except BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        finished = job_finish(
            run, execute=predictions_run_execute, inline=options["inline"], wait=options["wait"]
        )
        if finished is None:
            self.stdout.write(f"Prediction run #{run.pk} for v{version.number} queued.")
            return
        run = finished
        report = {"run": run.pk, "version": version.number, "status": run.status}
        report |= {"done": run.done, "total": run.total, "error": run.error or None}
        self.stdout.write(json.dumps(report))
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Prediction run #{run.pk} {run.status}: {run.error}")
