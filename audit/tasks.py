from celery import shared_task

from audit import data_export


@shared_task(acks_late=False)
def build_data_export(export_id: str) -> str:
    """Build one user's "download all my data" zip (audit.data_export)."""
    return data_export.build(export_id)
