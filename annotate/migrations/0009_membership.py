"""Give the study's members a model (role, pause) without moving a row.

`Study.members` had Django's automatic through table, `annotate_study_members` (id, study_id,
user_id, unique together). The Membership model takes that table over: the state learns the
model, the database only gains the new columns, so existing members stay members (as coders,
the default role; researchers are set from their global group below).
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import annotate.labels
import annotate.models


def researchers_keep_their_role(apps, schema_editor):
    """Members in the global researcher group were researchers of their studies until now."""
    Membership = apps.get_model("annotate", "Membership")
    Membership.objects.filter(user__groups__name="researcher").update(role="researcher")


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0008_admin_votes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "study",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="annotate.study",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotate_study_members",
                        "unique_together": {("study", "user")},
                        "ordering": ["study", "user"],
                    },
                ),
                migrations.AlterField(
                    model_name="study",
                    name="members",
                    field=models.ManyToManyField(
                        blank=True,
                        help_text="Researchers and coders who may work on this study.",
                        related_name="studies",
                        through="annotate.Membership",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(
                choices=[("coder", "Coder"), ("researcher", "Researcher")],
                default="coder",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="paused_at",
            field=models.DateTimeField(
                blank=True, help_text="Set while the member may not take new faces.", null=True
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="paused_reason",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name="membership",
            name="added_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="study",
            name="instructions",
            field=models.TextField(
                blank=True,
                help_text="Coding instructions: what coders read before their first face.",
            ),
        ),
        # Validators only (no schema change): the rules study set-up enforces, web and CLI.
        migrations.AlterField(
            model_name="study",
            name="attributes_asked",
            field=models.JSONField(
                blank=True,
                default=annotate.labels.default_attributes,
                help_text="Subgroup attributes coders are asked: race, age_band, glasses, quality.",
                validators=[annotate.models.validate_attributes],
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="lease_minutes",
            field=models.PositiveSmallIntegerField(
                default=10,
                help_text="How long a coder holds a face before it returns to the pool.",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(1440),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="min_face_px",
            field=models.PositiveSmallIntegerField(
                default=24,
                help_text="Detected faces smaller than this (shorter side, px) are skipped.",
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="slug",
            field=models.SlugField(
                help_text="Short name used in URLs and commands: letters, digits, - and _.",
                unique=True,
                validators=[annotate.models.validate_study_slug],
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="votes_per_face",
            field=models.PositiveSmallIntegerField(
                default=3,
                help_text="Distinct coders who label each face (K).",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(20),
                ],
            ),
        ),
        migrations.RunPython(researchers_keep_their_role, migrations.RunPython.noop),
    ]
