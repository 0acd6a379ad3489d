import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parley")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Task runs, failures and durations in core.metrics (Prometheus).
from core import metrics  # noqa: E402

metrics.connect_celery()
