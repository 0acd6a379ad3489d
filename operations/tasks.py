from celery import shared_task

from operations.services import task_runs_prune


@shared_task
def prune_task_runs() -> int:
    """Delete task runs older than TASK_RUNS_KEEP_DAYS (Celery beat, daily)."""
    return task_runs_prune()
