"""Annotation data: studies, source images, faces, assignments, votes and consensus.

Invariants (enforced by annotate.assignment and database constraints):
- a face never has more than its `votes_target` live leases plus votes, never two from one coder;
- votes are never deleted: an undo sets `retracted_at`, an adjudication is its own row.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_slug
from django.db import models
from django.db.models import Exists, OuterRef, Q

from annotate.filenames import RandomName
from annotate.labels import (
    ATTRIBUTE_QUESTIONS,
    AgeBand,
    Gender,
    Glasses,
    Quality,
    Race,
    default_attributes,
)

MAX_VOTES_PER_FACE = 20
MAX_LEASE_MINUTES = 24 * 60
# Path segments under /studies/ that are pages, not studies.
RESERVED_SLUGS = frozenset({"new"})
SLUG_RESERVED = "{value!r} is reserved for a page; pick another slug."
UNKNOWN_ATTRIBUTE = "Unknown attribute {name!r}; choose from: {choices}."
REPEATED_ATTRIBUTE = "Attribute {name!r} is listed twice."
ATTRIBUTES_NOT_A_LIST = "Attributes must be a list of names."


def validate_study_slug(value: str) -> None:
    """Slugs name studies in URLs (`<slug:...>`) and commands: ASCII letters, digits, - and _
    (SlugField's own validator) and not a page's name."""
    if value.lower() in RESERVED_SLUGS:
        raise ValidationError(SLUG_RESERVED.format(value=value), code="reserved")


def validate_attributes(value: object) -> None:
    """A study asks a subset of annotate.labels.ATTRIBUTE_QUESTIONS, each at most once."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValidationError(ATTRIBUTES_NOT_A_LIST, code="invalid")
    seen: set[str] = set()
    for name in value:
        if name not in ATTRIBUTE_QUESTIONS:
            raise ValidationError(
                UNKNOWN_ATTRIBUTE.format(name=name, choices=", ".join(ATTRIBUTE_QUESTIONS)),
                code="unknown",
            )
        if name in seen:
            raise ValidationError(REPEATED_ATTRIBUTE.format(name=name), code="repeated")
        seen.add(name)


class AggregationMethod(models.TextChoices):
    MAJORITY = "majority", "Majority vote"
    DAWID_SKENE = "dawid_skene", "Dawid–Skene"


class Study(models.Model):
    slug = models.SlugField(
        unique=True,
        validators=[validate_study_slug],
        help_text="Short name used in URLs and commands: letters, digits, - and _.",
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    instructions = models.TextField(
        blank=True, help_text="Coding instructions: what coders read before their first face."
    )
    votes_per_face = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_VOTES_PER_FACE)],
        help_text="Distinct coders who label each face (K).",
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_LEASE_MINUTES)],
        help_text="How long a coder holds a face before it returns to the pool.",
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
        validators=[validate_attributes],
        help_text="Subgroup attributes coders are asked: race, age_band, glasses, quality.",
    )
    aggregation = models.CharField(
        max_length=20, choices=AggregationMethod.choices, default=AggregationMethod.MAJORITY
    )
    min_face_px = models.PositiveSmallIntegerField(
        default=24,
        validators=[MinValueValidator(1)],
        help_text="Detected faces smaller than this (shorter side, px) are skipped.",
    )
    allow_admin_votes = models.BooleanField(
        default=False,
        help_text="Count admins' votes (non-blind: admins see other votes and predictions) "
        "in the agreement statistics; they always count toward consensus.",
    )
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of the faces a coder is served that are gold faces (one in every "
        "round(1/rate), at a position that varies); 0 turns gold checks off.",
    )
    gold_min_answers = models.PositiveSmallIntegerField(
        default=10, help_text="Gold faces a coder answers before their accuracy can pause them."
    )
    gold_min_accuracy = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A coder whose accuracy on gold faces falls below this is paused.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        through="Membership",
        related_name="studies",
        help_text="Researchers and coders who may work on this study.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def slug_is_valid(self) -> bool:
        """False for a slug no URL can carry: a study saved without validation (the shell,
        an old release, the database) before slugs were checked everywhere."""
        try:
            validate_slug(self.slug)
            validate_study_slug(self.slug)
        except ValidationError:
            return False
        return True


class MemberRole(models.TextChoices):
    """A user's role in one study; the global groups (annotate.roles) only pick the home page."""

    CODER = "coder", "Coder"
    RESEARCHER = "researcher", "Researcher"


class Membership(models.Model):
    """A user's place in a study: their role there, and whether their coding is paused.

    Written only by annotate.services.team. It is the through table of `Study.members` and
    keeps the table Django created for that field before it had a model.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=12, choices=MemberRole.choices, default=MemberRole.CODER)
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while the member may not take new faces."
    )
    paused_reason = models.CharField(max_length=300, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotate_study_members"
        unique_together = [("study", "user")]
        ordering = ["study", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.study} ({self.role})"

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    """Status, claim and heartbeat of background work, written only through the life cycle in
    `annotate.services.jobs` (claim, heartbeat, sweep, cancel, finish)."""

    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    claimed_by = models.CharField(
        max_length=200,
        blank=True,
        help_text="The task copy (host:pid:nonce) holding the work; a second delivery of the "
        "message finds it taken and does nothing.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a task claimed it (more than one after lost workers)."
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the worker(s) on it; stale while running means the "
        "worker was lost. While queued: when its message was (last) sent.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


class CancellableJob(Job):
    """A job a person may stop: queued, it ends at once; running, at its holder's next heartbeat."""

    cancel_requested = models.BooleanField(default=False)

    class Meta:
        abstract = True


class ImportBatch(Job):
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
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
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


class ImportChunk(Job):
    """Files [start, stop) of a large upload: one task's work, claimed by one copy at a time.

    A task claims its chunk with a conditional update (queued, or running with a stale
    heartbeat), so a redelivered message finds it finished or running and does nothing. The
    chunk's own report (rejected and skipped files) is kept here and merged into the batch's
    when the last chunk finishes; counts of images and faces come from the rows.
    """

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="chunks")
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0, help_text="Files processed; never goes down.")
    report = models.JSONField(default=dict, blank=True)

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
    # Work-queue state. annotate.consensus writes coding_status and votes_target as votes come
    # and go (and for a researcher's decision); annotate.assignment writes slots_taken and
    # priority and reopens a face for fresh votes (face_votes_reset); annotate.services.team
    # gives back the slots of a coder whose leases it releases. Imported faces are created
    # complete (annotate.services.ingest_faces), as are the demo's.
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
        if self.box_x is None or self.box_y is None or self.box_w is None or self.box_h is None:
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
    gold = models.BooleanField(
        default=False,
        help_text="A lease on a gold face (annotate.services.gold): it holds no vote slot and "
        "its answer is a GoldAnswer, never a Vote.",
    )

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


class VoteQuerySet(models.QuerySet):
    def counted(self) -> VoteQuerySet:
        """Live votes that count toward consensus, labels and agreement: not retracted, and
        not cast by a coder a researcher excluded from the face's study (CoderExclusion)."""
        excluded = CoderExclusion.of(study_id=OuterRef("study_id"), coder_id=OuterRef("coder_id"))
        return self.filter(retracted_at__isnull=True).filter(~Exists(excluded))


class Vote(models.Model):
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="votes")
    # The face's study, copied so a coder's votes in a study are counted on an index alone:
    # joined to their faces, the count on every vote grew with the coder's votes (25 ms of
    # database time a vote at 8,000).
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+", editable=False)
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

    objects = VoteQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["face", "coder"],
                condition=Q(retracted_at__isnull=True),
                name="vote_once_per_coder",
            )
        ]
        indexes = [
            models.Index(fields=["coder", "created_at"], name="vote_coder_time"),
            # The coder's progress line on every vote (annotate.selectors.coding).
            models.Index(
                fields=["coder", "study", "created_at"],
                condition=Q(retracted_at__isnull=True),
                name="vote_coder_study_live",
            ),
        ]


class ConsensusStatus(models.TextChoices):
    AGREED = "agreed", "Majority"
    ESCALATED = "escalated", "Split: extra coder asked"
    ADJUDICATION = "adjudication", "Split: waiting for a researcher"
    ADJUDICATED = "adjudicated", "Decided by a researcher"
    NOT_FACE = "not_face", "Not a face"


class Consensus(models.Model):
    """Cache of the aggregate of a face's live votes; written only by annotate.consensus."""

    face = models.OneToOneField(Face, on_delete=models.CASCADE, primary_key=True)
    # The face's study, copied so a study's rows are read along indexes of their own: ordered
    # by time across all studies, a small study's rows sat behind a large one's (1.3 s).
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+", editable=False)
    label = models.CharField(max_length=12, choices=Gender.choices, blank=True)
    status = models.CharField(max_length=12, choices=ConsensusStatus.choices)
    counts = models.JSONField(default=dict)
    n_votes = models.PositiveSmallIntegerField(default=0)
    agreement = models.FloatField(default=0.0, help_text="Share of votes for the label.")
    attributes = models.JSONField(default=dict, help_text="Majority value of each attribute.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "consensus"
        indexes = [
            models.Index(fields=["status", "label"], name="consensus_status_label"),
            # The agreement page's latest consensus rows, and the study page's faces waiting
            # after a split (annotate.selectors.waiting), without sorting them all.
            models.Index(fields=["study", "-updated_at"], name="consensus_study_recent"),
            models.Index(
                fields=["study", "status", "updated_at", "face"], name="consensus_study_waiting"
            ),
        ]


class Adjudication(models.Model):
    """A researcher's decision on a split face; recorded beside the votes, never over them."""

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="adjudications")
    researcher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    label = models.CharField(max_length=12, choices=Gender.choices)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class GoldFace(models.Model):
    """A face whose answer is known, mixed blind into coders' streams to measure them.

    Its answers are GoldAnswer rows, never votes. The known gender can be corrected; accuracy
    is computed from the current one whenever it is read (annotate.selectors.gold).
    """

    class Source(models.TextChoices):
        KNOWN_LABEL = "known_label", "Imported label"
        ADJUDICATION = "adjudication", "Researcher's decision"

    face = models.OneToOneField(Face, on_delete=models.CASCADE, related_name="gold")
    gender = models.CharField(max_length=12, choices=Gender.choices, help_text="The answer.")
    source = models.CharField(max_length=12, choices=Source.choices)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    marked_at = models.DateTimeField(auto_now_add=True)
    corrected_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"gold face {self.face_id} ({self.gender})"


class GoldAnswer(models.Model):
    """A coder's answer on a gold face; compared with the gold answer when read, never stored
    as correct or not, so a corrected gold answer re-scores every coder at once."""

    gold = models.ForeignKey(GoldFace, on_delete=models.CASCADE, related_name="answers")
    coder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gold_answers"
    )
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="gold_answers"
    )
    gender = models.CharField(max_length=12, choices=Gender.choices)
    attributes = models.JSONField(default=dict, blank=True, help_text="The other answers given.")
    seconds_taken = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retracted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the coder undid this answer."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gold", "coder"],
                condition=Q(retracted_at__isnull=True),
                name="gold_answer_once_per_coder",
            )
        ]
        indexes = [models.Index(fields=["coder", "created_at"], name="gold_answer_coder_time")]


class CoderExclusion(models.Model):
    """A researcher's decision that a coder's votes in a study do not count toward consensus,
    labels or agreement. The votes stay; removing this row counts them again."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="coder_exclusions")
    coder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    excluded_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "coder"], name="coder_excluded_once")
        ]

    @staticmethod
    def of(
        *, study_id: int | OuterRef, coder_id: int | OuterRef
    ) -> models.QuerySet[CoderExclusion]:
        """The exclusion that keeps this coder's votes in this study from counting (ids, or
        OuterRefs): the one rule behind VoteQuerySet.counted and a new vote's `counts`."""
        return CoderExclusion.objects.filter(study_id=study_id, coder_id=coder_id)


class HealthPing(models.Model):
    """A round trip through the task queue: the web creates it, a worker stamps it."""

    created_at = models.DateTimeField(auto_now_add=True)
    received_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)


class CodebookExample(models.Model):
    """A face a researcher picked to show coders what one answer to one question looks like.

    Coders see the codebook (Study.instructions plus these examples, grouped by question and
    answer) before their first face and on demand; written only by annotate.services.codebook.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="codebook_examples")
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="codebook_examples")
    question = models.CharField(max_length=20, help_text="The question's key, e.g. gender.")
    answer = models.CharField(max_length=20, help_text="The answer this face illustrates.")
    note = models.CharField(
        max_length=300, blank=True, help_text="Why this face shows that answer, for coders."
    )
    order = models.PositiveIntegerField(default=0, help_text="Position within its answer.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "face", "question"], name="codebook_face_once_per_question"
            )
        ]
        indexes = [models.Index(fields=["study", "order"], name="codebook_study_order")]
        ordering = ["study", "order", "pk"]

    def __str__(self) -> str:
        return f"{self.study} codebook: face {self.face_id} {self.question}={self.answer}"


class Invitation(models.Model):
    """A link that lets people join a study in a role; written only by
    annotate.services.invitations.

    Only a SHA-256 of the token is stored: the link is shown once, when it is made. `uses`
    only ever grows, by a conditional update that keeps it at most `max_uses`.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=12, choices=MemberRole.choices, default=MemberRole.CODER)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(default=1, help_text="People who may join with it.")
    uses = models.PositiveIntegerField(default=0, help_text="People who joined with it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(uses__lte=models.F("max_uses")), name="invitation_uses_le_max"
            )
        ]

    def __str__(self) -> str:
        return f"invitation #{self.pk} to {self.study} ({self.role})"


class CrowdLink(models.Model):
    """An external-worker link for a crowd platform; written only by annotate.services.crowd.

    The platform puts its participant id into the URL parameter `param_name`; each id becomes
    a coder of this study only (CrowdWorker), who codes up to `faces_per_worker` faces and is
    then shown `completion_code`.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="crowd_links")
    token_hash = models.CharField(max_length=64, unique=True)
    faces_per_worker = models.PositiveIntegerField(default=20)
    completion_code = models.CharField(
        max_length=64, help_text="Shown to a worker who coded all their faces."
    )
    param_name = models.CharField(
        max_length=40,
        default="PROLIFIC_PID",
        help_text="The URL parameter that carries the platform's participant id.",
    )
    is_open = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"crowd link #{self.pk} of {self.study}"


class CrowdWorker(models.Model):
    """The passwordless coder account a crowd participant id maps to, in one study."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="crowd_workers")
    link = models.ForeignKey(CrowdLink, on_delete=models.CASCADE, related_name="workers")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_worker"
    )
    participant_id = models.CharField(max_length=64)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "joined_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "participant_id"], name="crowd_worker_once_per_study"
            )
        ]

    def __str__(self) -> str:
        return f"crowd worker {self.participant_id} in {self.study}"


class StudySummary(models.Model):
    """Figures of a study's researcher pages (overview counts, agreement), computed from the
    rows and stored with the time they were read; written only by annotate.services.summaries,
    refreshed by its task when older than FACET_SUMMARY_MAX_AGE_S."""

    class Kind(models.TextChoices):
        OVERVIEW = "overview", "Study overview"
        AGREEMENT = "agreement", "Agreement"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="summaries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    question = models.CharField(max_length=20, blank=True, help_text="Agreement: the question.")
    batch = models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="summaries",
        help_text="Agreement limited to the faces of one import batch.",
    )
    figures = models.JSONField(default=dict)
    computed_at = models.DateTimeField(help_text="When the rows the figures come from were read.")
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a refresh was last asked of a worker."
    )

    class Meta:
        verbose_name_plural = "study summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "kind", "question", "batch"],
                name="study_summary_once",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} summary of {self.study}"
