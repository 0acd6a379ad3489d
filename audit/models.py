"""The audit log's tables. Entries are append-only: PostgreSQL refuses UPDATE and DELETE on them
(a trigger, migration 0002), and each entry carries the hash of the previous entry of its chain,
so a row changed or removed behind the trigger's back is found by `manage.py verify_audit`.

Chains are per scope. Today there is one, GLOBAL_SCOPE; when workspaces come (issue 18), each gets
its own chain (scope "workspace:<id>"), so writers in different workspaces never wait for each
other and a workspace's log verifies and exports on its own.
"""

import uuid

from django.conf import settings
from django.db import models

GLOBAL_SCOPE = "global"
GENESIS_HASH = "0" * 64  # the "previous hash" of a chain's first entry


class AuditChain(models.Model):
    """The head of one chain: how many entries it has and the hash of the last. Every write locks
    this row (SELECT ... FOR UPDATE) until its transaction ends, so a chain's entries are numbered
    and linked one after the other even when writers race; a trigger lets it only move forward by
    one (migration 0002), so the tail cannot be cut off and the head rewound by an UPDATE."""

    scope = models.CharField(primary_key=True, max_length=64)
    length = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"{self.scope} ({self.length} entries)"


class AuditEntry(models.Model):
    """One thing someone did. No message texts and no secrets: `before`/`after` are short
    summaries (names, roles, ids, counts)."""

    scope = models.CharField(max_length=64, default=GLOBAL_SCOPE)
    position = models.BigIntegerField(help_text="1, 2, 3, ... within the scope's chain")
    created_at = models.DateTimeField()
    # No database constraint and no cascade: deleting a user must never touch (or be blocked by)
    # the log; the name at the time is kept next to the id.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name_plural = "audit entries"
        constraints = [models.UniqueConstraint(fields=["scope", "position"], name="audit_entry_scope_position")]
        indexes = [
            models.Index(fields=["created_at"], name="audit_entry_created"),
            models.Index(fields=["action", "created_at"], name="audit_entry_action"),
            models.Index(fields=["actor", "created_at"], name="audit_entry_actor"),
            models.Index(fields=["target_type", "target_id"], name="audit_entry_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.action}"


class DataExport(models.Model):
    """A user's "download all my data" (GDPR): built by a Celery task (audit.tasks) into a zip of
    JSON files kept in the archive store, with progress; the user polls and downloads it over REST."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.IntegerField(default=0)
    progress_total = models.IntegerField(default=0)
    progress_note = models.CharField(max_length=200, blank=True)
    key = models.CharField(max_length=300, blank=True, help_text="The zip's key in the archive store")
    size = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="data_export_user")]

    def __str__(self) -> str:
        return f"data export {self.pk} ({self.status})"


class Erasure(models.Model):
    """An erased account (GDPR; accounts.erasure). The account itself is scrubbed at once, in the
    request; its messages (PostgreSQL, then every archived day) and reactions are changed by a
    task, tracked here. Holds nothing personal: the user's id (the row stays, scrubbed), the mode
    and counts."""

    class Status(models.TextChoices):
        PENDING = "pending"  # the account is erased; messages are being changed
        DONE = "done"
        FAILED = "failed"  # erasing again (admin action) resumes it

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10, help_text="ERASURE_MESSAGES when it was erased: delete or anonymise")
    by_staff = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    messages = models.IntegerField(default=0, help_text="Messages changed in PostgreSQL")
    archived_messages = models.IntegerField(default=0, help_text="Messages changed in archived days")
    archived_days = models.IntegerField(default=0, help_text="Archived days rewritten")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"erasure of user {self.user_id} ({self.status})"
