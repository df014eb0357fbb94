"""Consensus rows carry their face's study, so a study's latest and waiting rows are read along
indexes of their own instead of behind every other study's."""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
UPDATE annotate_consensus SET study_id = (
    SELECT annotate_face.study_id FROM annotate_face
    WHERE annotate_face.id = annotate_consensus.face_id
)
"""


class Migration(migrations.Migration):
    dependencies = [("annotate", "0015_job_fields")]

    operations = [
        migrations.AddField(
            model_name="consensus",
            name="study",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotate.study",
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="consensus",
            name="study",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotate.study",
            ),
        ),
        migrations.RemoveIndex(model_name="consensus", name="consensus_recent"),
        migrations.RemoveIndex(model_name="consensus", name="consensus_waiting"),
        migrations.AddIndex(
            model_name="consensus",
            index=models.Index(fields=["study", "-updated_at"], name="consensus_study_recent"),
        ),
        migrations.AddIndex(
            model_name="consensus",
            index=models.Index(
                fields=["study", "status", "updated_at", "face"], name="consensus_study_waiting"
            ),
        ),
    ]
