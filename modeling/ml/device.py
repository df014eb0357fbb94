"""The one place that chooses the device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def device_choose(preference: str = "auto") -> torch.device:
    """The device to run on. `auto` takes CUDA > MPS > CPU; a named device must be available."""
    if preference not in DEVICE_CHOICES:
        raise ValueError(
            f"Unknown device {preference!r}; valid devices: {', '.join(DEVICE_CHOICES)}."
        )
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if preference == "cuda" and not cuda or preference == "mps" and not mps:
        raise ValueError(f"Device {preference!r} was asked for but is not available here.")
    if preference != "auto":
        return torch.device(preference)
    if cuda:
        return torch.device("cuda")
    if mps:
        return torch.device("mps")
    return torch.device("cpu")


def amp_enabled(device: torch.device) -> bool:
    """Mixed precision only on CUDA: on CPU bfloat16 autocast is slower for these models."""
    return device.type == "cuda"


def device_describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
