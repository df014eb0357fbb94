import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0002_coding_assignment_live_unique"),
        ("modeling", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="CrossValidationPrediction",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("fold", models.PositiveSmallIntegerField(help_text="0-based cross-validation fold.")),
                ("label", models.CharField(help_text="The training label the fold was scored on.", max_length=12)),
                ("label_source", models.CharField(help_text="Where the label came from: consensus, dawid_skene, adjudication, imported.", max_length=20)),
                ("probability", models.FloatField(help_text="Out-of-fold P(female).")),
                ("predicted", models.CharField(help_text="The label at the version's threshold.", max_length=12)),
                ("face", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="cv_predictions", to="annotate.face")),
                ("version", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="cv_predictions", to="modeling.modelversion")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("version", "face"), name="cv_prediction_once")],
            },
        ),
    ]
