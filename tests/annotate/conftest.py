"""Fixtures shared by the import tests."""

from __future__ import annotations

from datetime import timedelta

import pytest


@pytest.fixture
def sweep_only_when_called(monkeypatch):
    """The services sweep at most every SWEEP_EVERY; with this, only the test sweeps, when it
    says."""
    from django.utils import timezone

    from annotate.services import import_sweep

    monkeypatch.setattr(import_sweep, "_last_sweep", timezone.now())
    monkeypatch.setattr(import_sweep, "SWEEP_EVERY", timedelta(days=1))


@pytest.fixture(scope="module")
def detector():
    """The default detector on the CPU, built once per module."""
    import torch

    from annotate.ingest.detect import detector_make

    torch.set_num_threads(2)
    return detector_make("mtcnn", device="cpu")
