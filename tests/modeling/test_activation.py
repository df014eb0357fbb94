"""Activation: one active version, the subgroup gate, admin override, prediction after."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from annotate.roles import Role
from config.celery import BrokerUnavailable
from modeling.models import ModelVersion, PredictionRun
from modeling.services.activation import ActivationRefused, version_activate
from tests.conftest import Broker, use_broker
from tests.factories import make_faces, make_study, make_user
from tests.modeling.helpers import version_with_metrics

pytestmark = pytest.mark.django_db


def _active(study):
    return list(ModelVersion.objects.filter(study=study, is_active=True))


def test_activation_swaps_the_active_version_and_starts_prediction():
    study = make_study()
    make_faces(study, 3)
    v1 = version_with_metrics(study, 1, {"white": (50, 0.9)})
    v2 = version_with_metrics(study, 2, {"white": (50, 0.91)})
    admin = make_user(Role.ADMIN)
    first = version_activate(version=v1, user=admin)
    assert first.version == v1 and first.total == 3
    second = version_activate(version=v2, user=admin)
    assert _active(study) == [v2]
    assert second.version == v2 and second.status == "queued"
    assert PredictionRun.objects.count() == 2


def test_gate_refuses_a_subgroup_drop_beyond_the_margin():
    study = make_study()
    v1 = version_with_metrics(study, 1, {"white": (50, 0.9), "black": (40, 0.9)})
    v2 = version_with_metrics(study, 2, {"white": (50, 0.95), "black": (40, 0.8)})
    admin = make_user(Role.ADMIN)
    version_activate(version=v1, user=admin)
    with pytest.raises(ActivationRefused) as refused:
        version_activate(version=v2, user=admin)
    assert "race = black: 80.0% vs 90.0% (n = 40)" in str(refused.value)
    assert _active(study) == [v1]


def test_gate_ignores_groups_below_the_minimum_n_and_drops_within_the_margin():
    study = make_study()
    v1 = version_with_metrics(study, 1, {"white": (50, 0.9), "black": (10, 0.9)})
    v2 = version_with_metrics(study, 2, {"white": (50, 0.86), "black": (10, 0.5)})
    admin = make_user(Role.ADMIN)
    version_activate(version=v1, user=admin)
    version_activate(version=v2, user=admin)
    assert _active(study) == [v2]


def test_admin_override_is_recorded():
    study = make_study()
    v1 = version_with_metrics(study, 1, {"black": (40, 0.9)})
    v2 = version_with_metrics(study, 2, {"black": (40, 0.7)})
    admin = make_user(Role.ADMIN)
    version_activate(version=v1, user=admin)
    version_activate(version=v2, user=admin, override_reason="More children in training now")
    v2.refresh_from_db()
    assert v2.is_active and v2.gate_override_reason == "More children in training now"
    assert v2.activated_by == admin


def test_only_admins_activate():
    study = make_study()
    v1 = version_with_metrics(study, 1, {})
    with pytest.raises(PermissionDenied):
        version_activate(version=v1, user=make_user(Role.RESEARCHER))
    assert not _active(study)


def test_dead_broker_leaves_the_active_version_unchanged():
    study = make_study()
    v1 = version_with_metrics(study, 1, {})
    v2 = version_with_metrics(study, 2, {})
    admin = make_user(Role.ADMIN)
    version_activate(version=v1, user=admin)
    with use_broker(Broker("redis://127.0.0.1:1/0", {})), pytest.raises(BrokerUnavailable):
        version_activate(version=v2, user=admin)
    assert _active(study) == [v1]
    assert PredictionRun.objects.filter(version=v2).count() == 0
