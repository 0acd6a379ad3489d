from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_partitions(sender, using="default", **kwargs) -> None:
    from messaging.partitions import partitions_create_ahead

    partitions_create_ahead()


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every migrate (deploys, `make run`, the test database) leaves a week of partitions ahead.
        post_migrate.connect(_create_partitions, sender=self)
