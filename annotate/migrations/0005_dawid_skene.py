# Placeholder in the migration chain; its owner fills in the operations.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotate", "0004_near_duplicates")]

    operations = []
