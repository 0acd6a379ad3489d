from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("rooms", "0003_room_workspace")]

    operations = [
        # Nullable, no default: PostgreSQL adds it without rewriting the table.
        migrations.AddField(
            model_name="room",
            name="encrypted_since",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name="room",
            constraint=models.CheckConstraint(
                condition=models.Q(encrypted_since__isnull=True) | models.Q(kind="direct"),
                name="room_encrypted_only_direct",
            ),
        ),
    ]
