"""Write the methods appendix (Markdown or JSON) for a study and model version."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.files import output_check, output_write
from annotate.models import Study
from modeling.appendix import appendix_markdown, methods_appendix
from modeling.management.version_option import version_option_free


class Command(BaseCommand):
    help = "Print or write the methods appendix of a study's model version."

    def add_arguments(self, parser: CommandParser) -> None:
        version_option_free(parser)
        parser.add_argument("--study", required=True)
        parser.add_argument("--version", type=int, help="Version number (default: active).")
        parser.add_argument("--format", choices=("md", "json"), default="md")
        parser.add_argument(
            "--out", type=Path, help="Write to this file, in an existing folder (else print)."
        )

    def handle(self, *args, **options) -> None:
        out = output_check(options["out"]) if options["out"] else None
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        versions = study.model_versions.all()
        version = (
            versions.filter(number=options["version"]).first()
            if options["version"] is not None
            else versions.filter(is_active=True).first()
        )
        if version is None:
            raise CommandError(f"Study {study.slug} has no such model version.")
        data = methods_appendix(study=study, version=version)
        text = (
            json.dumps(data, indent=2, ensure_ascii=False)
            if options["format"] == "json"
            else appendix_markdown(data)
        )
        if out is not None:
            output_write(out, text.encode("utf-8"))
            self.stdout.write(f"written to {out}")
        else:
            self.stdout.write(text)
