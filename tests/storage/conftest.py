"""The storage tests' detector; the S3 server and bucket fixtures are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def detector():
    """The default detector on the CPU, built once per module."""
    import torch

    from annotate.ingest.detect import detector_make

    torch.set_num_threads(2)
    return detector_make("mtcnn", device="cpu")
