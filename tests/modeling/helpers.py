"""Shared helpers for modeling tests: a tiny trained version, versions with given metrics."""

from __future__ import annotations

import pandas as pd

from annotate.services.demo import demo_study_load
from modeling import evaluation
from modeling.models import ModelVersion
from modeling.services.training import training_run_create, training_run_execute
from modeling.services.validation import records
from tests.modeling.conftest import TINY


def trained_version(slug: str = "tiny", *, faces: int = 100, seed: int = 5, config=None):
    """Train synchronously (no worker): create the run without enqueueing, execute here."""
    study = demo_study_load(slug=slug, faces=faces, seed=seed).study
    run = training_run_create(study=study, config=config or TINY, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    return run.version


def version_with_metrics(study, number: int, accuracy_by_race: dict[str, tuple[int, float]]):
    """A version whose CV rows are what training stores for faces with these races, each
    group with n faces of which round(n · accuracy) were predicted right."""
    truth, predicted, race = [], [], []
    for value, (n, accuracy) in accuracy_by_race.items():
        right = round(n * accuracy)
        truth += ["female"] * n
        predicted += ["female"] * right + ["male"] * (n - right)
        race += [value] * n
    frame = pd.DataFrame({"truth": truth, "predicted": predicted, "race": race})
    by_group = evaluation.accuracy_by_group(frame, attributes=["race"], intersections=False)
    return ModelVersion.objects.create(
        study=study,
        number=number,
        backbone="resnet18",
        weights="none",
        metrics={
            "cv": {
                "accuracy": records(by_group.iloc[:1])[0]["accuracy"],
                "by_subgroup": records(by_group.iloc[1:]),
            }
        },
    )
