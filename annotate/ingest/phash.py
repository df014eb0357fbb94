"""64-bit perceptual hashes (dHash) and near-duplicate flagging by Hamming distance.

dHash: shrink to 9×8 grey, and set one bit per pixel whose right neighbour is brighter. Two
crops of the same face (a re-posted photo, a re-encoded copy) land within a few bits of each
other; different faces are typically 20+ bits apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

NEAR_DUPLICATE_BITS = 6


def dhash(image: Image.Image) -> int:
    grey = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hash_hex(value: int) -> str:
    return f"{value:016x}"


def hash_int(text: str) -> int | None:
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HashIndex:
    """Known (key, hash) pairs, searched for the nearest hash within a Hamming distance.

    Vectorised (xor + popcount over a uint64 array), so a query of 10,000 faces stays fast.
    """

    def __init__(
        self, pairs: Iterable[tuple[int, int]] = (), *, max_bits: int = NEAR_DUPLICATE_BITS
    ):
        self.max_bits = max_bits
        self._keys: list[int] = []
        self._hashes = np.zeros(64, dtype=np.uint64)
        for key, value in pairs:
            self.add(key, value)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: int, value: int) -> None:
        n = len(self._keys)
        if n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros(n, dtype=np.uint64)])
        self._hashes[n] = np.uint64(value)
        self._keys.append(key)

    def nearest(self, value: int) -> int | None:
        """The key of the closest known hash within `max_bits`, or None."""
        n = len(self._keys)
        if not n:
            return None
        distances = np.bitwise_count(self._hashes[:n] ^ np.uint64(value))
        best = int(np.argmin(distances))
        return self._keys[best] if distances[best] <= self.max_bits else None
