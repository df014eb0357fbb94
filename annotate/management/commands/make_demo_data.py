from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.messages import validation_line
from annotate.services.demo import demo_members_add, demo_study_load


class Command(BaseCommand):
    help = "Create the demo study of synthetic faces (idempotent, deterministic by seed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", default="demo", help="Study slug (default: demo).")
        parser.add_argument("--faces", type=int, default=400, help="Number of faces (default 400).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")

    def handle(self, *args, study: str, faces: int, seed: int, **options) -> None:
        if faces < 1:
            self.stderr.write("--faces must be at least 1.")
            raise SystemExit(2)
        try:
            result = demo_study_load(slug=study, faces=faces, seed=seed)
        except ValidationError as exc:
            raise CommandError(validation_line(exc)) from None
        demo_members_add(study=result.study)
        if result.created:
            self.stdout.write(
                f"Demo study '{study}': {result.faces} faces ({result.labeled} pre-labeled), "
                f"{result.images} source images."
            )
        else:
            self.stdout.write(f"Demo study '{study}' already has its demo data; nothing to do.")
