from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The tamper-evident audit log (issue 18, docs/audit.md): who did what to what, from where,
    each entry chained to the previous one by its SHA-256 hash; PostgreSQL refuses UPDATE and DELETE."""

    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import signals

        signals.connect()
