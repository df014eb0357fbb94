from django.db import migrations, models


class Migration(migrations.Migration):
    """Separate from 0004 so the rows it moved are committed before the table is altered."""

    dependencies = [("modeling", "0004_triage_history")]

    operations = [
        migrations.AddConstraint(
            model_name="triage",
            constraint=models.UniqueConstraint(fields=("face",), name="triage_once_per_face"),
        ),
    ]
