from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.commands._report import batch_report_write
from annotate.management.files import input_file_check, input_file_read
from annotate.selectors.studies import StudyNotFound, study_get
from annotate.services.ingest import images_import


class Command(BaseCommand):
    help = (
        "Import search-result images from a folder or zip into a study: detect faces, crop, "
        "hash, and print the report. Manifest columns: file, query, job, country, language, "
        "rank, source_url (others kept as metadata)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="A folder of images or a .zip file.")
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument("--manifest", type=Path, help="Manifest CSV (optional).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, path: Path, study: str, manifest: Path | None, **options) -> None:
        path = Path(path)
        try:
            target = study_get(slug=study)
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        if not path.is_dir():  # a zip: a regular file, refused by its size before it is opened
            input_file_check(
                path,
                what="file or folder",
                limit=settings.FACET_IMPORT_MAX_BYTES,
                setting="FACET_IMPORT_MAX_BYTES",
            )
        manifest_bytes = None
        if manifest is not None:
            manifest_bytes = input_file_read(
                Path(manifest),
                what="manifest file",
                limit=settings.FACET_MANIFEST_MAX_BYTES,
                setting="FACET_MANIFEST_MAX_BYTES",
            )
        batch = images_import(study=target, source=path, manifest=manifest_bytes)
        batch_report_write(self, batch, title="Import", as_json=options["json"])
