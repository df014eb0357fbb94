"""Votes carry their face's study, so a coder's live votes in a study are counted on an index
alone instead of joined to every face they voted on."""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
UPDATE annotate_vote SET study_id = (
    SELECT annotate_face.study_id FROM annotate_face WHERE annotate_face.id = annotate_vote.face_id
)
"""


class Migration(migrations.Migration):
    dependencies = [("annotate", "0016_consensus_study")]

    operations = [
        migrations.AddField(
            model_name="vote",
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
            model_name="vote",
            name="study",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotate.study",
            ),
        ),
        migrations.AddIndex(
            model_name="vote",
            index=models.Index(
                condition=models.Q(("retracted_at__isnull", True)),
                fields=["coder", "study", "created_at"],
                name="vote_coder_study_live",
            ),
        ),
    ]
