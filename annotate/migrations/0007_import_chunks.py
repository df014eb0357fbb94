"""Imports survive lost workers and redelivered messages: claims, heartbeats and chunk rows.

Batches running when this is applied have no heartbeat; the stale sweep judges them by
started_at instead.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotate", "0006_media_files")]

    operations = [
        migrations.AddField(
            model_name="importbatch",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="Last sign of life of the worker(s) importing it; older than "
                "FACET_IMPORT_STALE_SECONDS while running means the worker was lost.",
            ),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="claimed_by",
            field=models.CharField(
                blank=True,
                max_length=200,
                help_text="The task copy (host:pid:nonce) running an upload imported in one "
                "task; a second delivery of the message finds it taken and does nothing.",
            ),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Times a task claimed this upload (one task: more after lost workers).",
            ),
        ),
        migrations.AddField(
            model_name="importbatch",
            name="upload_deleted_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="When the uploaded zip and manifest were deleted "
                "(FACET_UPLOAD_RETENTION_HOURS after the import finished); the report is kept.",
            ),
        ),
        migrations.AddIndex(
            model_name="importbatch",
            index=models.Index(fields=["status", "heartbeat_at"], name="import_status_heartbeat"),
        ),
        migrations.CreateModel(
            name="ImportChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("start", models.PositiveIntegerField()),
                ("stop", models.PositiveIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="queued",
                        max_length=12,
                    ),
                ),
                (
                    "done",
                    models.PositiveIntegerField(
                        default=0, help_text="Files processed; never goes down."
                    ),
                ),
                (
                    "attempts",
                    models.PositiveSmallIntegerField(
                        default=0, help_text="Times a task claimed it."
                    ),
                ),
                ("claimed_by", models.CharField(blank=True, max_length=200)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("report", models.JSONField(blank=True, default=dict)),
                ("error", models.TextField(blank=True)),
                (
                    "batch",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="annotate.importbatch",
                    ),
                ),
            ],
            options={
                "ordering": ["batch", "start"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("batch", "start"), name="import_chunk_unique_start"
                    )
                ],
                "indexes": [
                    models.Index(fields=["status", "heartbeat_at"], name="import_chunk_heartbeat")
                ],
            },
        ),
    ]
