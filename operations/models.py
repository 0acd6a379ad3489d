from django.conf import settings
from django.db import models


class TaskRun(models.Model):
    """One run of a Celery task, recorded by Celery's signals (operations.signals): every task,
    whether beat, a service or an operator started it. A job an operator starts in admin is
    recorded from the moment it is queued, with who asked; tasks report progress as they go."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    task_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, db_index=True)
    args = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    progress_note = models.CharField(max_length=200, blank=True)
    result = models.TextField(blank=True)  # repr of the return value, cut short
    error = models.TextField(blank=True)  # the exception and its traceback
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} [{self.task_id[:8]}] {self.status}"


class MessageRecord(models.Model):
    """Read-only view of messaging_message for Django admin, by `id` alone. messaging.Message's
    primary key is (id, created_at) (the table is partitioned by day), and Django admin refuses
    models with a composite primary key; `id` is unique in practice (uuid4) and indexed."""

    id = models.UUIDField(primary_key=True)
    room = models.ForeignKey("rooms.Room", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    sequence = models.BigIntegerField()
    changed_sequence = models.BigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    content = models.TextField()
    client_msg_id = models.UUIDField()
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "messaging_message"
        verbose_name = "message"

    def __str__(self) -> str:
        return f"#{self.sequence} in {self.room_id}"


class ProcessConnections(models.Model):
    """No table: the admin page of live connection counts per server process, read from Redis
    (core.hub writes them). A model only so that Django admin lists the page with the others."""

    class Meta:
        managed = False
        verbose_name = "live connections"
        verbose_name_plural = "live connections"

    def __str__(self) -> str:
        return "live connections"


class Partition(models.Model):
    """Read-only view (operations_partition_stats) of every partition of every partitioned table,
    with PostgreSQL's estimated rows and its total size (pg_total_relation_size)."""

    name = models.CharField(max_length=63, primary_key=True)
    parent = models.CharField(max_length=63)
    bounds = models.TextField()
    approx_rows = models.BigIntegerField()
    total_bytes = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "operations_partition_stats"
        ordering = ["parent", "name"]

    def __str__(self) -> str:
        return self.name
