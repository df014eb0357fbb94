from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotate", "0002_coding_assignment_live_unique")]

    operations = [
        migrations.AddField(
            model_name="study",
            name="escalation_wait_minutes",
            field=models.PositiveSmallIntegerField(
                default=60,
                help_text=(
                    "How long a split face waits for an extra coder before it goes to a "
                    "researcher (adjudication); 0 sends splits straight to a researcher."
                ),
            ),
        ),
    ]
