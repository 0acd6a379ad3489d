import logging

from celery import shared_task

from messaging.archive import archive_due
from messaging.partitions import partitions_create_ahead

logger = logging.getLogger(__name__)


@shared_task
def create_partitions() -> list[str]:
    return partitions_create_ahead()


@shared_task
def archive_partitions() -> dict:
    """Archive every message day outside the hot window (progress and failures are logged, and
    recorded per day in MessageArchive, visible in Django admin)."""
    summary = archive_due()
    logger.info(
        "archive run: %d archived, %d failed, %d skipped",
        len(summary["archived"]),
        len(summary["failed"]),
        len(summary["skipped"]),
    )
    return summary
