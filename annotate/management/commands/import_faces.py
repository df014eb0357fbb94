from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.commands._report import batch_report_write
from annotate.management.files import input_file_read
from annotate.selectors.studies import StudyNotFound, study_get
from annotate.services.ingest_faces import faces_import


class Command(BaseCommand):
    help = (
        "Import pre-cropped faces with known labels as training data. Labels file columns: "
        "path, gender[, race, age, glasses, quality]; FairFace spellings are understood. A row "
        "without a usable gender is rejected; an optional value that cannot be read leaves "
        "that attribute empty, keeps the face, and is reported as a warning with its line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir", type=Path, help="Folder holding the face images.")
        parser.add_argument("--labels", type=Path, required=True, help="Labels file (CSV).")
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, dir: Path, labels: Path, study: str, **options) -> None:
        dir, labels = Path(dir), Path(labels)
        try:
            target = study_get(slug=study)
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        if not dir.is_dir():
            raise CommandError(f"no such folder: {dir}")
        labels_bytes = input_file_read(
            labels,
            what="labels file",
            limit=settings.FACET_MANIFEST_MAX_BYTES,
            setting="FACET_MANIFEST_MAX_BYTES",
        )
        batch = faces_import(study=target, folder=dir, labels=labels_bytes, labels_name=labels.name)
        batch_report_write(self, batch, title="Face import", as_json=options["json"])
