"""Shared helpers for modeling tests: a tiny trained version, versions with given metrics."""

from __future__ import annotations

from annotate.roles import Role
from annotate.services.demo import demo_study_load
from modeling.models import ModelVersion
from modeling.services.training import training_run_create, training_run_execute
from tests.factories import make_user
from tests.modeling.conftest import TINY


def trained_version(slug: str = "tiny", *, faces: int = 100, seed: int = 5, config=None):
    """Train synchronously (no worker): create the run without enqueueing, execute here."""
    study = demo_study_load(slug=slug, faces=faces, seed=seed).study
    run = training_run_create(study=study, config=config or TINY, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    return run.version


def version_with_metrics(study, number: int, accuracy_by_race: dict[str, tuple[int, float]]):
    rows = [
        {"value": value, "n": n, "accuracy": acc, "too_few": n < 30}
        for value, (n, acc) in accuracy_by_race.items()
    ]
    return ModelVersion.objects.create(
        study=study,
        number=number,
        backbone="resnet18",
        weights="none",
        metrics={"cv": {"accuracy": 0.9, "by_subgroup": {"race": rows}}},
    )


def admin_user():
    return make_user(Role.ADMIN)
