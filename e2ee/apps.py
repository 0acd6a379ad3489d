from django.apps import AppConfig


class E2eeConfig(AppConfig):
    name = "e2ee"
    verbose_name = "End-to-end encryption"
    default_auto_field = "django.db.models.BigAutoField"
