"""`manage.py activate --study NAME --version N [--override REASON]`: activate a version."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Study
from config.celery import BrokerUnavailable
from modeling.management.version_option import version_option_free
from modeling.models import ModelVersion
from modeling.services.activation import ActivationRefused, version_activate

NO_STUDY = "No study {slug!r}."
NO_VERSION = "Study {study} has no version {number}; it has {numbers}."
OVERRIDE_EMPTY = "--override needs a reason (it is recorded on the version)."


class Command(BaseCommand):
    help = (
        "Make a model version the study's active one, behind the subgroup gate (CV accuracy "
        "of no subgroup with enough faces may drop more than the margin below the active "
        "version's), then predict the faces it has not predicted yet. A refusal lists the "
        "failing groups and exits non-zero; --override REASON activates anyway and records "
        "the reason. To validate a candidate first, predict with it (`predict --version N`) "
        "and open a round (`validation_round --version N`) without activating it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        version_option_free(parser)
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument("--version", type=int, required=True, help="Version number.")
        parser.add_argument(
            "--override", metavar="REASON", help="Override a gate refusal; recorded."
        )

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(NO_STUDY.format(slug=options["study"]))
        versions = ModelVersion.objects.filter(study=study)
        version = versions.filter(number=options["version"]).first()
        if version is None:
            numbers = (
                ", ".join(
                    f"v{n}" for n in versions.order_by("number").values_list("number", flat=True)
                )
                or "none"
            )
            raise CommandError(
                NO_VERSION.format(study=study.slug, number=options["version"], numbers=numbers)
            )
        if options["override"] is not None and not options["override"].strip():
            raise CommandError(OVERRIDE_EMPTY)
        if version.is_active:
            self.stdout.write(f"v{version.number} of {study.slug} is already active.")
            return
        try:
            run = version_activate(version=version, user=None, override_reason=options["override"])
        except ActivationRefused as exc:
            for failure in exc.failures:
                self.stderr.write(f"gate: {failure.describe()}")
            raise CommandError(str(exc)) from exc
        except BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        version.refresh_from_db()
        overridden = " (gate overridden)" if version.gate_override_reason else ""
        note = f"; prediction run #{run.pk} {run.status}" if run else ""
        self.stdout.write(f"v{version.number} of {study.slug} is now active{overridden}{note}.")
