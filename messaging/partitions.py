"""Daily partitions of the messages table, created ahead so a send never finds its day missing.

django-postgres-extra plans and creates them (also available to operators as
`manage.py pgpartition`). Created: at migrate time, hourly by Celery beat, and, as a last line
of defence, by the send path itself the first time a process sees a new day.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from psqlextra.partitioning import (
    PostgresCurrentTimePartitioningStrategy,
    PostgresPartitioningManager,
    PostgresTimePartitionSize,
)
from psqlextra.partitioning.config import PostgresPartitioningConfig

from messaging.models import Message

logger = logging.getLogger(__name__)

NAME_FORMAT = "%Y%m%d"  # messaging_message_20261122


def _manager(days_ahead: int) -> PostgresPartitioningManager:
    strategy = PostgresCurrentTimePartitioningStrategy(
        size=PostgresTimePartitionSize(days=1), count=days_ahead, name_format=NAME_FORMAT
    )
    return PostgresPartitioningManager([PostgresPartitioningConfig(model=Message, strategy=strategy)])


# Used by `manage.py pgpartition` (psqlextra reads PSQLEXTRA_PARTITIONING_MANAGER).
manager = _manager(settings.MESSAGE_PARTITION_DAYS_AHEAD)

# Days this process has seen a partition for; the hot path checks this set, not the catalog.
_known_days: set[dt.date] = set()


def partitions_create_ahead(days_ahead: int | None = None) -> list[str]:
    """Create missing daily partitions from today on; returns the names created. Idempotent."""
    days = days_ahead or settings.MESSAGE_PARTITION_DAYS_AHEAD
    for attempt in range(3):
        plan = _manager(days).plan(skip_delete=True)
        try:
            with transaction.atomic():
                plan.apply()
        except DatabaseError:
            # Another process created the same partition between our plan and apply.
            if attempt == 2:
                raise
            continue
        created = [partition.name() for partition in plan.creations]
        if created:
            logger.info("created message partitions: %s", ", ".join(created))
        today = dt.datetime.now(dt.UTC).date()
        _known_days.update(today + dt.timedelta(days=offset) for offset in range(days))
        _count_days_ahead()
        return created
    return []


def _count_days_ahead() -> None:
    """Record in core.metrics how many days after today have a partition (never fails the caller)."""
    from core import health, metrics

    try:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint inside a migration
            cursor.execute(health.PARTITIONS_SQL, [health.PARTITION_PARENT, health.partition_name(health.today())])
            metrics.PARTITIONS_AHEAD.set(health.days_ahead({row[0] for row in cursor.fetchall()}))
    except DatabaseError:
        logger.warning("could not count the message partitions ahead", exc_info=True)


def missing_for(moment: dt.datetime) -> bool:
    """Whether `moment`'s day may lack its partition: false, with no query, once this process has
    seen it (the hot path asks on every send)."""
    day = moment.astimezone(dt.UTC).date()
    # Only restore/import writes to the past, and brings its own partition.
    return day not in _known_days and day >= dt.datetime.now(dt.UTC).date()


def ensure_for(moment: dt.datetime) -> None:
    """Make sure the partition for `moment`'s day exists (free after the first call of a day)."""
    if missing_for(moment):
        partitions_create_ahead()
