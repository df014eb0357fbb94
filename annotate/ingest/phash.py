"""Perceptual hashes of face crops, and the near-duplicate rule that uses them.

A near-duplicate is the same picture posted again (re-encoded, resized, lightly cropped), not
two similar-looking people. Aligned face crops of different people share their coarse layout,
so a short hash of the whole crop cannot tell them apart: on 540 distinct FairFace people a
64-bit dHash puts some pairs 10 bits apart, while a 5 % crop of one picture moves it up to 15
bits. The rule therefore uses a long hash that sees detail (256-bit dHash, 16×16 cells) and
registers the two crops before comparing them, so a shift or rescale of a few per cent costs
no bits:

- each stored face keeps the print of its central window (`crop_print`, 90 % of the side);
- a new face is compared through the prints of 75 windows around its centre (`crop_probes`:
  3 sizes × 5 × 5 shifts, covering a crop of up to 5 % of either picture);
- it is a near-duplicate of a stored face when any probe is within `NEAR_DUPLICATE_BITS`.

Measured on data/fairface540 (tests/annotate/test_near_duplicates.py): distinct people are
at least 49 of 256 bits apart, re-encoded / resized / cropped copies at most 31.

`dhash` (64 bits, `Face.phash`) stays as a short content key for lookups; it is not evidence
of a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

PRINT_BITS = 256
NEAR_DUPLICATE_BITS = 34
_WORDS = PRINT_BITS // 64
_WORD_MASK = (1 << 64) - 1
_GRID = 16  # cells per side: 16 rows × 16 left-right differences = 256 bits
_BASE_SIDE = 112  # prints are read from one grey copy of this size (fast, detail kept)
_PRINT_WINDOW = 0.9
_PROBE_SIZES = (0.86, 0.90, 0.94)
_PROBE_SHIFTS = (-0.03, -0.015, 0.0, 0.015, 0.03)


def dhash(image: Image.Image) -> int:
    """64-bit dHash of the whole image (9×8 grey, one bit per brighter right neighbour)."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hash_hex(value: int) -> str:
    return f"{value:016x}"


def print_hex(value: int) -> str:
    return f"{value:0{PRINT_BITS // 4}x}"


def hash_int(text: str) -> int | None:
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L").resize((_BASE_SIDE, _BASE_SIDE), Image.Resampling.LANCZOS)


def _window_print(grey: Image.Image, size: float, dx: float, dy: float) -> int:
    """256-bit dHash of the square window of side `size` centred at (0.5 + dx, 0.5 + dy)."""
    side = size * grey.width
    cx, cy = grey.width * (0.5 + dx), grey.height * (0.5 + dy)
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    small = grey.resize((_GRID + 1, _GRID), Image.Resampling.LANCZOS, box=box)
    pixels = np.asarray(small, dtype=np.int16)
    bits = np.packbits((pixels[:, 1:] > pixels[:, :-1]).flatten())
    return int.from_bytes(bits.tobytes(), "big")


def crop_print(image: Image.Image) -> int:
    """The stored print of a face crop: 256-bit dHash of its central window."""
    return _window_print(_grey(image), _PRINT_WINDOW, 0.0, 0.0)


def crop_probes(image: Image.Image) -> list[int]:
    """The prints a new face crop is compared through: windows around its centre."""
    grey = _grey(image)
    return [
        _window_print(grey, size, dx, dy)
        for size in _PROBE_SIZES
        for dx in _PROBE_SHIFTS
        for dy in _PROBE_SHIFTS
    ]


def _words(value: int) -> list[int]:
    return [(value >> (64 * i)) & _WORD_MASK for i in range(_WORDS)]


class HashIndex:
    """Known (key, print) pairs, searched for the nearest print within a Hamming distance.

    Prints are up to 256 bits. Vectorised (xor + popcount over a uint64 array), so comparing
    a face's 75 probes with 10,000 stored faces stays in the milliseconds.
    """

    def __init__(
        self, pairs: Iterable[tuple[int, int]] = (), *, max_bits: int = NEAR_DUPLICATE_BITS
    ):
        self.max_bits = max_bits
        self._keys: list[int] = []
        self._prints = np.zeros((64, _WORDS), dtype=np.uint64)
        for key, value in pairs:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: int, value: int) -> None:
        n = len(self._keys)
        if n == len(self._prints):
            self._prints = np.concatenate([self._prints, np.zeros_like(self._prints)])
        self._prints[n] = np.array(_words(value), dtype=np.uint64)
        self._keys.append(key)

    def nearest(self, *probes: int) -> int | None:
        """The key of the known print closest to any of `probes` within `max_bits`, or None."""
        n = len(self._keys)
        if not n or not probes:
            return None
        queries = np.array([_words(probe) for probe in probes], dtype=np.uint64)
        known = self._prints[:n]
        # The first half of the bits already rules out nearly every stored face (distinct
        # faces differ in about half of them), so the full distance is computed for few.
        half = _WORDS // 2
        partial = np.zeros((len(queries), n), dtype=np.int16)
        for word in range(half):
            partial += np.bitwise_count(queries[:, None, word] ^ known[None, :, word])
        candidates = np.flatnonzero(partial.min(axis=0) <= self.max_bits)
        if not candidates.size:
            return None
        rest = known[candidates, half:]
        distances = partial[:, candidates] + np.bitwise_count(
            queries[:, None, half:] ^ rest[None, :, :]
        ).sum(axis=2, dtype=np.int16)
        closest = distances.min(axis=0)
        best = int(np.argmin(closest))
        return self._keys[candidates[best]] if closest[best] <= self.max_bits else None
