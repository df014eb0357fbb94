from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from annotate.management.commands._report import batch_report_write
from annotate.management.messages import validation_line
from annotate.roles import Role
from annotate.services.demo import (
    REAL_FACES_SLUG,
    REAL_FACES_TRAINING,
    RealFacesMissing,
    demo_members_add,
    demo_real_faces_load,
    demo_training_ensure,
)
from config.celery import BrokerUnavailable

ALREADY_LOADED = "Real-faces study '{slug}': {faces} labeled faces already imported."
TRAINING_QUEUED = (
    "Real-faces study '{slug}': training run #{run} ({backbone}, ImageNet weights) is queued "
    "and trains in the background on the worker (about a minute on a CPU); its cross-validated "
    "accuracy by age band appears on the model card linked from {models}"
)
TRAINING_EXISTS = (
    "Real-faces study '{slug}' already has a model or a training run under way: see {models}"
)


class Command(BaseCommand):
    help = (
        "Create the real-faces demo study from the shipped FairFace sample (540 labeled faces, "
        "CC BY 4.0) through the import_faces path, add the demo accounts, and queue one "
        "training run of the shipped pretrained backbone. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--study", default=REAL_FACES_SLUG, help=f"Study slug (default: {REAL_FACES_SLUG})."
        )

    def handle(self, *args, study: str, **options) -> None:
        try:
            result = demo_real_faces_load(slug=study)
        except RealFacesMissing as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(validation_line(exc)) from None
        # Every face arrives labeled, so there is nothing to code: no coders on this study.
        demo_members_add(study=result.study, roles=(Role.RESEARCHER,))
        if result.batch is None:
            self.stdout.write(ALREADY_LOADED.format(slug=study, faces=result.faces))
        else:
            batch_report_write(self, result.batch, title="Real faces import", as_json=False)
        try:
            run = demo_training_ensure(study=result.study)
        except BrokerUnavailable as exc:
            raise CommandError(str(exc)) from None
        models = reverse("modeling:study_models", kwargs={"slug": study})
        if run is None:
            self.stdout.write(TRAINING_EXISTS.format(slug=study, models=models))
        else:
            self.stdout.write(
                TRAINING_QUEUED.format(
                    slug=study, run=run.pk, backbone=REAL_FACES_TRAINING["backbone"], models=models
                )
            )
