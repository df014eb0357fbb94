"""Modeling data: training runs, model versions, predictions, validation rounds, triage."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotate.models import CancellableJob, Face, Job, Study


class TrainingRun(CancellableJob):
    class Stage(models.TextChoices):
        WAITING = "waiting", "Waiting for a worker"
        SNAPSHOT = "snapshot", "Taking the dataset snapshot"
        FEATURES = "features", "Computing backbone features"
        CROSS_VALIDATION = "cv", "Cross-validation"
        FINAL_FIT = "fit", "Final fit"
        FINE_TUNE = "fine_tune", "Fine-tuning"
        SAVING = "saving", "Saving the model"
        DONE = "done", "Done"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="training_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    config = models.JSONField(default=dict, help_text="The frozen training configuration.")
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.WAITING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, 0–100.")
    device = models.CharField(max_length=50, blank=True)
    dataset = models.JSONField(
        default=dict,
        blank=True,
        help_text="Snapshot: face ids, labels hash, class/subgroup counts.",
    )
    labels_hash = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.study} run #{self.pk} ({self.status})"


class ModelVersion(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="1, 2, … within the study.")
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="version"
    )
    backbone = models.CharField(max_length=50)
    weights = models.CharField(max_length=100, help_text="Weights identifier, or 'none'.")
    artifact = models.FileField(upload_to="models/", max_length=500)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    threshold = models.FloatField(default=0.5)
    metrics = models.JSONField(default=dict, blank=True, help_text="CV overall and by subgroup.")
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    gate_override_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="version_number_per_study"),
            models.UniqueConstraint(
                fields=["study"], condition=Q(is_active=True), name="one_active_version_per_study"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study} v{self.number}"


class PredictionRun(CancellableJob):
    """Batch prediction of a version: planned by one task into PredictionChunk rows that any
    number of workers share (modeling.services.prediction)."""

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="prediction_runs"
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Faces predicted; never goes down.")
    task_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="prediction_run_heartbeat")]


class PredictionChunk(Job):
    """The faces of a run with ids in [first_face_id, last_face_id]: one task's work, claimed
    by one copy at a time. Only faces the version has not predicted are predicted, so a chunk
    run twice predicts nothing twice."""

    run = models.ForeignKey(PredictionRun, on_delete=models.CASCADE, related_name="chunks")
    first_face_id = models.PositiveBigIntegerField()
    last_face_id = models.PositiveBigIntegerField()
    total = models.PositiveIntegerField(help_text="Faces it had to predict when planned.")
    done = models.PositiveIntegerField(default=0, help_text="Faces predicted; never goes down.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "first_face_id"], name="prediction_chunk_unique_start"
            )
        ]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="prediction_chunk_heartbeat")
        ]
        ordering = ["run", "first_face_id"]

    def __str__(self) -> str:
        return f"prediction run #{self.run_id} faces {self.first_face_id}-{self.last_face_id}"


class Prediction(models.Model):
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="predictions")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    probability = models.FloatField(help_text="P(female).")
    label = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "face"], name="prediction_once_per_version")
        ]
        indexes = [
            models.Index(fields=["version", "label", "probability"], name="prediction_gallery")
        ]


class CrossValidationPrediction(models.Model):
    """A training face's out-of-fold prediction: made by the fold's head that never saw it."""

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="cv_predictions"
    )
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="cv_predictions")
    fold = models.PositiveSmallIntegerField(help_text="0-based cross-validation fold.")
    label = models.CharField(max_length=12, help_text="The training label the fold was scored on.")
    label_source = models.CharField(
        max_length=20,
        help_text="Where the label came from: consensus, dawid_skene, adjudication, imported.",
    )
    probability = models.FloatField(help_text="Out-of-fold P(female).")
    predicted = models.CharField(max_length=12, help_text="The label at the version's threshold.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "face"], name="cv_prediction_once")
        ]


class ValidationRound(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Being coded"
        COMPUTING = "computing", "Computing results"
        COMPLETE = "complete", "Results ready"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="validation_rounds")
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="validation_rounds"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    size = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    stratification = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"validation round #{self.pk} of {self.version}"


class ValidationItem(models.Model):
    round = models.ForeignKey(ValidationRound, on_delete=models.CASCADE, related_name="items")
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="validation_items")
    stratum = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "face"], name="validation_face_once")
        ]
        indexes = [models.Index(fields=["face"], name="validation_item_face")]


class Triage(models.Model):
    """The verdict in effect on a misclassified face; feeds the next training run.

    One per face, and so per study and face: a verdict made from any version's gallery holds
    for every version. A cache of the face's TriageEvent history (the latest decision not
    undone), written only by modeling.services.triage; read through modeling.selectors.triage.
    """

    class Decision(models.TextChoices):
        MODEL_ERROR = "model_error", "Model error"
        LABEL_ERROR = "label_error", "Label error (send back for fresh votes)"
        NOT_FACE = "not_face", "Not a face / detector error"

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="triages")
    version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # the verdict outlives the version it was seen on
        related_name="triages",
        help_text="The version whose gallery the decision was made from.",
    )
    decision = models.CharField(max_length=12, choices=Decision.choices)
    tags = models.JSONField(default=list, blank=True, help_text="e.g. blurry, occluded, child.")
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["face"], name="triage_once_per_face")]


class TriageEvent(models.Model):
    """One change to a face's triage, append-only: a decision, or the undo of one."""

    class Action(models.TextChoices):
        DECIDED = "decided", "Decided"
        UNDONE = "undone", "Undone"

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="triage_events")
    version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="triage_events",
        help_text="The version whose gallery the change was made from.",
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    decision = models.CharField(
        max_length=12,
        choices=Triage.Decision.choices,
        help_text="The verdict decided, or for an undo the verdict withdrawn.",
    )
    tags = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    undoes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="undone_by",
        help_text="The decision this undo withdrew; a decision is undone at most once.",
    )
    votes_reset = models.BooleanField(
        default=False, help_text="This decision sent the face back to the coders for fresh votes."
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["face", "created_at"], name="triage_event_face_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(action="decided", undoes__isnull=True)
                | Q(action="undone", undoes__isnull=False),
                name="triage_event_undo_names_its_decision",
            )
        ]
