import datetime as dt
import logging

from celery import shared_task

from messaging.archive import archive_day, days_to_archive, restore_day, verify_day
from messaging.partitions import partitions_create_ahead
from operations.services import task_progress

logger = logging.getLogger(__name__)


@shared_task
def create_partitions() -> list[str]:
    return partitions_create_ahead()


@shared_task
def archive_partitions() -> dict:
    """Archive every message day outside the hot window (progress and failures are logged, and
    recorded per day in MessageArchive and per run in operations' TaskRun, visible in Django admin)."""
    summary: dict = {"archived": [], "failed": [], "skipped": []}
    days = days_to_archive()
    for done, day in enumerate(days):  # messaging.archive.archive_due's loop, with progress
        task_progress(done, len(days), f"archiving {day.isoformat()}")
        try:
            record = archive_day(day)
        except Exception as error:
            summary["failed"].append((day.isoformat(), str(error)))
            continue
        summary["archived" if record else "skipped"].append(day.isoformat())
    task_progress(len(days), len(days), f"{len(summary['archived'])} archived, {len(summary['failed'])} failed")
    logger.info(
        "archive run: %d archived, %d failed, %d skipped",
        len(summary["archived"]),
        len(summary["failed"]),
        len(summary["skipped"]),
    )
    if summary["failed"]:  # the run is then recorded as failed, and the archive-failures alert fires
        raise RuntimeError(f"archiving failed for {', '.join(day for day, _ in summary['failed'])}: {summary}")
    return summary


@shared_task
def verify_archive_days(days: list[str]) -> dict:
    """Read archived days back and check checksum and row count (an operator's job from admin)."""
    summary: dict = {"ok": [], "failed": []}
    for done, day in enumerate(days):
        task_progress(done, len(days), f"verifying {day}")
        try:
            verify_day(dt.date.fromisoformat(day))
        except Exception as error:
            summary["failed"].append((day, f"{type(error).__name__}: {error}"))
        else:
            summary["ok"].append(day)
    task_progress(len(days), len(days), f"{len(summary['ok'])} ok, {len(summary['failed'])} failed")
    if summary["failed"]:
        raise RuntimeError(f"verification failed: {summary['failed']}")
    return summary


@shared_task
def restore_archive_days(days: list[str]) -> list[str]:
    """Put archived days back into PostgreSQL (an operator's job from admin); stops at the first
    day that cannot be restored (the ones before it stay restored)."""
    for done, day in enumerate(days):
        task_progress(done, len(days), f"restoring {day}")
        restore_day(dt.date.fromisoformat(day))
    task_progress(len(days), len(days), "restored")
    return days
