from django.contrib import admin

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


@admin.register(models.Triage)
class TriageAdmin(admin.ModelAdmin):
    list_display = ["id", "face", "version", "decision", "decided_by", "created_at"]
    list_filter = ["decision"]
    raw_id_fields = ["face"]
