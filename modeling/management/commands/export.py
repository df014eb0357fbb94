"""Export votes, consensus, predictions, cross-validation predictions, validation results or
estimates as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.files import output_check, output_write
from annotate.models import Study
from modeling.exports import FORMAT_CHOICES, WHAT_CHOICES, ExportError, export_bytes, export_frame
from modeling.management.version_option import version_option_free
from modeling.selectors.estimates import EstimatesError


class Command(BaseCommand):
    help = (
        "Write one export of a study to --out PATH, a file in an existing folder (text cells "
        "neutralized against formulas)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        version_option_free(parser)
        parser.add_argument("--study", required=True)
        parser.add_argument("--what", required=True, choices=WHAT_CHOICES)
        parser.add_argument("--format", default="csv", choices=FORMAT_CHOICES)
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument(
            "--version",
            type=int,
            help="Version number (predictions, cv, validation; cv defaults to the active version, "
            "else the newest).",
        )
        parser.add_argument("--round", type=int, help="Validation round id (default: newest).")
        parser.add_argument(
            "--pseudonymize", action="store_true", help="Replace coder ids by stable pseudonyms."
        )

    def handle(self, *args, **options) -> None:
        out = output_check(options["out"])
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        version = None
        if options["version"] is not None:
            version = study.model_versions.filter(number=options["version"]).first()
            if version is None:
                raise CommandError(f"Study {study.slug} has no version {options['version']}.")
        try:
            frame = export_frame(
                study=study,
                what=options["what"],
                version=version,
                pseudonymize=options["pseudonymize"],
                round_id=options["round"],
            )
            data = export_bytes(frame, format=options["format"])
        except (ExportError, EstimatesError) as exc:
            raise CommandError(str(exc)) from exc
        output_write(out, data)
        self.stdout.write(f"{len(frame)} rows written to {out}")
