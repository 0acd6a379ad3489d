from celery import shared_task

from notifications.services import pending_deliver


@shared_task
def deliver_pending() -> int:
    """Notifications still owed a few seconds after their message committed (the process that
    should have delivered them died): delivered once (docs/notifications.md, "Durability")."""
    return pending_deliver()
