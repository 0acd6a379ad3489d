from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """What operators see and do in Django admin (issue 17): Celery task runs with progress, the
    jobs they start (archive now, verify, restore a day), partitions and live connections."""

    name = "operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import core.checks  # noqa: F401  (Django's deploy checks for core.middleware's classes)
        from operations import signals

        signals.connect()
