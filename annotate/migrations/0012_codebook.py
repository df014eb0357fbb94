import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotate", "0011_gold")]

    operations = [
        migrations.CreateModel(
            name="CodebookExample",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "question",
                    models.CharField(help_text="The question's key, e.g. gender.", max_length=20),
                ),
                (
                    "answer",
                    models.CharField(help_text="The answer this face illustrates.", max_length=20),
                ),
                (
                    "note",
                    models.CharField(
                        blank=True,
                        help_text="Why this face shows that answer, for coders.",
                        max_length=300,
                    ),
                ),
                (
                    "order",
                    models.PositiveIntegerField(default=0, help_text="Position within its answer."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "face",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="codebook_examples",
                        to="annotate.face",
                    ),
                ),
                (
                    "study",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="codebook_examples",
                        to="annotate.study",
                    ),
                ),
            ],
            options={
                "ordering": ["study", "order", "pk"],
                "indexes": [models.Index(fields=["study", "order"], name="codebook_study_order")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("study", "face", "question"),
                        name="codebook_face_once_per_question",
                    )
                ],
            },
        ),
    ]
