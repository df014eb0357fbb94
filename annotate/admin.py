from django.contrib import admin

from annotate import models


@admin.register(models.Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "votes_per_face", "lease_minutes", "aggregation", "created_at"]
    filter_horizontal = ["members"]
    search_fields = ["slug", "title"]


@admin.register(models.ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "status", "done", "total", "created_at"]
    list_filter = ["status", "kind", "study"]
    readonly_fields = ["report", "error"]


@admin.register(models.SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "original_name", "job", "country", "language", "rank"]
    list_filter = ["study", "job", "country"]
    search_fields = ["original_name", "query", "sha256"]


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
