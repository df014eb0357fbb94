"""Backbone features cached in a BlobStore, keyed by backbone + weights + preprocessing + crop
content.

A cache entry lives in a folder named by the digest of (backbone, weights id, preprocessing),
in a file named by the crop's content hash, and starts with that key digest. So an entry from
another backbone, other weights or other preprocessing is a miss, never a silent reuse; an
entry that is truncated or carries another key is recomputed and overwritten. The store is
local disk or object storage (modeling.ml.blobs); entries are looked up a few at a time in
threads, since each lookup in object storage is a network round trip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from modeling.ml.backbones import Backbone
from modeling.ml.blobs import BlobStore
from modeling.ml.data import CropDataset, CropRead, file_read
from modeling.ml.device import amp_enabled
from modeling.ml.head import pooled

logger = logging.getLogger(__name__)
DIGEST_BYTES = 16
Progress = Callable[[float], None]
# Cache lookups in flight at once (object storage answers each in a round trip).
LOOKUP_THREADS = 8


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    computed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class FeatureCache:
    """Pooled feature vectors in `store` for one (backbone, weights, preprocessing) key."""

    def __init__(
        self,
        store: BlobStore,
        *,
        backbone: str,
        weights_id: str,
        preprocessing: str,
        dim: int,
    ) -> None:
        self.key = {
            "backbone": backbone,
            "weights": weights_id,
            "preprocessing": preprocessing,
            "dim": dim,
        }
        raw = json.dumps(self.key, sort_keys=True).encode()
        self.digest = hashlib.sha256(raw).digest()[:DIGEST_BYTES]
        self.dim = dim
        self.store = store
        self.folder = self.digest.hex()
        # The key in words beside the entries, for whoever looks into the store.
        key_name = f"{self.folder}/key.json"
        if store.read(key_name) is None:
            store.write(key_name, json.dumps(self.key, indent=1, sort_keys=True).encode())

    def name(self, content_hash: str) -> str:
        """The entry's name in the store."""
        return f"{self.folder}/{content_hash[:2]}/{content_hash}.f32"

    def get(self, content_hash: str) -> np.ndarray | None:
        """The cached vector, or None on a miss or an unusable entry (which is then removed)."""
        name = self.name(content_hash)
        raw = self.store.read(name)
        if raw is None:
            return None
        expected = DIGEST_BYTES + 4 * self.dim
        if len(raw) != expected or raw[:DIGEST_BYTES] != self.digest:
            logger.warning(
                "feature cache entry %s is corrupt or from another key; recomputing", name
            )
            self.store.delete(name)
            return None
        vector = np.frombuffer(raw, dtype=np.float32, offset=DIGEST_BYTES)
        if not np.isfinite(vector).all():
            logger.warning("feature cache entry %s holds non-finite values; recomputing", name)
            self.store.delete(name)
            return None
        return vector

    def put(self, content_hash: str, vector: np.ndarray) -> None:
        data = self.digest + np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        self.store.write(self.name(content_hash), data)


def trunk_prepare(
    trunk: torch.nn.Module, device: torch.device, *, channels_last: bool
) -> torch.nn.Module:
    trunk = trunk.to(device)
    if channels_last:
        trunk = trunk.to(memory_format=torch.channels_last)
    return trunk


def batches_forward(
    trunk: torch.nn.Module,
    loader: DataLoader[tuple[torch.Tensor, int]],
    device: torch.device,
    *,
    channels_last: bool,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield (indices, pooled features on CPU) per batch, in inference mode."""
    trunk.eval()
    with torch.inference_mode():
        for images, indices in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp_enabled(device)):
                feats = pooled(trunk, images)
            yield indices.numpy(), feats.float().cpu()


def features_extract(
    *,
    backbone: Backbone,
    keys: Sequence[str | os.PathLike[str]],
    content_hashes: Sequence[str],
    cache: FeatureCache,
    read: CropRead = file_read,
    device: torch.device,
    batch_size: int = 32,
    channels_last: bool = True,
    num_workers: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, CacheStats]:
    """Features for every crop (`keys`, read through `read`): cached ones read, the others
    computed and written back."""

    n = len(keys)
    out = np.zeros((n, backbone.features), dtype=np.float32)
    stats = CacheStats()
    missing: list[int] = []
    with ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="feature-cache") as pool:
        cached = list(pool.map(cache.get, content_hashes))
    for i, vector in enumerate(cached):
        if vector is None:
            missing.append(i)
        else:
            out[i] = vector
            stats.hits += 1
    stats.misses = len(missing)
    if progress:
        progress(stats.hits / n if n else 1.0)
    if not missing:
        return out, stats
    started = time.perf_counter()
    trunk = trunk_prepare(backbone.trunk, device, channels_last=channels_last)
    dataset = CropDataset([keys[i] for i in missing], backbone.preprocessing.transform(), read)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    done = 0
    for local, feats in batches_forward(trunk, loader, device, channels_last=channels_last):
        for j, vector in zip(local, feats.numpy(), strict=True):
            i = missing[int(j)]
            out[i] = vector
            cache.put(content_hashes[i], vector)
        done += len(local)
        if progress:
            progress((stats.hits + done) / n)
    stats.computed_s = time.perf_counter() - started
    logger.info(
        "features: %d cached, %d computed in %.1fs (%s)",
        stats.hits,
        stats.misses,
        stats.computed_s,
        backbone.name,
    )
    return out, stats
