"""Open a human-validation round for a model version, or compute a round's results."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Study
from modeling.management.version_option import version_option_free
from modeling.models import ModelVersion
from modeling.sampling import MIN_PER_GROUP
from modeling.services.validation import (
    ValidationError,
    validation_results_compute,
    validation_round_create,
)

DEFAULT_SIZE = 300


class Command(BaseCommand):
    help = (
        "Open a validation round (stratified sample sent to the coders) on any version with "
        "predictions, active or not (predict a candidate first with `predict --version N`), "
        "and print its id; with --compute ID, compute and store a round's results now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        version_option_free(parser)
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument(
            "--version", type=int, help="Version number, active or not (default: the active one)."
        )
        parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="Faces to sample.")
        parser.add_argument("--seed", type=int, help="Sampling seed (default: random, recorded).")
        parser.add_argument("--min-per-group", type=int, default=MIN_PER_GROUP)
        parser.add_argument("--compute", type=int, metavar="ID", help="Compute round ID's results.")

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        if options["compute"] is not None:
            if not study.validation_rounds.filter(pk=options["compute"]).exists():
                raise CommandError(
                    f"Study {study.slug} has no validation round {options['compute']}."
                )
            round = validation_results_compute(round_id=options["compute"])
            overall = round.results["overall"]
            self.stdout.write(
                f"{round.pk}\t{round.status}\taccuracy={overall['accuracy']}\tn={overall['n']}"
            )
            return
        versions = ModelVersion.objects.filter(study=study)
        version = (
            versions.filter(number=options["version"]).first()
            if options["version"] is not None
            else versions.filter(is_active=True).first()
        )
        if version is None:
            raise CommandError(
                f"Study {study.slug} has no version {options['version']}."
                if options["version"] is not None
                else f"Study {study.slug} has no active model version; pass --version."
            )
        try:
            round = validation_round_create(
                version=version,
                size=options["size"],
                seed=options["seed"],
                min_per_group=options["min_per_group"],
            )
        except ValidationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(round.pk))
