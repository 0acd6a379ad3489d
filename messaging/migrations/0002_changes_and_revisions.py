import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0001_initial"),
        ("rooms", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="changed_sequence",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunSQL(
            "UPDATE messaging_message SET changed_sequence = sequence",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="message",
            name="changed_sequence",
            field=models.BigIntegerField(),
        ),
        migrations.AddField(
            model_name="message",
            name="edited_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["room", "changed_sequence"], name="message_room_changed"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["id"], name="message_id"),
        ),
        migrations.CreateModel(
            name="MessageRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("message_id", models.UUIDField(db_index=True)),
                ("content", models.TextField()),
                ("written_at", models.DateTimeField()),
                ("replaced_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "room",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="rooms.room"
                    ),
                ),
            ],
            options={"ordering": ["replaced_at", "pk"]},
        ),
    ]
