"""End to end on the demo data: train, predict, open a round, code it, read the flags."""

from __future__ import annotations

import pytest

from annotate.roles import Role
from annotate.services.demo import demo_study_load
from annotate.services.simulation import coders_simulate
from annotate.synthetic import WEAK_SUBGROUP
from modeling.services.activation import version_activate
from modeling.services.prediction import predictions_run_create, predictions_run_execute
from modeling.services.training import training_run_create, training_run_execute
from modeling.services.validation import validation_results_compute, validation_round_create
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ROUND = 1500
# The flag's gap threshold, set by the researcher (METHODS default 5 points). The planted gap
# is about 35 points; at 5 points, sampling noise in the smallest groups (n ≈ 70) also
# crossed it for demo seeds 13 (obstructed) and 17 (sunglasses). At 10 points seeds 11, 13
# and 17 each flagged the planted subgroup alone.
GAP = 0.10


def test_round_on_trained_demo_model_flags_exactly_the_planted_subgroup(tiny_config):
    study = demo_study_load(slug="planted", faces=3000, seed=11).study
    run = training_run_create(study=study, config={**tiny_config, "image_size": 96}, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    version_activate(version=run.version, user=make_user(Role.ADMIN))
    prediction = predictions_run_execute(
        run_id=predictions_run_create(version=run.version, enqueue=False).pk
    )
    assert prediction.status == "succeeded", prediction.error

    round = validation_round_create(version=run.version, size=ROUND, seed=3)
    # Coders see the round's faces first and are right 95 % of the time (on attributes too).
    coders_simulate(study=study, coders=5, accuracy=0.95, seed=1, max_votes=3 * ROUND + 300)
    round = validation_results_compute(round_id=round.pk, gap=GAP)

    assert round.status == "complete"
    results = round.results
    assert results["n_used"] >= ROUND - 20  # a few faces may end "can't tell" or unresolved
    rows = [row for row in results["by_subgroup"] if " × " not in row["attribute"]]
    flagged = {(row["attribute"], row["group"]) for row in rows if row["flagged"]}
    assert flagged == {WEAK_SUBGROUP}
    weak = next(row for row in rows if (row["attribute"], row["group"]) == WEAK_SUBGROUP)
    assert weak["n"] >= 100 and weak["ci_high"] < results["overall"]["accuracy"]
