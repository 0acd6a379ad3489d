"""The operations app's writes: task runs as Celery's signals report them (operations.signals),
the jobs operators start from Django admin, and pruning old runs. Admin code calls these, never
the models' save()."""

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from celery import current_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import audit
from accounts.models import User
from core.errors import Forbidden, InvalidInput, NotFound
from messaging.models import MessageArchive
from operations.models import TaskRun

logger = logging.getLogger(__name__)

# What an operator may start from admin: job -> the Celery task it enqueues.
JOBS = {
    "archive_now": "messaging.tasks.archive_partitions",
    "verify": "messaging.tasks.verify_archive_days",
    "restore": "messaging.tasks.restore_archive_days",
}
# Days each job accepts, by their MessageArchive status.
_VERIFIABLE = {MessageArchive.Status.VERIFIED, MessageArchive.Status.DROPPED, MessageArchive.Status.RESTORED}
_RESTORABLE = {MessageArchive.Status.DROPPED}
_SHORT = 2000
LOST_AFTER = dt.timedelta(hours=24)
LOST_ERROR = "No outcome within 24 hours: its worker died or the queue was lost. Start it again if needed."


# -- jobs started by operators -------------------------------------------------------------------


@transaction.atomic
def job_start(*, user: User, job: str, days: Sequence[dt.date] = ()) -> TaskRun:
    """Queue one of JOBS for `days` (archive_now takes none). Bad input changes nothing. The run is
    recorded as queued at once, with who asked; the task is sent after the commit."""
    if not (user.is_active and user.is_staff):
        raise NotFound()
    if not user.has_perm("operations.add_taskrun"):  # superusers have it; give it to operators
        raise Forbidden("You may not start operations jobs.")
    if job not in JOBS:
        raise InvalidInput(f"Unknown job {job!r}.", code="unknown_job")
    days = sorted(set(days))
    if job == "archive_now":
        if days:
            raise InvalidInput("Archive now takes no days: it archives every day outside the hot window.")
    else:
        if not days:
            raise InvalidInput("Choose at least one archived day.", code="no_days")
        allowed = _RESTORABLE if job == "restore" else _VERIFIABLE
        statuses = dict(MessageArchive.objects.filter(day__in=days).values_list("day", "status"))
        wrong = [day.isoformat() for day in days if statuses.get(day) not in allowed]
        if wrong:
            verb = "restored (only archived and dropped days can be)" if job == "restore" else "verified"
            raise InvalidInput(f"These days cannot be {verb}: {', '.join(wrong)}.", code="not_archived")
    run = TaskRun.objects.create(
        task_id=uuid.uuid4().hex,
        name=JOBS[job],
        args=[[day.isoformat() for day in days]] if days else [],
        requested_by=user,
        queued_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue(run))
    audit.record(action="operations.job_start", actor=user, target=run, after={"job": job, "days": run.args})
    return run


def _enqueue(run: TaskRun) -> None:
    from messaging import tasks

    task = {t.name: t for t in (tasks.archive_partitions, tasks.verify_archive_days, tasks.restore_archive_days)}[
        run.name
    ]
    try:
        task.apply_async(args=run.args, task_id=run.task_id)
    except Exception as error:  # the broker is away: say so on the run rather than leave it queued
        logger.exception("could not queue %s", run.name)
        TaskRun.objects.filter(pk=run.pk, status=TaskRun.Status.QUEUED).update(
            status=TaskRun.Status.FAILED,
            error=f"Could not be queued (is Redis up?): {error}",
            finished_at=timezone.now(),
        )


# -- what Celery's signals report ----------------------------------------------------------------


def task_run_started(*, task_id: str, name: str, args: Sequence = (), worker: str = "") -> None:
    now = timezone.now()
    updated = TaskRun.objects.filter(task_id=task_id).update(
        status=TaskRun.Status.RUNNING, started_at=now, finished_at=None, duration_ms=None, worker=worker[:200]
    )
    if not updated:
        TaskRun.objects.get_or_create(
            task_id=task_id,
            defaults={
                "name": name[:200],
                "args": _jsonable(args),
                "status": TaskRun.Status.RUNNING,
                "started_at": now,
                "worker": worker[:200],
            },
        )


def task_run_failed(*, task_id: str, error: str) -> None:
    TaskRun.objects.filter(task_id=task_id).update(status=TaskRun.Status.FAILED, error=error[-_SHORT * 4 :])


def task_run_finished(*, task_id: str, state: str, result: object) -> None:
    run = TaskRun.objects.filter(task_id=task_id).first()
    if run is None:
        return
    now = timezone.now()
    run.finished_at = now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000) if run.started_at else None
    if state == "SUCCESS":
        run.status = TaskRun.Status.SUCCEEDED
        run.result = repr(result)[:_SHORT]
    elif state == "RETRY":
        run.status = TaskRun.Status.QUEUED
        run.error = f"retrying: {result!r}"[:_SHORT]
    else:
        run.status = TaskRun.Status.FAILED
        run.error = run.error or f"{state}: {result!r}"[:_SHORT]
    with transaction.atomic():
        run.save(update_fields=["finished_at", "duration_ms", "status", "result", "error"])
        if run.name in JOBS.values():  # archive, verify and restore runs, by beat or by an operator
            outcome = {"task": run.name, "days": run.args, "status": run.status}
            audit.record(action="operations.job_finished", actor=None, target=run, after=outcome)


def task_progress(done: int, total: int, note: str = "") -> None:
    """Called by a task as it goes: `done` of `total` steps. Outside a Celery task (a management
    command, a test calling the function) it does nothing."""
    task_id = getattr(getattr(current_task, "request", None), "id", None)
    if task_id:
        TaskRun.objects.filter(task_id=task_id).update(
            progress_done=done, progress_total=total, progress_note=note[:200]
        )


def task_runs_prune(*, keep_days: int | None = None) -> int:
    """Delete runs recorded more than TASK_RUNS_KEEP_DAYS ago; returns how many. Runs queued or
    started more than LOST_AFTER ago with no outcome (their worker died, Redis lost the queue) are
    marked failed, so they do not look busy for ever."""
    now = timezone.now()
    keep = settings.TASK_RUNS_KEEP_DAYS if keep_days is None else keep_days
    cutoff = now - LOST_AFTER
    TaskRun.objects.filter(status__in=[TaskRun.Status.QUEUED, TaskRun.Status.RUNNING]).filter(
        Q(started_at__lt=cutoff) | Q(started_at__isnull=True, created_at__lt=cutoff)
    ).update(status=TaskRun.Status.FAILED, finished_at=now, error=LOST_ERROR)
    deleted, _ = TaskRun.objects.filter(created_at__lt=now - dt.timedelta(days=keep)).delete()
    return deleted


def _jsonable(args: Sequence) -> list:
    plain = str | int | float | bool | list | dict | None
    return [value if isinstance(value, plain) else repr(value) for value in args]
