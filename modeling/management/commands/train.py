"""`manage.py train --study NAME [...] [--wait] [--inline]`: start a training run."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotate.models import JobStatus, Study
from config.celery import BrokerUnavailable
from modeling.management.commands._jobs import job_finish
from modeling.ml.backbones import BACKBONES
from modeling.models import TrainingRun
from modeling.services.training import training_run_create, training_run_execute


def _by_attribute(rows: list[dict]) -> dict[str, dict[str, list]]:
    """{attribute: {group: [n, accuracy]}} from the stored subgroup rows."""
    table: dict[str, dict[str, list]] = {}
    for row in rows:
        table.setdefault(row["attribute"], {})[row["group"]] = [row["n"], row["accuracy"]]
    return table


def run_report(run: TrainingRun) -> dict:
    cv = (run.metrics or {}).get("cv") or {}
    version = getattr(run, "version", None)
    return {
        "run": run.pk,
        "status": run.status,
        "error": run.error or None,
        "version": version.number if version else None,
        "device": run.device,
        "faces": (run.dataset or {}).get("n"),
        "cv_accuracy": cv.get("accuracy"),
        "cv_interval": [cv.get("low"), cv.get("high")] if cv else None,
        "cv_by_subgroup": _by_attribute(cv.get("by_subgroup") or []),
        "timings": run.timings,
    }


class Command(BaseCommand):
    help = "Start a training run for a study (queue gpu); --wait blocks and prints metrics as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument(
            "--backbone",
            choices=sorted(BACKBONES),
            help="Default: resnet50 where its ImageNet weights are on this machine, else "
            "efficientnet_lite0 (its weights ship in a package: works offline).",
        )
        parser.add_argument(
            "--weights", help="'default' (ImageNet), a torchvision weights name, or 'none'."
        )
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--folds", type=int)
        parser.add_argument("--image-size", type=int, dest="image_size")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--fine-tune", action="store_true", dest="fine_tune")
        parser.add_argument("--wait", action="store_true", help="Block; print metrics as JSON.")
        parser.add_argument(
            "--inline", action="store_true", help="Train in this process, without a worker."
        )

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study {options['study']!r}.")
        keys = ("backbone", "weights", "epochs", "folds", "image_size", "seed")
        config = {key: options[key] for key in keys if options[key] is not None}
        if options["fine_tune"]:
            config["fine_tune"] = True
        try:
            run = training_run_create(study=study, config=config, enqueue=not options["inline"])
        except (BrokerUnavailable, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finished = job_finish(
            run, execute=training_run_execute, inline=options["inline"], wait=options["wait"]
        )
        if finished is None:
            self.stdout.write(f"Training run #{run.pk} queued on queue gpu.")
            return
        run = TrainingRun.objects.select_related("version").get(pk=run.pk)
        self.stdout.write(json.dumps(run_report(run), default=str))
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Training run #{run.pk} {run.status}: {run.error}")
