"""The demo set-up: accounts for every role, a deterministic synthetic study, and the study of
real faces shipped with the project (FairFace sample) with its first training run."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from PIL import Image

from annotate.labels import AgeBand
from annotate.models import Face, FaceStatus, ImportBatch, KnownLabel, SourceImage, Study
from annotate.roles import Role, user_roles
from annotate.services.demo import (
    REAL_FACES_DIR,
    REAL_FACES_MISSING,
    REAL_FACES_TITLE,
    RealFacesMissing,
    demo_real_faces_load,
    demo_study_load,
    demo_training_ensure,
)
from annotate.synthetic import WEAK_SUBGROUP, draw_face, face_specs
from config.celery import BrokerUnavailable
from modeling.models import TrainingRun
from modeling.services.training import training_run_cancel
from tests.conftest import ROOT, Broker, use_broker, wait_for
from tests.factories import make_study, make_user
from tests.modeling.helpers import version_with_metrics


@pytest.mark.django_db
def test_demo_commands_create_accounts_and_study_once():
    out = io.StringIO()
    for _ in range(2):  # the second run must not duplicate anything
        call_command("demo_accounts", stdout=out)
        call_command("make_demo_data", "--faces", "60", "--seed", "3", stdout=out)
    users = get_user_model().objects.order_by("username")
    assert [u.username for u in users] == ["admin", "coder1", "coder2", "coder3", "researcher"]
    assert user_roles(users.get(username="admin")) == {Role.ADMIN}
    assert user_roles(users.get(username="coder2")) == {Role.CODER}
    assert "researcher  facet-demo" in out.getvalue()
    assert "already has its demo data" in out.getvalue()

    study = Study.objects.get(slug="demo")
    assert study.faces.count() == 60
    assert KnownLabel.objects.filter(usage=KnownLabel.Usage.TRUTH).count() == 60
    train = KnownLabel.objects.filter(usage=KnownLabel.Usage.TRAIN)
    assert train.count() == 24
    assert set(study.members.values_list("username", flat=True)) == {
        "researcher",
        "coder1",
        "coder2",
        "coder3",
    }
    coded = Face.objects.filter(study=study, coding_status=FaceStatus.OPEN)
    assert coded.count() == 36 and not coded.filter(source_image__isnull=True).exists()
    assert SourceImage.objects.filter(study=study).values("job").distinct().count() == 6
    assert SourceImage.objects.filter(study=study).values("country").distinct().count() == 4


def test_generator_is_deterministic_by_seed():
    def digest(seed):
        h = hashlib.sha256()
        for spec in face_specs(20, seed=seed):
            h.update(draw_face(spec, seed=seed).tobytes())
            h.update(repr(spec).encode())
        return h.hexdigest()

    assert digest(5) == digest(5)
    assert digest(5) != digest(6)


def test_planted_weakness_gives_weaker_cues_for_the_documented_subgroup():
    specs = list(face_specs(2000, seed=1))
    attribute, value = WEAK_SUBGROUP
    weak = [s.cue_strength for s in specs if getattr(s, attribute) == value]
    strong = [s.cue_strength for s in specs if getattr(s, attribute) != value]
    assert len(weak) > 100
    assert max(weak) < 0.25 < 0.6 < min(strong)


def test_female_hair_is_longer_than_male_hair_when_cues_are_strong():
    """The cue the model should learn is really in the pixels: dark pixels below the chin."""
    import numpy as np

    def lower_darkness(spec):
        pixels = np.asarray(draw_face(spec, seed=2).convert("L"), dtype=float)
        return float((pixels[80:110, 20:108] < 90).mean())

    specs = [s for s in face_specs(400, seed=2) if s.cue_strength > 0.8 and s.quality == "good"]
    female = np.mean([lower_darkness(s) for s in specs if s.gender == "female"])
    male = np.mean([lower_darkness(s) for s in specs if s.gender == "male"])
    assert female > male + 0.05


# --- the real faces shipped with the project ---------------------------------------------

RESIZE_SCRIPT = ROOT / "annotate" / "demo" / "resize.py"


def _shipped_rows() -> list[dict[str, str]]:
    with (REAL_FACES_DIR / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_shipped_real_faces_are_540_labeled_224px_crops_with_their_licence():
    rows = _shipped_rows()
    assert len(rows) == 540
    assert Counter(row["gender"] for row in rows) == {"female": 270, "male": 270}
    assert Counter(row["age"] for row in rows) == {band: 60 for band in AgeBand.values}
    images = sorted(path for path in REAL_FACES_DIR.rglob("*.jpg"))
    assert [path.relative_to(REAL_FACES_DIR).as_posix() for path in images] == sorted(
        row["path"] for row in rows
    )
    for path in images:
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (224, 224), "RGB")
    total = sum(path.stat().st_size for path in REAL_FACES_DIR.rglob("*") if path.is_file())
    assert total < 10 * 1024**2
    assert "CC BY 4.0" in (REAL_FACES_DIR / "LICENSE").read_text()
    readme = (REAL_FACES_DIR / "README.md").read_text()
    for attribution in ("Kärkkäinen & Joo", "WACV 2021", "CC BY 4.0", "224", "resize.py"):
        assert attribution in readme


def test_resize_script_reproduces_the_shipped_copy(fairface540, tmp_path):
    dest = tmp_path / "copy"
    done = subprocess.run(
        [sys.executable, str(RESIZE_SCRIPT), str(fairface540), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("labels.csv", "LICENSE"):
        assert (dest / name).read_bytes() == (REAL_FACES_DIR / name).read_bytes()
    for row in _shipped_rows():
        made = np.asarray(Image.open(dest / row["path"]), dtype=float)
        shipped = np.asarray(Image.open(REAL_FACES_DIR / row["path"]), dtype=float)
        # Same pixels up to the JPEG codec of the installed Pillow (byte-equal with 13.0.0).
        assert np.abs(made - shipped).mean() < 1.0, row["path"]


def test_resize_script_refuses_a_bad_source_and_writes_nothing(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "labels.csv").write_text("path,gender,race,age\nwide.jpg,female,,3-9\n")
    (source / "LICENSE").write_text("CC BY 4.0\n")
    Image.new("RGB", (300, 200)).save(source / "wide.jpg")
    dest = tmp_path / "dest"

    def resize() -> subprocess.CompletedProcess:
        command = [sys.executable, str(RESIZE_SCRIPT), str(source), str(dest)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    refused = resize()
    assert refused.returncode == 2
    assert "is 300×200; only square face crops are resized" in refused.stderr
    (source / "LICENSE").unlink()
    refused = resize()
    assert refused.returncode == 2 and "LICENSE is missing" in refused.stderr
    assert not dest.exists()


@pytest.mark.django_db
def test_real_faces_demo_imports_540_labeled_faces_and_queues_one_training_run_once(
    filesystem_broker, django_capture_on_commit_callbacks
):
    out = io.StringIO()
    call_command("demo_accounts", stdout=out)
    for _ in range(2):  # the second run must not duplicate anything
        with django_capture_on_commit_callbacks(execute=True):  # publishes the task
            call_command("demo_real_faces", stdout=out)

    study = Study.objects.get(slug="fairface")
    assert study.title == REAL_FACES_TITLE and "CC BY 4.0" in study.description
    faces = study.faces.all()
    assert faces.count() == 540
    assert not faces.exclude(
        origin=Face.Origin.IMPORTED, coding_status=FaceStatus.COMPLETE
    ).exists()
    labels = KnownLabel.objects.filter(face__study=study)
    assert labels.count() == labels.filter(usage=KnownLabel.Usage.TRAIN).count() == 540
    assert Counter(labels.values_list("gender", flat=True)) == {"female": 270, "male": 270}
    assert Counter(labels.values_list("age_band", flat=True)) == {b: 60 for b in AgeBand.values}
    assert study.imports.filter(kind=ImportBatch.Kind.FACES).count() == 1
    # Every face arrives labeled: nothing to code, so the demo coders are not members.
    assert set(study.members.values_list("username", flat=True)) == {"researcher"}

    run = TrainingRun.objects.get(study=study)
    assert run.status == "queued"
    assert (run.config["backbone"], run.config["weights"]) == ("efficientnet_lite0", "default")
    queued = list((Path(filesystem_broker.env["FACET_BROKER_DIR"]) / "queue").iterdir())
    assert len(queued) == 1 and run.task_id in queued[0].read_text()
    text = out.getvalue()
    assert "imported: 540" in text
    assert f"training run #{run.pk} (efficientnet_lite0, ImageNet weights) is queued" in text
    assert "/studies/fairface/models/" in text
    assert "540 labeled faces already imported" in text
    assert "already has a model or a training run under way" in text


@pytest.mark.django_db
def test_missing_real_faces_folder_is_reported_and_creates_nothing(tmp_path):
    with pytest.raises(RealFacesMissing) as caught:
        demo_real_faces_load(folder=tmp_path / "fairface224")
    assert str(caught.value) == REAL_FACES_MISSING.format(folder=tmp_path / "fairface224")
    assert not Study.objects.exists()


@pytest.mark.django_db
def test_demo_training_starts_again_only_without_a_model_or_a_run_under_way(filesystem_broker):
    study = make_study()
    first = demo_training_ensure(study=study)
    assert first is not None and demo_training_ensure(study=study) is None
    training_run_cancel(run=first, user=make_user(Role.ADMIN))
    second = demo_training_ensure(study=study)
    assert second is not None and second.pk != first.pk
    training_run_cancel(run=second, user=make_user(Role.ADMIN))
    version_with_metrics(study, 1, {"white": (40, 0.9)})
    assert demo_training_ensure(study=study) is None
    assert study.training_runs.count() == 2


@pytest.mark.django_db
def test_demo_training_with_the_broker_down_creates_no_run():
    study = make_study()
    with use_broker(Broker("redis://127.0.0.1:1/0", {})), pytest.raises(BrokerUnavailable):
        demo_training_ensure(study=study)
    assert not TrainingRun.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_run_queued_before_the_worker_starts_is_trained_once_it_does(
    filesystem_broker, start_worker
):
    """./facet demo queues the run, then starts the worker: the task waits in the broker
    folder and the worker picks it up when it starts."""
    study = demo_study_load(slug="early", faces=100, seed=4).study
    run = demo_training_ensure(study=study)
    queue = Path(filesystem_broker.env["FACET_BROKER_DIR"]) / "queue"
    assert [path for path in queue.iterdir() if run.task_id in path.read_text()]
    start_worker(filesystem_broker, queues="default,gpu", extra_env={"OMP_NUM_THREADS": "1"})
    run = wait_for(
        lambda: TrainingRun.objects.filter(pk=run.pk, status__in=("succeeded", "failed")).first(),
        timeout=300,
        message="the queued demo run to finish",
    )
    assert run.status == "succeeded", run.error
    assert run.version.backbone == "efficientnet_lite0"
