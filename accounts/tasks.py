from celery import shared_task

from accounts import erasure


@shared_task(acks_late=False)
def erase_account_content(erasure_id: int) -> str:
    """An erased account's messages and reactions, in PostgreSQL and in archived days
    (accounts.erasure.erase_content)."""
    return erasure.erase_content(erasure_id)
