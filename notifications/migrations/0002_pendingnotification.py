import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    """Durable notifications (issue 16): a row per write that owes notifications, written in the
    write's own transaction and deleted by whoever delivers them (docs/notifications.md)."""

    dependencies = [
        ("notifications", "0001_initial"),
        ("rooms", "0002_receipts"),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingNotification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("message_id", models.UUIDField()),
                ("message_created_at", models.DateTimeField()),
                ("number", models.BigIntegerField()),
                ("edit", models.BooleanField(db_default=False)),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("attempts", models.SmallIntegerField(db_default=0)),
                (
                    "room",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="rooms.room",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("message_id", "number"), name="pendingnotification_message_number")
                ],
            },
        ),
    ]
