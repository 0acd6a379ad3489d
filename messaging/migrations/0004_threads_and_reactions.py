from django.db import migrations, models


class Migration(migrations.Migration):
    """Threads and reactions (issue 16). Every new column is NULL or has a constant default, so
    PostgreSQL adds it to the partitioned table without rewriting any partition."""

    dependencies = [
        ("messaging", "0003_archives"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="reply_to",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="reply_count",
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="message",
            name="last_reply_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="reactions",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="change_kind",
            field=models.CharField(blank=True, max_length=8, null=True),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(reply_to__isnull=False),
                fields=["room", "reply_to", "sequence"],
                name="message_thread",
            ),
        ),
    ]
