"""Prediction benchmark: the streaming pipeline against the bare torchvision forward pass.

Prints ONE JSON line: images_per_s, baseline_images_per_s, ratio, peak_rss_mb.
- images_per_s: Facet's batch prediction (modeling.ml.predict) over `--faces` crop files:
  read, decode, preprocess, trunk + head, probabilities out; one batch in memory at a time.
- baseline_images_per_s: the bare torchvision model's forward pass (same backbone,
  channels_last, inference mode, same batch size) on tensors preloaded in memory, measured in
  this run on the same number of images (a pool of at most 256 preloaded, cycled).
  Both are the best of `--repeat` passes, because the machine is shared.
- ratio: images_per_s / baseline_images_per_s (goal ≥ 0.9).
- peak_rss_mb: the process's peak resident memory after the streaming run, before the
  baseline preloads anything (goal ≤ 2 GB for 50,000 faces: `--faces 50000`).

With `--workers N` (N ≥ 2) it also runs Facet's chunked batch prediction end to end on the
real stack (a fresh PostgreSQL database, Redis as broker, `celery worker` processes on the gpu
queue, each with `--worker-threads` torch threads) over the same `--faces` crops, first with
one worker, then with N, and adds:
- one_worker_images_per_s, workers_images_per_s: faces over the time from creating the run to
  its end (planning, chunk messages, checkpoint loads, predictions written), same run size;
- speedup: workers_images_per_s / one_worker_images_per_s.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _stack  # noqa: E402
import torch  # noqa: E402
from _crops import crops_write  # noqa: E402

from modeling.ml.backbones import backbone_build, backbone_spec  # noqa: E402
from modeling.ml.checkpoint import checkpoint_build, checkpoint_save  # noqa: E402
from modeling.ml.device import device_choose  # noqa: E402
from modeling.ml.head import Head  # noqa: E402
from modeling.ml.predict import classifier_load, probabilities_iter  # noqa: E402

BASELINE_POOL = 256


def checkpoint_make(path: Path, backbone_name: str, image_size: int | None) -> None:
    backbone = backbone_build(name=backbone_name, weights="none", seed=0, image_size=image_size)
    head = Head(backbone.features)
    checkpoint_save(
        checkpoint_build(
            backbone=backbone,
            trunk=backbone.trunk,
            head=head,
            config={"hidden": 512},
            classes=["male", "female"],
            threshold=0.5,
            metrics={},
        ),
        path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many passes.")
    parser.add_argument(
        "--workers", type=int, default=1, help="≥ 2: also measure chunked prediction on workers"
    )
    parser.add_argument("--worker-threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--chunk", type=int, default=16, help="FACET_PREDICT_CHUNK for workers")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FACET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    _stack.database_arguments(parser, "predict")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = device_choose()
    with tempfile.TemporaryDirectory(prefix="facet-bench-predict-") as tmp:
        run(args, device, args.workdir or Path(tmp))


def run(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    crops = crops_write(work / "crops", args.faces)
    paths = [c[0] for c in crops]
    model_path = work / "model.pt"
    # Built in a child process, so this process's peak memory is prediction's alone.
    child = multiprocessing.get_context("spawn").Process(
        target=checkpoint_make, args=(model_path, args.backbone, args.image_size)
    )
    child.start()
    child.join()
    classifier = classifier_load(model_path, device=device)

    def streaming_pass() -> tuple[int, float]:
        started = time.perf_counter()
        seen = 0
        for indices, _ in probabilities_iter(
            classifier, paths, batch_size=args.batch_size, num_workers=args.num_workers
        ):
            seen += len(indices)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return seen, time.perf_counter() - started

    # Warm-up outside the timing (allocator, kernels).
    for _ in probabilities_iter(classifier, paths[: args.batch_size], batch_size=args.batch_size):
        pass
    seen, streaming_s = streaming_pass()
    # Peak memory of streaming prediction, before the baseline preloads its tensors.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    spec = backbone_spec(args.backbone)
    model = spec.builder(weights=None).to(device).eval().to(memory_format=torch.channels_last)
    transform = checkpoint_preprocessing(model_path).transform()
    from modeling.ml.data import crop_open

    pool = torch.stack([transform(crop_open(p)) for p in paths[:BASELINE_POOL]])
    pool = pool.to(device).contiguous(memory_format=torch.channels_last)
    amp = device.type == "cuda"

    def baseline_pass() -> tuple[int, float]:
        with torch.inference_mode():
            started = time.perf_counter()
            done = 0
            while done < seen:
                take = min(args.batch_size, seen - done)
                start = done % len(pool)
                batch = pool[start : start + take]
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    model(batch)
                done += len(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return done, time.perf_counter() - started

    with torch.inference_mode():
        model(pool[: args.batch_size])
    done, baseline_s = baseline_pass()
    # The machine is shared: alternate the two and keep each one's best pass.
    for _ in range(args.repeat - 1):
        baseline_s = min(baseline_s, baseline_pass()[1])
        streaming_s = min(streaming_s, streaming_pass()[1])
    images_per_s = seen / streaming_s
    baseline = done / baseline_s
    result = {
        "images_per_s": round(images_per_s, 1),
        "baseline_images_per_s": round(baseline, 1),
        "ratio": round(images_per_s / baseline, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    if args.workers >= 2:
        result |= workers_speedup(args, work=work, crops=crops, model_path=model_path)
    print(json.dumps(result))


def workers_speedup(args: argparse.Namespace, *, work: Path, crops: list, model_path: Path):
    """Chunked prediction of the same run on one worker, then on `args.workers`."""
    import redis

    redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).flushdb()
    name = _stack.database_name(args, "predict")
    # The crops and the checkpoint are already under `work`: media and artifact root.
    shared = {
        "CELERY_BROKER_URL": args.redis_url,
        "FACET_MEDIA_ROOT": str(work),
        "FACET_ARTIFACT_ROOT": str(work),
        "FACET_PREDICT_CHUNK": str(args.chunk),
    }
    os.environ.update(shared)
    url = _stack.database_recreate(base_url=args.base_url, name=name)
    workers = []
    try:
        var_dir = work / "var"
        var_dir.mkdir(exist_ok=True)
        _stack.django_setup(url, var_dir)
        version = version_create(crops, model_path=model_path, work=work)
        threads = str(args.worker_threads)
        env = _stack.service_env(
            url, var_dir, {**shared, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        )
        seconds = {}
        for n in (1, args.workers):
            while len(workers) < n:
                hostname = f"bench-predict{len(workers)}@%h"
                workers.append(
                    _stack.worker_start(env=env, var_dir=var_dir, hostname=hostname, queues="gpu")
                )
            seconds[n] = run_timed(version)
    finally:
        for process in workers:
            _stack.process_stop(process)
        if not args.keep:
            _stack.database_drop(base_url=args.base_url, name=name)
    faces = len(crops)
    one, many = faces / seconds[1], faces / seconds[args.workers]
    return {
        "workers": args.workers,
        "one_worker_images_per_s": round(one, 1),
        "workers_images_per_s": round(many, 1),
        "speedup": round(many / one, 2),
    }


def version_create(crops: list, *, model_path: Path, work: Path):
    """A study whose faces are the benchmark's crops and a version whose artifact is the
    benchmark's checkpoint."""
    from annotate.models import Face, Study
    from modeling.ml.checkpoint import file_sha256
    from modeling.models import ModelVersion

    study = Study.objects.create(slug="bench-predict", title="Bench predict")
    Face.objects.bulk_create(
        Face(study=study, crop=str(Path(path).relative_to(work)), crop_sha256=sha)
        for path, sha, _, _ in crops
    )
    return ModelVersion.objects.create(
        study=study,
        number=1,
        backbone="bench",
        weights="none",
        artifact=model_path.name,
        artifact_sha256=file_sha256(model_path),
    )


def run_timed(version) -> float:
    """Seconds from creating a prediction run of every face to its end (predictions of an
    earlier run deleted first, so each run predicts the same faces)."""
    from annotate.models import JobStatus
    from modeling.models import Prediction
    from modeling.services.prediction import predictions_run_create

    Prediction.objects.filter(version=version).delete()
    started = time.perf_counter()
    run = predictions_run_create(version=version)
    while run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        time.sleep(0.05)
        run.refresh_from_db()
    elapsed = time.perf_counter() - started
    if run.status != JobStatus.SUCCEEDED or run.done != run.total:
        raise SystemExit(f"prediction run {run.pk} {run.status}: {run.error}")
    return elapsed


def checkpoint_preprocessing(path: Path):
    from modeling.ml.checkpoint import checkpoint_load
    from modeling.ml.transforms import Preprocessing

    return Preprocessing.from_dict(checkpoint_load(path)["preprocessing"])


if __name__ == "__main__":
    main()
