"""Annotation data: studies, source images, faces, assignments, votes and consensus.

Invariants (enforced by annotate.assignment and database constraints):
- a face never has more than its `votes_target` live leases plus votes, never two from one coder;
- votes are never deleted: an undo sets `retracted_at`, an adjudication is its own row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.filenames import RandomName
from annotate.labels import AgeBand, Gender, Glasses, Quality, Race, default_attributes


class AggregationMethod(models.TextChoices):
    MAJORITY = "majority", "Majority vote"
    DAWID_SKENE = "dawid_skene", "Dawid–Skene"


class Study(models.Model):
    slug = models.SlugField(unique=True, help_text="Short name used in URLs and commands.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    votes_per_face = models.PositiveSmallIntegerField(
        default=3, help_text="Distinct coders who label each face (K)."
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=10, help_text="How long a coder holds a face before it returns to the pool."
    )
    escalation_wait_minutes = models.PositiveSmallIntegerField(
        default=60,
        help_text=(
            "How long a split face waits for an extra coder before it goes to a researcher "
            "(adjudication); 0 sends splits straight to a researcher."
        ),
    )
    attributes_asked = models.JSONField(
        default=default_attributes,
        blank=True,
        help_text="Subgroup attributes coders are asked: race, age_band, glasses, quality.",
    )
    aggregation = models.CharField(
        max_length=20, choices=AggregationMethod.choices, default=AggregationMethod.MAJORITY
    )
    min_face_px = models.PositiveSmallIntegerField(
        default=24, help_text="Detected faces smaller than this (shorter side, px) are skipped."
    )
    allow_admin_votes = models.BooleanField(
        default=False,
        help_text="Count admins' votes (non-blind: admins see other votes and predictions) "
        "in the agreement statistics; they always count toward consensus.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="studies",
        help_text="Researchers and coders who may work on this study.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ImportBatch(models.Model):
    """One import of images (folder, zip upload) or labeled faces, with its report."""

    class Kind(models.TextChoices):
        IMAGES = "images", "Search-result images"
        FACES = "faces", "Labeled face crops"
        DEMO = "demo", "Demo generator"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="imports")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.IMAGES)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source_name = models.CharField(max_length=500, blank=True)
    upload = models.FileField(upload_to="uploads/%Y/%m/", blank=True)
    manifest = models.FileField(upload_to="uploads/%Y/%m/", blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the worker(s) importing it; older than "
        "FACET_IMPORT_STALE_SECONDS while running means the worker was lost.",
    )
    claimed_by = models.CharField(
        max_length=200,
        blank=True,
        help_text="The task copy (host:pid:nonce) running an upload imported in one task; a "
        "second delivery of the message finds it taken and does nothing.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a task claimed this upload (one task: more after lost workers)."
    )
    upload_deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the uploaded zip and manifest were deleted (FACET_UPLOAD_RETENTION_HOURS "
        "after the import finished); the report is kept.",
    )

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="import_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.study} import #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class ImportChunk(models.Model):
    """Files [start, stop) of a large upload: one task's work, claimed by one copy at a time.

    A task claims its chunk with a conditional update (queued, or running with a stale
    heartbeat), so a redelivered message finds it finished or running and does nothing. The
    chunk's own report (rejected and skipped files) is kept here and merged into the batch's
    when the last chunk finishes; counts of images and faces come from the rows.
    """

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="chunks")
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0, help_text="Files processed; never goes down.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a task claimed it.")
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "start"], name="import_chunk_unique_start")
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="import_chunk_heartbeat")]
        ordering = ["batch", "start"]

    def __str__(self) -> str:
        return f"import #{self.batch_id} files {self.start + 1}-{self.stop} ({self.status})"


class SourceImage(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="images")
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    file = models.ImageField(upload_to=RandomName("images"), help_text="The file as imported.")
    display = models.FileField(
        upload_to=RandomName("display"),
        blank=True,
        help_text="What browsers are shown: a JPEG of the image, orientation applied, no "
        "metadata (EXIF, XMP, comments); made on first view by annotate.services.media.",
    )
    original_name = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    query = models.CharField(max_length=300, blank=True)
    job = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=50, blank=True)
    language = models.CharField(max_length=20, blank=True)
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="Position in the results.")
    source_url = models.URLField(max_length=2000, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Other manifest columns.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "sha256"], name="image_unique_content_per_study"
            )
        ]
        indexes = [models.Index(fields=["study", "job", "country"], name="image_job_country")]

    def __str__(self) -> str:
        return self.original_name or f"image {self.pk}"


class FaceStatus(models.TextChoices):
    OPEN = "open", "Needs votes"
    COMPLETE = "complete", "Consensus reached"
    ADJUDICATION = "adjudication", "Waiting for a researcher"
    EXCLUDED = "excluded", "Not a face"


class Face(models.Model):
    """A face crop: detected in a source image, or imported pre-cropped."""

    class Origin(models.TextChoices):
        DETECTED = "detected", "Detected"
        IMPORTED = "imported", "Imported crop"
        DEMO = "demo", "Demo generator"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="faces")
    source_image = models.ForeignKey(
        SourceImage, null=True, blank=True, on_delete=models.CASCADE, related_name="faces"
    )
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.DETECTED)
    crop = models.ImageField(upload_to=RandomName("faces"))
    crop_sha256 = models.CharField(max_length=64, help_text="Content hash of the crop file.")
    original_name = models.CharField(max_length=500, blank=True)
    box_x = models.IntegerField(null=True, blank=True)
    box_y = models.IntegerField(null=True, blank=True)
    box_w = models.IntegerField(null=True, blank=True)
    box_h = models.IntegerField(null=True, blank=True)
    detector = models.CharField(max_length=50, blank=True)
    detector_score = models.FloatField(null=True, blank=True)
    phash = models.CharField(max_length=16, blank=True, help_text="64-bit perceptual hash, hex.")
    crop_print = models.CharField(
        max_length=64,
        blank=True,
        help_text="256-bit dHash of the crop's central window, hex: what the near-duplicate "
        "rule compares (annotate.ingest.phash).",
    )
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    # Work-queue state, written only by annotate.assignment (the one place that hands out work).
    coding_status = models.CharField(
        max_length=12, choices=FaceStatus.choices, default=FaceStatus.OPEN
    )
    votes_target = models.PositiveSmallIntegerField(
        default=3, help_text="Votes wanted: the study's K, plus one after a split vote."
    )
    slots_taken = models.PositiveSmallIntegerField(
        default=0, help_text="Live leases plus votes; never above votes_target."
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher is handed out first.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["study", "coding_status", "-priority", "-slots_taken", "id"],
                name="face_work_queue",
            ),
            models.Index(fields=["study", "phash"], name="face_phash"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(slots_taken__lte=models.F("votes_target")), name="face_slots_le_target"
            )
        ]

    def __str__(self) -> str:
        return f"face {self.pk}"

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        if self.box_x is None:
            return None
        return (self.box_x, self.box_y, self.box_w, self.box_h)


class KnownLabel(models.Model):
    """A label that did not come from Facet's coders: an imported labeled set, or demo truth.

    `usage=train` labels are training data (kept apart from votes); `usage=truth` labels are
    hidden ground truth for simulations and demo checks and are never used for training.
    """

    class Usage(models.TextChoices):
        TRAIN = "train", "Training label"
        TRUTH = "truth", "Hidden ground truth"

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="known_labels")
    source = models.CharField(max_length=200, help_text="Where the label came from.")
    usage = models.CharField(max_length=5, choices=Usage.choices, default=Usage.TRAIN)
    gender = models.CharField(max_length=12, choices=Gender.choices)
    race = models.CharField(max_length=20, choices=Race.choices, blank=True)
    age_band = models.CharField(max_length=8, choices=AgeBand.choices, blank=True)
    glasses = models.CharField(max_length=12, choices=Glasses.choices, blank=True)
    quality = models.CharField(max_length=16, choices=Quality.choices, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["face", "source"], name="known_label_once_per_source")
        ]
        indexes = [models.Index(fields=["usage", "face"], name="known_label_usage")]


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released"


class Assignment(models.Model):
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="assignments")
    coder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A reset face ("label error" triage) releases its assignments; the same coders
            # may then lease it afresh, so only unreleased rows are unique per coder.
            models.UniqueConstraint(
                fields=["face", "coder"],
                condition=~Q(status="released"),
                name="assignment_once_per_coder",
            )
        ]
        indexes = [
            models.Index(fields=["coder", "status"], name="assignment_coder_status"),
            models.Index(fields=["face", "status"], name="assignment_face_status"),
            models.Index(fields=["status", "expires_at"], name="assignment_expiry"),
        ]


class Vote(models.Model):
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="votes")
    coder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="votes"
    )
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="votes"
    )
    gender = models.CharField(max_length=12, choices=Gender.choices)
    race = models.CharField(max_length=20, choices=Race.choices, blank=True)
    age_band = models.CharField(max_length=8, choices=AgeBand.choices, blank=True)
    glasses = models.CharField(max_length=12, choices=Glasses.choices, blank=True)
    quality = models.CharField(max_length=16, choices=Quality.choices, blank=True)
    seconds_taken = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retracted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the coder undid this vote; never deleted."
    )
    non_blind = models.BooleanField(
        default=False,
        help_text="Cast by a user who could see other votes or predictions (an admin); left "
        "out of agreement statistics unless the study allows admin votes.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["face", "coder"],
                condition=Q(retracted_at__isnull=True),
                name="vote_once_per_coder",
            )
        ]
        indexes = [models.Index(fields=["coder", "created_at"], name="vote_coder_time")]


class ConsensusStatus(models.TextChoices):
    AGREED = "agreed", "Majority"
    ESCALATED = "escalated", "Split: extra coder asked"
    ADJUDICATION = "adjudication", "Split: waiting for a researcher"
    ADJUDICATED = "adjudicated", "Decided by a researcher"
    NOT_FACE = "not_face", "Not a face"


class Consensus(models.Model):
    """Cache of the aggregate of a face's live votes; written only by annotate.consensus."""

    face = models.OneToOneField(Face, on_delete=models.CASCADE, primary_key=True)
    label = models.CharField(max_length=12, choices=Gender.choices, blank=True)
    status = models.CharField(max_length=12, choices=ConsensusStatus.choices)
    counts = models.JSONField(default=dict)
    n_votes = models.PositiveSmallIntegerField(default=0)
    agreement = models.FloatField(default=0.0, help_text="Share of votes for the label.")
    attributes = models.JSONField(default=dict, help_text="Majority value of each attribute.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "consensus"
        indexes = [models.Index(fields=["status", "label"], name="consensus_status_label")]


class Adjudication(models.Model):
    """A researcher's decision on a split face; recorded beside the votes, never over them."""

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="adjudications")
    researcher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    label = models.CharField(max_length=12, choices=Gender.choices)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class HealthPing(models.Model):
    """A round trip through the task queue: the web creates it, a worker stamps it."""

    created_at = models.DateTimeField(auto_now_add=True)
    received_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
