import logging

from celery import shared_task

from attachments import services
from attachments.storage import attachment_store

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def make_thumbnail(attachment_id: str) -> str:
    """An image's thumbnail (attachments.services.thumbnail_make); the store's hiccups are retried,
    a corrupt image is not (it ends `failed`)."""
    return services.thumbnail_make(attachment_id=attachment_id)


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def delete_objects(keys: list[str]) -> int:
    """Remove a deleted message's attachments from the store (what is left, `prune_uploads` finds)."""
    store = attachment_store()
    for key in keys:
        store.delete(key)
    return len(keys)


@shared_task
def prune_uploads() -> int:
    """Hourly (Celery beat): uploads never sent within a day, and deleted attachments' objects."""
    removed = services.uploads_prune()
    logger.info("pruned %s attachments", removed)
    return removed
