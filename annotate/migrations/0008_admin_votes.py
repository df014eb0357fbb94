from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotate", "0007_import_chunks")]

    operations = [
        migrations.AddField(
            model_name="study",
            name="allow_admin_votes",
            field=models.BooleanField(
                default=False,
                help_text="Count admins' votes (non-blind: admins see other votes and "
                "predictions) in the agreement statistics; they always count toward consensus.",
            ),
        ),
        migrations.AddField(
            model_name="vote",
            name="non_blind",
            field=models.BooleanField(
                default=False,
                help_text="Cast by a user who could see other votes or predictions (an admin); "
                "left out of agreement statistics unless the study allows admin votes.",
            ),
        ),
    ]
