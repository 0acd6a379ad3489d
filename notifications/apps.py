from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A sender that cannot be imported stops start-up, rather than every notification later.
        from notifications.senders import senders

        try:
            senders()
        except ImportError as error:
            raise ImproperlyConfigured(f"NOTIFICATION_SENDERS: {error}") from error
