"""Face detectors behind one small interface; both run offline with weights shipped in a package.

- `mtcnn` (default): facenet-pytorch 2.5.3's MTCNN, whose weights are inside the wheel.
  Batches same-sized images on the GPU when there is one.
- `haar`: OpenCV's frontal-face Haar cascade (opencv-python-headless < 5 ships the XML).

The default was chosen on evidence measured on real photographs (see bench/ingest.py and
the ingestion report): MTCNN finds more faces and fires less on non-faces. A stronger
detector plugs in by implementing `Detector` and registering in DETECTORS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_DETECTOR = "mtcnn"
# Detection runs on a copy no larger than this; boxes are scaled back to the full image.
DETECT_MAX_SIDE = 1600
UNKNOWN_DETECTOR = "unknown detector {name!r}; choose one of: {choices}"


@dataclass(frozen=True)
class Detection:
    """A face box in the coordinates of the image passed in (x, y = top-left corner)."""

    x: int
    y: int
    w: int
    h: int
    score: float

    @property
    def side(self) -> int:
        return min(self.w, self.h)


class Detector(Protocol):
    name: str
    batch_size: int  # images per detect() call that pay off (1 on a CPU)

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """One list of detections per RGB image, in the same order."""
        ...


def _device() -> str:
    """Where detection runs: the GPU that modeling.ml.device.device_choose() picks, else the
    CPU (facenet-pytorch's MTCNN is not tested on Apple's MPS, so that falls back too)."""
    from modeling.ml.device import device_choose

    return "cuda" if device_choose().type == "cuda" else "cpu"


def _too_small(image: Image.Image, min_face_size: int) -> bool:
    """No face of the detector's minimum size fits in `image`, so it has no detections."""
    return min(image.size) < min_face_size


def _clip(box: Sequence[float], width: int, height: int, score: float) -> Detection | None:
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, y1 = max(0.0, x1), max(0.0, y1)
    x2, y2 = min(float(width), x2), min(float(height), y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return Detection(round(x1), round(y1), round(x2 - x1), round(y2 - y1), float(score))


class MTCNNDetector:
    """MTCNN with `keep_all=True`; faces whose final score is below `min_score` are dropped."""

    name = "mtcnn"

    def __init__(
        self,
        *,
        device: str | None = None,
        min_face_size: int = 20,
        min_score: float = 0.9,
        batch_size: int | None = None,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.device = device or _device()
        self.min_score = min_score
        self.min_face_size = min_face_size
        # Batching pays on a GPU; on a CPU facenet's batched refinement is several times
        # slower than one image at a time (measured: 24 images 22.6 s batched vs 5.2 s).
        self.batch_size = batch_size or (16 if self.device.startswith("cuda") else 1)
        self._mtcnn = MTCNN(
            keep_all=True, device=self.device, min_face_size=min_face_size, post_process=False
        )

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        import torch

        results: list[list[Detection]] = [[] for _ in images]
        # MTCNN batches only images of one size; group by size, keep the caller's order.
        # Images too small for a face keep their empty list ("no face").
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            if self._pyramid_has_levels(image):
                groups.setdefault(image.size, []).append(index)
        with torch.inference_mode():
            for size, indices in groups.items():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    if len(chunk) == 1:
                        boxes, probs = self._mtcnn.detect(images[chunk[0]])
                        batch_boxes, batch_probs = [boxes], [probs]
                    else:
                        batch_boxes, batch_probs = self._mtcnn.detect([images[i] for i in chunk])
                    for index, boxes, probs in zip(chunk, batch_boxes, batch_probs, strict=True):
                        results[index] = self._keep(boxes, probs, *size)
        return results

    def _pyramid_has_levels(self, image: Image.Image) -> bool:
        """Whether MTCNN can look at `image` at all: facenet's image pyramid starts at the
        shorter side × 12 / min_face_size and keeps no level under 12 px; with no level it
        crashes (torch.cat of an empty list). Computed as facenet computes it."""
        return min(image.size) * (12.0 / self.min_face_size) >= 12

    def _keep(
        self,
        boxes: Sequence[Sequence[float]] | None,
        probs: Sequence[float | None],
        width: int,
        height: int,
    ) -> list[Detection]:
        if boxes is None:
            return []
        kept = []
        for box, prob in zip(boxes, probs, strict=True):
            if prob is None or float(prob) < self.min_score:
                continue
            detection = _clip(box, width, height, float(prob))
            if detection is not None:
                kept.append(detection)
        return kept


class HaarDetector:
    """OpenCV's frontal-face Haar cascade; the score is the cascade's last-stage weight."""

    name = "haar"
    batch_size = 1

    def __init__(
        self, *, min_face_size: int = 20, scale_factor: float = 1.1, min_neighbors: int = 5
    ) -> None:
        import cv2

        # cv2.data is a plain module OpenCV adds at import; its stubs leave it out.
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade could not be loaded from {path}")
        self._cv2 = cv2
        self.min_face_size = min_face_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        results: list[list[Detection]] = []
        for image in images:
            if _too_small(image, self.min_face_size):
                results.append([])
                continue
            grey = self._cv2.cvtColor(np.asarray(image.convert("RGB")), self._cv2.COLOR_RGB2GRAY)
            boxes, _, weights = self._cascade.detectMultiScale3(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_face_size, self.min_face_size),
                outputRejectLevels=True,
            )
            found = []
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=False):
                detection = _clip((x, y, x + w, y + h), image.width, image.height, float(weight))
                if detection is not None:
                    found.append(detection)
            results.append(found)
        return results


def detection_copy(
    image: Image.Image, *, max_side: int = DETECT_MAX_SIDE
) -> tuple[Image.Image, float]:
    """A copy no larger than `max_side` for detecting on, and the factor back to `image`."""
    longest = max(image.size)
    if longest <= max_side:
        return image, 1.0
    scale = longest / max_side
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return image.resize(size, Image.Resampling.BILINEAR), scale


def detections_scale(detections: list[Detection], scale: float) -> list[Detection]:
    """Boxes found on a `detection_copy`, in the full image's coordinates."""
    if scale == 1.0:
        return detections
    return [
        Detection(
            round(d.x * scale), round(d.y * scale), round(d.w * scale), round(d.h * scale), d.score
        )
        for d in detections
    ]


DETECTORS: dict[str, Callable[..., Detector]] = {
    "mtcnn": MTCNNDetector,
    "haar": HaarDetector,
}


def detector_make(name: str = DEFAULT_DETECTOR, **options: Any) -> Detector:
    """Build a detector by name; an unknown name raises ValueError listing the valid ones."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ValueError(UNKNOWN_DETECTOR.format(name=name, choices=", ".join(DETECTORS))) from None
    return factory(**options)
