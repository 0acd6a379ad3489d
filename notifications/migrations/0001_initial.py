import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Notifications (issue 16): the inbox and the per-room levels (docs/notifications.md)."""

    initial = True

    dependencies = [
        ("rooms", "0002_receipts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Notification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[("mention", "Mention"), ("room", "Room"), ("reply", "Reply"), ("direct", "Direct")],
                        max_length=8,
                    ),
                ),
                ("message_id", models.UUIDField()),
                ("message_created_at", models.DateTimeField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("read_at", models.DateTimeField(blank=True, null=True)),
                (
                    "actor",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "room",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="rooms.room"),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["user", "-id"], name="notification_user_newest"),
                    models.Index(
                        condition=models.Q(("read_at__isnull", True)), fields=["user"], name="notification_user_unread"
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("user", "message_id"), name="notification_user_message_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="RoomSetting",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "level",
                    models.CharField(
                        choices=[("all", "All"), ("mentions", "Mentions"), ("mute", "Mute")],
                        default="mentions",
                        max_length=8,
                    ),
                ),
                (
                    "room",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="rooms.room"),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("user", "room"), name="roomsetting_user_room_unique")],
            },
        ),
    ]
