"""`manage.py near_duplicates --study SLUG`: redo a study's near-duplicate flags."""

from __future__ import annotations

import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError

from annotate.selectors.studies import StudyNotFound, study_get
from annotate.services.near_duplicates import near_duplicates_recompute


class Command(BaseCommand):
    help = (
        "Recompute every face's crop print and near-duplicate flag with the current rule "
        "(after an upgrade: faces imported before it keep the old rule's flags until then)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--study", required=True, help="Study slug.")

    def handle(self, *args, **options) -> None:
        try:
            study = study_get(slug=options["study"])
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        report = near_duplicates_recompute(study=study)
        self.stdout.write(json.dumps(dataclasses.asdict(report)))
