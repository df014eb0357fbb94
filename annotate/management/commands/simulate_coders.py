from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Study
from annotate.services.simulation import coders_simulate


def _override(text: str) -> tuple[tuple[str, str], float]:
    """`age_band=3-9:0.6` -> (("age_band", "3-9"), 0.6)."""
    try:
        pair, accuracy = text.rsplit(":", 1)
        name, value = pair.split("=", 1)
        return (name.strip(), value.strip()), float(accuracy)
    except ValueError:
        raise CommandError(
            f"--override {text!r}: write ATTRIBUTE=VALUE:ACCURACY, e.g. age_band=3-9:0.6"
        ) from None


class Command(BaseCommand):
    help = "Label a study with simulated coders through the real assignment and vote services."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument("--coders", type=int, default=3, help="Number of coders (default 3).")
        parser.add_argument(
            "--accuracy", type=float, default=0.9, help="Share of correct answers (default 0.9)."
        )
        parser.add_argument(
            "--override",
            action="append",
            default=[],
            metavar="ATTR=VALUE:ACC",
            help="Accuracy for faces in a subgroup, e.g. age_band=3-9:0.6 (repeatable).",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--max-votes", type=int, default=None)

    def handle(
        self,
        *args,
        study: str,
        coders: int,
        accuracy: float,
        override: list[str],
        seed: int,
        max_votes: int | None,
        **options,
    ) -> None:
        target = Study.objects.filter(slug=study).first()
        if target is None:
            raise CommandError(f"No study {study!r}.")
        if coders < 1:
            raise CommandError("--coders must be at least 1.")
        overrides = dict(_override(text) for text in override)
        try:
            cast = coders_simulate(
                study=target,
                coders=coders,
                accuracy=accuracy,
                overrides=overrides,
                seed=seed,
                max_votes=max_votes,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{cast} votes cast by {coders} simulated coders in '{study}'.")
