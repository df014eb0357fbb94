"""Generated face crops on disk for the benchmarks (annotate.synthetic, no Django)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotate.synthetic import draw_face, face_specs  # noqa: E402


def crops_write(folder: Path, n: int, *, seed: int = 1) -> list[tuple[str, str, int, int]]:
    """(path, sha256, label, group) for n JPEG crops written under `folder` (reused if there)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in face_specs(n, seed=seed):
        path = folder / f"{seed}-{spec.index:06d}.jpg"
        if not path.exists():
            draw_face(spec, seed=seed).save(path, format="JPEG", quality=90)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out.append((str(path), digest, int(spec.gender == "female"), spec.index))
    return out
