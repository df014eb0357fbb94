from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from annotate.admin import StudyAdmin
from modeling import models


@admin.register(models.TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "status", "stage", "progress", "device", "created_at"]
    list_filter = ["status", "study"]
    readonly_fields = ["dataset", "metrics", "timings", "error"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "number", "backbone", "weights", "is_active", "created_at"]
    list_filter = ["study", "is_active"]
    readonly_fields = ["metrics"]


@admin.register(models.PredictionRun)
class PredictionRunAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "status", "done", "total", "created_at"]
    list_filter = ["status"]


@admin.register(models.Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "face", "version", "label", "probability"]
    list_filter = ["version", "label"]
    raw_id_fields = ["face"]


@admin.register(models.ValidationRound)
class ValidationRoundAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "version", "size", "status", "created_at"]
    list_filter = ["status", "study"]


@admin.register(models.ValidationItem)
class ValidationItemAdmin(admin.ModelAdmin):
    list_display = ["id", "round", "face", "stratum"]
    raw_id_fields = ["face"]


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Triage changes go through modeling.services.triage, which keeps the history; the
    admin only shows them."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Triage)
class TriageAdmin(_ReadOnlyAdmin):
    list_display = ["id", "face", "version", "decision", "decided_by", "decided_at"]
    list_filter = ["decision"]
    raw_id_fields = ["face"]


@admin.register(models.TriageEvent)
class TriageEventAdmin(_ReadOnlyAdmin):
    list_display = ["id", "face", "version", "action", "decision", "actor", "created_at"]
    list_filter = ["action", "decision"]
    raw_id_fields = ["face", "undoes"]


@admin.action(description="Retrain the model (default settings, queue gpu)")
def study_retrain(modeladmin, request, queryset) -> None:
    """Admin action on Study: one training run per selected study, enqueued after commit."""
    from config.celery import BrokerUnavailable
    from modeling.services.training import training_run_create

    for study in queryset:
        try:
            run = training_run_create(study=study, requested_by=request.user)
        except (BrokerUnavailable, ValueError, PermissionDenied) as exc:
            modeladmin.message_user(request, f"{study}: {exc}", level=messages.ERROR)
            return
        modeladmin.message_user(request, f"{study}: training run #{run.pk} queued.")


# The Study admin belongs to the annotate app; the modeling app adds its action to it.
# (mypy calls a generic class attribute read on the class ambiguous; it is set once, here.)
StudyAdmin.actions = [*(StudyAdmin.actions or ()), study_retrain]  # type: ignore[misc]
