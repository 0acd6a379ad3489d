from celery import shared_task

from messaging.partitions import partitions_create_ahead


@shared_task
def create_partitions() -> list[str]:
    return partitions_create_ahead()
