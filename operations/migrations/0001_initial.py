import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("rooms", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("task_id", models.CharField(max_length=64, unique=True)),
                ("name", models.CharField(db_index=True, max_length=200)),
                ("args", models.JSONField(blank=True, default=list)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                        ],
                        db_index=True,
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("duration_ms", models.PositiveBigIntegerField(blank=True, null=True)),
                ("progress_done", models.PositiveIntegerField(default=0)),
                ("progress_total", models.PositiveIntegerField(blank=True, null=True)),
                ("progress_note", models.CharField(blank=True, max_length=200)),
                ("result", models.TextField(blank=True)),
                ("error", models.TextField(blank=True)),
                ("worker", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.CreateModel(
            name="MessageRecord",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                (
                    "room",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="rooms.room",
                    ),
                ),
                ("sequence", models.BigIntegerField()),
                ("changed_sequence", models.BigIntegerField()),
                (
                    "sender",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("content", models.TextField()),
                ("client_msg_id", models.UUIDField()),
                ("created_at", models.DateTimeField()),
                ("edited_at", models.DateTimeField(null=True)),
                ("deleted_at", models.DateTimeField(null=True)),
            ],
            options={"verbose_name": "message", "db_table": "messaging_message", "managed": False},
        ),
        migrations.CreateModel(
            name="ProcessConnections",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={"verbose_name": "live connections", "verbose_name_plural": "live connections", "managed": False},
        ),
        migrations.CreateModel(
            name="Partition",
            fields=[
                ("name", models.CharField(max_length=63, primary_key=True, serialize=False)),
                ("parent", models.CharField(max_length=63)),
                ("bounds", models.TextField()),
                ("approx_rows", models.BigIntegerField()),
                ("total_bytes", models.BigIntegerField()),
            ],
            options={"db_table": "operations_partition_stats", "ordering": ["parent", "name"], "managed": False},
        ),
        # Every partition of every partitioned table in our schema (today: the daily partitions of
        # messaging_message), with PostgreSQL's row estimate and its size including indexes/TOAST.
        migrations.RunSQL(
            sql="""
            CREATE VIEW operations_partition_stats AS
            SELECT c.relname::varchar AS name,
                   p.relname::varchar AS parent,
                   pg_get_expr(c.relpartbound, c.oid) AS bounds,
                   GREATEST(c.reltuples, 0)::bigint AS approx_rows,
                   pg_total_relation_size(c.oid) AS total_bytes
              FROM pg_partitioned_table pt
              JOIN pg_class p ON p.oid = pt.partrelid
              JOIN pg_namespace n ON n.oid = p.relnamespace
              JOIN pg_inherits i ON i.inhparent = p.oid
              JOIN pg_class c ON c.oid = i.inhrelid
             WHERE n.nspname = current_schema()
            """,
            reverse_sql="DROP VIEW IF EXISTS operations_partition_stats",
        ),
    ]
