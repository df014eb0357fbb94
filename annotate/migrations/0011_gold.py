"""Gold faces: known answers mixed blind into coders' streams, their answers, the study's
gold settings, and researchers' exclusions of a coder's votes from consensus."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

GENDER_CHOICES = [
    ("female", "Female"),
    ("male", "Male"),
    ("cant_tell", "Can't tell"),
    ("not_face", "Not a face"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0010_invitations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="gold",
            field=models.BooleanField(
                default=False,
                help_text="A lease on a gold face (annotate.services.gold): it holds no vote "
                "slot and its answer is a GoldAnswer, never a Vote.",
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="gold_min_accuracy",
            field=models.FloatField(
                default=0.7,
                help_text="A coder whose accuracy on gold faces falls below this is paused.",
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="gold_min_answers",
            field=models.PositiveSmallIntegerField(
                default=10,
                help_text="Gold faces a coder answers before their accuracy can pause them.",
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="gold_rate",
            field=models.FloatField(
                default=0.0,
                help_text="Share of the faces a coder is served that are gold faces (one in "
                "every round(1/rate), at a position that varies); 0 turns gold checks off.",
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(0.5),
                ],
            ),
        ),
        migrations.CreateModel(
            name="GoldFace",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "gender",
                    models.CharField(
                        choices=GENDER_CHOICES, help_text="The answer.", max_length=12
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("known_label", "Imported label"),
                            ("adjudication", "Researcher's decision"),
                        ],
                        max_length=12,
                    ),
                ),
                ("marked_at", models.DateTimeField(auto_now_add=True)),
                ("corrected_at", models.DateTimeField(blank=True, null=True)),
                (
                    "face",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="gold",
                        to="annotate.face",
                    ),
                ),
                (
                    "marked_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="CoderExclusion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("excluded_at", models.DateTimeField(auto_now_add=True)),
                ("reason", models.CharField(blank=True, max_length=300)),
                (
                    "coder",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "excluded_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "study",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="coder_exclusions",
                        to="annotate.study",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("study", "coder"), name="coder_excluded_once")
                ],
            },
        ),
        migrations.CreateModel(
            name="GoldAnswer",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("gender", models.CharField(choices=GENDER_CHOICES, max_length=12)),
                (
                    "attributes",
                    models.JSONField(
                        blank=True, default=dict, help_text="The other answers given."
                    ),
                ),
                ("seconds_taken", models.FloatField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "retracted_at",
                    models.DateTimeField(
                        blank=True, help_text="Set when the coder undid this answer.", null=True
                    ),
                ),
                (
                    "assignment",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="gold_answers",
                        to="annotate.assignment",
                    ),
                ),
                (
                    "coder",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="gold_answers",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "gold",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="answers",
                        to="annotate.goldface",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["coder", "created_at"], name="gold_answer_coder_time")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("retracted_at__isnull", True)),
                        fields=("gold", "coder"),
                        name="gold_answer_once_per_coder",
                    )
                ],
            },
        ),
    ]
