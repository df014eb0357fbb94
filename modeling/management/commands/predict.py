"""`manage.py predict --study NAME [--version N] [--wait] [--inline]`: batch prediction."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotate.models import JobStatus, Study
from config.celery import BrokerUnavailable
from modeling.management.commands._jobs import job_finish
from modeling.models import ModelVersion
from modeling.services.prediction import predictions_run_create, predictions_run_execute

NO_ACTIVE = "Study {study} has no active model version; activate one (or pass --model-version)."


class Command(BaseCommand):
    help = "Predict every face of a study with its active model version (queue gpu)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument(
            "--model-version",
            type=int,
            dest="model_version",
            help="Version number (default: active).",
        )
        parser.add_argument("--wait", action="store_true", help="Block until it is done.")
        parser.add_argument("--inline", action="store_true", help="Run here, without a worker.")

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        versions = ModelVersion.objects.filter(study=study)
        version = (
            versions.filter(number=options["model_version"]).first()
            if options["model_version"]
            else versions.filter(is_active=True).first()
        )
        if version is None:
            raise CommandError(NO_ACTIVE.format(study=study.slug))
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
