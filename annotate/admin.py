"""The Django admin: a back office for admins. Studies, teams, codebooks and imports are run
from the app's own pages; here rows can be looked at and, where it is safe, corrected.

Secrets and files stay out of the forms: invitation and crowd-link tokens are stored only as
hashes and never shown; images are not offered as raw file fields (MEDIA_URL serves nothing),
but as links to the app's media views, which check access on every request.
"""

from django.contrib import admin
from django.db import models as db_models
from django.urls import reverse
from django.utils.html import format_html

from annotate import models


def _media_link(url_name: str, pk: int, label: str) -> str:
    url = reverse(url_name, args=[pk])
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, label)


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["added_at"]


@admin.register(models.Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "votes_per_face", "lease_minutes", "aggregation", "created_at"]
    inlines = [MembershipInline]
    search_fields = ["slug", "title"]


class ImportChunkInline(admin.TabularInline):
    """A large upload's chunks, as the workers left them: for looking, never for editing."""

    model = models.ImportChunk
    extra = 0
    can_delete = False
    fields = ("start", "stop", "status", "done", "attempts", "claimed_by", "heartbeat_at", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "status", "done", "total", "created_at"]
    list_filter = ["status", "kind", "study"]
    exclude = ["upload", "manifest"]
    readonly_fields = ["upload_name", "manifest_name", "report", "error"]
    inlines = [ImportChunkInline]

    # The uploaded files are working files of the import, served by no view: named, not linked.
    @admin.display(description="Upload")
    def upload_name(self, obj: models.ImportBatch) -> str:
        return obj.upload.name or "-"

    @admin.display(description="Manifest")
    def manifest_name(self, obj: models.ImportBatch) -> str:
        return obj.manifest.name or "-"


@admin.register(models.SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "original_name", "job", "country", "language", "rank"]
    list_filter = ["study", "job", "country"]
    search_fields = ["original_name", "query", "sha256"]
    exclude = ["file", "display"]
    # Source URLs come from manifests; a bare host typed here is taken as https.
    formfield_overrides = {db_models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ["original_link", "display_link"]
    raw_id_fields = ["batch"]

    @admin.display(description="Original file")
    def original_link(self, obj: models.SourceImage) -> str:
        if obj.pk is None or not obj.file:
            return "-"
        return _media_link("annotate:image_original", obj.pk, obj.original_name or "download")

    @admin.display(description="Display copy")
    def display_link(self, obj: models.SourceImage) -> str:
        if obj.pk is None or not obj.file:
            return "-"
        return _media_link("annotate:image_display", obj.pk, "view")


@admin.register(models.Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "study",
        "origin",
        "coding_status",
        "slots_taken",
        "votes_target",
        "priority",
    ]
    list_filter = ["study", "origin", "coding_status"]
    raw_id_fields = ["source_image", "near_duplicate_of"]
    exclude = ["crop"]
    readonly_fields = ["crop_link", "source_link"]

    @admin.display(description="Crop")
    def crop_link(self, obj: models.Face) -> str:
        if obj.pk is None or not obj.crop:
            return "-"
        return _media_link("annotate:face_crop", obj.pk, "view crop")

    @admin.display(description="Source with box")
    def source_link(self, obj: models.Face) -> str:
        if obj.pk is None or obj.source_image_id is None:
            return "-"
        return _media_link("annotate:face_source", obj.pk, "view source")


@admin.register(models.KnownLabel)
class KnownLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "face", "source", "usage", "gender", "race", "age_band"]
    list_filter = ["usage", "source"]
    raw_id_fields = ["face"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "face", "coder", "status", "leased_at", "expires_at"]
    list_filter = ["status"]
    raw_id_fields = ["face"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Votes and adjudications are records: the admin shows them and never edits them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ["id", "face", "coder", "gender", "created_at", "retracted_at"]
    list_filter = ["gender"]


@admin.register(models.Consensus)
class ConsensusAdmin(ReadOnlyAdmin):
    list_display = ["face", "label", "status", "n_votes", "agreement"]
    list_filter = ["status", "label"]


@admin.register(models.Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "face", "researcher", "label", "created_at"]


@admin.register(models.HealthPing)
class HealthPingAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "received_at", "worker"]


@admin.register(models.Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are made on the study's invitations page, which shows the link once; the
    admin can shorten, limit or revoke one, never read or set its token."""

    list_display = ["id", "study", "role", "expires_at", "uses_of_max", "revoked_at", "created_by"]
    list_filter = ["role", "study"]
    fields = ["study", "role", "expires_at", "max_uses", "uses", "revoked_at", "created_by"]
    readonly_fields = ["study", "role", "uses", "created_by"]

    @admin.display(description="Uses")
    def uses_of_max(self, obj: models.Invitation) -> str:
        return f"{obj.uses}/{obj.max_uses}"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(models.CrowdLink)
class CrowdLinkAdmin(admin.ModelAdmin):
    """Opened on the study's crowd page (the token is shown there once); here it can be
    closed or its quota changed."""

    list_display = ["id", "study", "faces_per_worker", "param_name", "is_open", "created_at"]
    list_filter = ["is_open", "study"]
    fields = [
        "study",
        "faces_per_worker",
        "completion_code",
        "param_name",
        "is_open",
        "created_by",
        "created_at",
    ]
    readonly_fields = ["study", "param_name", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(models.CrowdWorker)
class CrowdWorkerAdmin(ReadOnlyAdmin):
    list_display = ["participant_id", "study", "link", "user", "joined_at"]
    list_filter = ["study"]
    search_fields = ["participant_id", "user__username"]


@admin.register(models.CodebookExample)
class CodebookExampleAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "question", "answer", "face", "order", "created_at"]
    list_filter = ["study", "question"]
    raw_id_fields = ["face"]
