"""Simulated coders label through the real services; truth and overrides drive accuracy."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotate.assignment import faces_over_assigned
from annotate.models import Consensus, Face, FaceStatus, KnownLabel, Vote
from annotate.services.simulation import BAD_OVERRIDE, coders_simulate
from tests.factories import bare_faces, make_study

pytestmark = pytest.mark.django_db


def with_truth(study, n, **truth):
    faces = bare_faces(study, n)
    KnownLabel.objects.bulk_create(
        KnownLabel(
            face=f,
            source="truth",
            usage=KnownLabel.Usage.TRUTH,
            gender="female" if i % 2 else "male",
            age_band=truth.get("age_band", "30-39") if i < n // 2 else "3-9",
            race="white",
        )
        for i, f in enumerate(faces)
    )
    return faces


def test_perfect_coders_reproduce_the_truth_with_three_votes_each():
    study = make_study(attributes_asked=["age_band"])
    faces = with_truth(study, 20)
    cast = coders_simulate(study=study, coders=5, accuracy=1.0, seed=1)
    assert cast == 60
    truth = dict(KnownLabel.objects.values_list("face_id", "gender"))
    for c in Consensus.objects.filter(face__in=faces):
        assert c.label == truth[c.face_id] and c.n_votes == 3
        assert c.attributes["age_band"] in {"30-39", "3-9"}
    assert faces_over_assigned(study=study) == []
    assert not Face.objects.filter(study=study, coding_status=FaceStatus.OPEN).exists()


def test_an_override_lowers_accuracy_only_in_its_subgroup():
    study = make_study(attributes_asked=[])
    with_truth(study, 200)
    coders_simulate(
        study=study, coders=3, accuracy=1.0, overrides={("age_band", "3-9"): 0.5}, seed=3
    )
    truth = {t.face_id: t for t in KnownLabel.objects.filter(face__study=study)}
    right = {"3-9": [], "30-39": []}
    for vote in Vote.objects.filter(face__study=study):
        t = truth[vote.face_id]
        right[t.age_band].append(vote.gender == t.gender)
    assert all(right["30-39"])
    assert 0.35 < sum(right["3-9"]) / len(right["3-9"]) < 0.65


def test_max_votes_stops_early():
    study = make_study(attributes_asked=[])
    bare_faces(study, 10)
    assert coders_simulate(study=study, coders=3, accuracy=0.8, max_votes=7) == 7
    assert Vote.objects.count() == 7


def test_bad_overrides_are_refused_with_the_valid_names():
    study = make_study()
    with pytest.raises(ValueError, match="race, age_band"):
        coders_simulate(study=study, coders=3, accuracy=0.9, overrides={("shoe", "x"): 0.5})
    assert BAD_OVERRIDE


def test_the_command_labels_a_study(capsys):
    study = make_study(slug="simstudy", attributes_asked=["glasses"])
    bare_faces(study, 5)
    call_command(
        "simulate_coders",
        "--study", "simstudy", "--coders", "4", "--accuracy", "0.9",
        "--override", "age_band=3-9:0.6", "--seed", "2",
    )  # fmt: skip
    assert "15 votes cast by 4 simulated coders" in capsys.readouterr().out
    with pytest.raises(CommandError, match="ATTRIBUTE=VALUE:ACCURACY"):
        call_command("simulate_coders", "--study", "simstudy", "--override", "nonsense")
