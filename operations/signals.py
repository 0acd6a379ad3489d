"""Celery's signals -> TaskRun rows (operations.services). Recording never breaks a task: a
failure to record (PostgreSQL away) is logged and the task goes on."""

import logging
import traceback
from collections.abc import Callable

from celery import signals

logger = logging.getLogger(__name__)


def _safely(record: Callable[[], None]) -> None:
    try:
        record()
    except Exception:
        logger.warning("could not record a task run", exc_info=True)


def _prerun(sender=None, task_id=None, task=None, args=None, **extra) -> None:
    from operations import services

    hostname = getattr(getattr(task, "request", None), "hostname", None) or ""
    _safely(lambda: services.task_run_started(task_id=task_id, name=task.name, args=args or (), worker=hostname))


def _failure(sender=None, task_id=None, exception=None, einfo=None, **extra) -> None:
    from operations import services

    text = str(einfo) if einfo is not None else "".join(traceback.format_exception(exception))
    _safely(lambda: services.task_run_failed(task_id=task_id, error=text))


def _postrun(sender=None, task_id=None, retval=None, state=None, **extra) -> None:
    from operations import services

    _safely(lambda: services.task_run_finished(task_id=task_id, state=state or "", result=retval))


def connect() -> None:
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="operations.prerun")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="operations.failure")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="operations.postrun")
