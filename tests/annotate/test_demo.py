"""The demo set-up: accounts for every role and a deterministic synthetic study."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotate.models import Face, FaceStatus, KnownLabel, SourceImage, Study
from annotate.roles import Role, user_roles
from annotate.synthetic import WEAK_SUBGROUP, draw_face, face_specs


@pytest.mark.django_db
def test_demo_commands_create_accounts_and_study_once():
    out = io.StringIO()
    for _ in range(2):  # the second run must not duplicate anything
        call_command("demo_accounts", stdout=out)
        call_command("make_demo_data", "--faces", "60", "--seed", "3", stdout=out)
    users = get_user_model().objects.order_by("username")
    assert [u.username for u in users] == ["admin", "coder1", "coder2", "coder3", "researcher"]
    assert user_roles(users.get(username="admin")) == {Role.ADMIN}
    assert user_roles(users.get(username="coder2")) == {Role.CODER}
    assert "researcher  facet-demo" in out.getvalue()
    assert "already has its demo data" in out.getvalue()

    study = Study.objects.get(slug="demo")
    assert study.faces.count() == 60
    assert KnownLabel.objects.filter(usage=KnownLabel.Usage.TRUTH).count() == 60
    train = KnownLabel.objects.filter(usage=KnownLabel.Usage.TRAIN)
    assert train.count() == 24
    assert set(study.members.values_list("username", flat=True)) == {
        "researcher",
        "coder1",
        "coder2",
        "coder3",
    }
    coded = Face.objects.filter(study=study, coding_status=FaceStatus.OPEN)
    assert coded.count() == 36 and not coded.filter(source_image__isnull=True).exists()
    assert SourceImage.objects.filter(study=study).values("job").distinct().count() == 6
    assert SourceImage.objects.filter(study=study).values("country").distinct().count() == 4


def test_generator_is_deterministic_by_seed():
    def digest(seed):
        h = hashlib.sha256()
        for spec in face_specs(20, seed=seed):
            h.update(draw_face(spec, seed=seed).tobytes())
            h.update(repr(spec).encode())
        return h.hexdigest()

    assert digest(5) == digest(5)
    assert digest(5) != digest(6)


def test_planted_weakness_gives_weaker_cues_for_the_documented_subgroup():
    specs = list(face_specs(2000, seed=1))
    attribute, value = WEAK_SUBGROUP
    weak = [s.cue_strength for s in specs if getattr(s, attribute) == value]
    strong = [s.cue_strength for s in specs if getattr(s, attribute) != value]
    assert len(weak) > 100
    assert max(weak) < 0.25 < 0.6 < min(strong)


def test_female_hair_is_longer_than_male_hair_when_cues_are_strong():
    """The cue the model should learn is really in the pixels: dark pixels below the chin."""
    import numpy as np

    def lower_darkness(spec):
        pixels = np.asarray(draw_face(spec, seed=2).convert("L"), dtype=float)
        return float((pixels[80:110, 20:108] < 90).mean())

    specs = [s for s in face_specs(400, seed=2) if s.cue_strength > 0.8 and s.quality == "good"]
    female = np.mean([lower_darkness(s) for s in specs if s.gender == "female"])
    male = np.mean([lower_darkness(s) for s in specs if s.gender == "male"])
    assert female > male + 0.05
