"""Print (or write) the share of women per group for the study's active model version."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management.files import output_check, output_write
from annotate.models import Study
from modeling.estimates import N_BOOT, PER_CHOICES
from modeling.exports import export_bytes, neutralize_formulas
from modeling.selectors.estimates import (
    DEFAULT_SEED,
    EstimateOptions,
    EstimatesError,
    estimate_tables,
    parse_by,
    version_active,
)


class Command(BaseCommand):
    help = (
        "Estimates for the active version: images, faces, raw and corrected share female, "
        "95 % bootstrap intervals, human-consensus share. --by job,country groups by job × "
        "country; without --by: the job, country, query and job × country tables."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True)
        parser.add_argument("--by", default="", help="Comma-separated columns of one grouping.")
        parser.add_argument(
            "--out",
            type=Path,
            help="Write CSV to this file, in an existing folder (else print a table).",
        )
        parser.add_argument("--per", choices=PER_CHOICES, default="face")
        parser.add_argument("--rank-cutoff", type=int, help="Only the top-N results per query.")
        parser.add_argument(
            "--all-duplicates", action="store_true", help="Count every near-duplicate copy."
        )
        parser.add_argument(
            "--per-subgroup-rates", action="store_true", help="Se/Sp per group where enough."
        )
        parser.add_argument("--resamples", type=int, default=N_BOOT)
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)

    def handle(self, *args, **options) -> None:
        out = output_check(options["out"]) if options["out"] else None
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        try:
            if options["rank_cutoff"] is not None and options["rank_cutoff"] < 1:
                raise EstimatesError("The rank cut-off must be a whole number of at least 1.")
            version = version_active(study=study)
            result = estimate_tables(
                version=version,
                options=EstimateOptions(
                    per=options["per"],
                    rank_cutoff=options["rank_cutoff"],
                    dedupe=not options["all_duplicates"],
                    per_subgroup_rates=options["per_subgroup_rates"],
                    n_boot=options["resamples"],
                    seed=options["seed"],
                    groupings=parse_by(options["by"]),
                ),
            )
        except (EstimatesError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        frame = neutralize_formulas(result.combined())
        if out is not None:
            output_write(out, export_bytes(frame, format="csv"))
            self.stdout.write(f"{len(frame)} rows written to {out}")
            return
        if result.basis.rates is None:
            self.stdout.write("No human-validation results for this version: raw shares only.")
        columns = [c for c in frame.columns if c not in ("rates_from",)]
        self.stdout.write(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
