from django.db import migrations, models


class Migration(migrations.Migration):
    """Attachments (issue 16, attachments/): the metadata a message carries. NULL, so PostgreSQL
    adds it to the partitioned table without rewriting any partition."""

    dependencies = [
        ("messaging", "0004_threads_and_reactions"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="attachments",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
