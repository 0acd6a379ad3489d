from django.db import migrations, models


class Migration(migrations.Migration):
    """@mentions (issue 16, messaging/mentions.py, notifications/): the members a message names.
    NULL, so PostgreSQL adds it to the partitioned table without rewriting any partition."""

    dependencies = [
        ("messaging", "0005_message_attachments"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="mentions",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
