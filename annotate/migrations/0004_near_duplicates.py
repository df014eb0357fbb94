from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotate", "0003_escalation")]

    operations = [
        migrations.AddField(
            model_name="face",
            name="crop_print",
            field=models.CharField(
                blank=True,
                help_text="256-bit dHash of the crop's central window, hex: what the "
                "near-duplicate rule compares (annotate.ingest.phash).",
                max_length=64,
            ),
        ),
    ]
