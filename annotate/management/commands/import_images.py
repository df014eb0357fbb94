from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.commands._report import batch_report_write
from annotate.services.ingest import images_import
from annotate.services.ingest_common import StudyNotFound, study_get


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
        manifest = Path(manifest) if manifest else None
        try:
            target = study_get(slug=study)
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        if not path.exists():
            raise CommandError(f"no such file or folder: {path}")
        manifest_bytes = None
        if manifest is not None:
            if not manifest.is_file():
                raise CommandError(f"no such manifest file: {manifest}")
            manifest_bytes = manifest.read_bytes()
        batch = images_import(study=target, source=path, manifest=manifest_bytes)
        batch_report_write(self, batch, title="Import", as_json=options["json"])
