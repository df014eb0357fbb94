"""Triage per face (and so per study) with an append-only history: the schema.

The rows move in 0004 and the one-verdict-per-face constraint comes in 0005: PostgreSQL
refuses to ALTER a table with pending (deferred) trigger events from rows moved in the same
transaction, in either direction.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("modeling", "0002_cv_predictions")]

    operations = [
        migrations.RemoveConstraint(model_name="triage", name="triage_once_per_version"),
        migrations.RenameField(model_name="triage", old_name="created_at", new_name="decided_at"),
        migrations.AlterField(
            model_name="triage",
            name="decided_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="triage",
            name="version",
            field=models.ForeignKey(
                blank=True,
                help_text="The version whose gallery the decision was made from.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="triages",
                to="modeling.modelversion",
            ),
        ),
        migrations.CreateModel(
            name="TriageEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[("decided", "Decided"), ("undone", "Undone")], max_length=8
                    ),
                ),
                (
                    "decision",
                    models.CharField(
                        choices=[
                            ("model_error", "Model error"),
                            ("label_error", "Label error (send back for fresh votes)"),
                            ("not_face", "Not a face / detector error"),
                        ],
                        help_text="The verdict decided, or for an undo the verdict withdrawn.",
                        max_length=12,
                    ),
                ),
                ("tags", models.JSONField(blank=True, default=list)),
                ("note", models.TextField(blank=True)),
                (
                    "votes_reset",
                    models.BooleanField(
                        default=False,
                        help_text="This decision sent the face back to the coders for fresh votes.",
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "actor",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "face",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="triage_events",
                        to="annotate.face",
                    ),
                ),
                (
                    "undoes",
                    models.OneToOneField(
                        blank=True,
                        help_text="The decision this undo withdrew; a decision is undone at most once.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="undone_by",
                        to="modeling.triageevent",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        blank=True,
                        help_text="The version whose gallery the change was made from.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="triage_events",
                        to="modeling.modelversion",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["face", "created_at"], name="triage_event_face_time")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("action", "decided"), ("undoes__isnull", True))
                        | models.Q(("action", "undone"), ("undoes__isnull", False)),
                        name="triage_event_undo_names_its_decision",
                    )
                ],
            },
        ),
    ]
