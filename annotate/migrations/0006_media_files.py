"""Stored media get random names; source images get a metadata-free display copy.

Files already stored keep their names: media is no longer served by path (only through
views that check access), so an old name leads nowhere. Display copies of existing images
are made on first view.
"""

from django.db import migrations, models

import annotate.filenames


class Migration(migrations.Migration):
    dependencies = [("annotate", "0005_dawid_skene")]

    operations = [
        migrations.AlterField(
            model_name="sourceimage",
            name="file",
            field=models.ImageField(
                help_text="The file as imported.",
                upload_to=annotate.filenames.RandomName("images"),
            ),
        ),
        migrations.AddField(
            model_name="sourceimage",
            name="display",
            field=models.FileField(
                blank=True,
                help_text="What browsers are shown: a JPEG of the image, orientation applied, "
                "no metadata (EXIF, XMP, comments); made on first view by "
                "annotate.services.media.",
                upload_to=annotate.filenames.RandomName("display"),
            ),
        ),
        migrations.AlterField(
            model_name="face",
            name="crop",
            field=models.ImageField(upload_to=annotate.filenames.RandomName("faces")),
        ),
    ]
