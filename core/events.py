"""The one way real-time events leave a service: `send_event`, which publishes after commit.

Each event is serialised to JSON text exactly once, by the service; every consumer that receives
it sends those same bytes to its socket. The channel layer is at-most-once, so events are hints
that speed clients up; the database (sequences + sync) is what guarantees nothing is lost.

Services call `send_event` and nothing else. Where the events then go depends on the driver that
ran the service, never on the service:

- sync code (a DRF view, a page, a Celery task, the admin): published as the transaction commits
  (`transaction.on_commit`);
- a sync service run from the event loop (`call_service`, the consumer's way to call services):
  collected as the transaction commits and published from the loop when the service returns, so a
  database thread never blocks on the loop (which would deadlock during server shutdown);
- async code whose writes are already committed when it calls `send_event` (core.asyncdb's
  statements run in autocommit): inside `publishing()`, collected and published, in order, when
  the block ends.

Every event goes through `_publish`: tests record events there (tests/conftest.py `events`).
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from core import dbdeadline
from core.hub import get_hub
from core.pubsub import publish_once
from core.threads import database_sync_to_async

logger = logging.getLogger(__name__)

Event = tuple[list[str], dict]
_outbox: ContextVar[list[Event] | None] = ContextVar("parley_event_outbox", default=None)
# Work a service run by call_service hands back to be done after its answer (`after_answering`).
_later: ContextVar[list[Callable[[], Any]] | None] = ContextVar("parley_after_answering", default=None)
_later_tasks: set[asyncio.Task] = set()


def room_group(room_id: object) -> str:
    return f"room.{room_id}"


def user_group(user_id: object) -> str:
    return f"user.{user_id}"


def dumps(payload: Mapping[str, object]) -> str:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def send_event(groups: Iterable[str], event: dict) -> None:
    """Send `event` to `groups` once the current transaction commits.

    `event["type"]` names the consumer handler; the rest is handler-specific.
    """
    send_events([(groups, event)])


def send_events(events: Iterable[tuple[Iterable[str], dict]]) -> None:
    """`send_event` for many events, in order, published together: a service that tells each of
    many users something of their own (notifications.senders) costs one publication, not one each."""
    items = [(list(groups), event) for groups, event in events]
    if not items:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # sync code: after commit (at once when no transaction is open)
        transaction.on_commit(partial(_committed, items), robust=True)
        return
    # Async code opens no Django transaction: what it wrote is committed by the time it gets here.
    outbox = _outbox.get()
    if outbox is None:
        raise RuntimeError("send_event from async code must run inside core.events.publishing()")
    outbox.extend(items)


def _committed(items: list[Event]) -> None:
    outbox = _outbox.get()
    if outbox is not None:  # a service run by call_service: its driver publishes from the loop
        outbox.extend(items)
    else:
        async_to_sync(_publish)(items)


@contextlib.asynccontextmanager
async def publishing() -> AsyncIterator[None]:
    """Publish the events that async code sends inside the block, in order, when it ends (also
    when it raises: those events belong to writes that did commit)."""
    events: list[Event] = []
    token = _outbox.set(events)
    try:
        yield
    finally:
        _outbox.reset(token)
        await _publish(events)


def after_answering(work: Callable[[], Any]) -> bool:
    """Inside a service run by `call_service`: do `work` (synchronous; its own database work and
    events) in a task of its own once the service's events are out, so that the socket's answer
    does not wait for it (notifications of a reply or an edit). False elsewhere: the caller does
    it itself."""
    later = _later.get()
    if later is None:
        return False
    later.append(work)
    return True


async def call_service(service: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Run a synchronous service in a database thread and publish its events from the loop. Its
    waits for PostgreSQL are bounded as a request's are (core.dbdeadline)."""

    def run() -> tuple[Any, BaseException | None, list[Event], list[Callable[[], Any]]]:
        events: list[Event] = []
        later: list[Callable[[], Any]] = []
        token, later_token = _outbox.set(events), _later.set(later)
        try:
            with dbdeadline.budget():
                return service(**kwargs), None, events, later
        except Exception as error:  # events of transactions that did commit still go out
            return None, error, events, later
        finally:
            _outbox.reset(token)
            _later.reset(later_token)

    result, error, events, later = await database_sync_to_async(run)()
    await _publish(events)
    for work in later:
        task = asyncio.get_running_loop().create_task(_run_later(work))
        _later_tasks.add(task)
        task.add_done_callback(_later_tasks.discard)
    if error is not None:
        raise error
    return result


async def _run_later(work: Callable[[], Any]) -> None:
    try:
        await call_service(work)
    except Exception:  # the write it follows is done and answered: log, never raise into the loop
        logger.exception("work after answering failed")


async def _publish(events: list[Event]) -> None:
    """Send events to their groups, in order: the other processes through Redis (core.pubsub;
    queued, never awaited), then this process's own sockets (its hub)."""
    if not events:
        return
    # The group travels with the event: each process's hub routes by it (core.hub); `at`, the
    # time of publication (just after commit), measures delivery latency (core.metrics).
    at = time.time()
    sends = [(group, {**event, "group": group, "at": at}) for groups, event in events for group in groups]
    hub = get_hub.peek()
    if hub is None:  # a loop that serves no sockets: a Celery task, a script, a test
        try:
            await publish_once(settings.REDIS_CHANNEL_URLS, sends)
        except Exception:  # a lost event is recovered by sync; a failed send must not fail the write
            logger.exception("could not publish %s events", len(sends))
        return
    # The other processes' copy first: the bus's writer puts it on the wire in the pass of the loop
    # this yields to, instead of after everything this task does before it next waits (delivering
    # here, then the rest of its batch): docs/performance.md, "Events to the other processes".
    hub.publish(sends)
    try:
        await asyncio.sleep(0)
    finally:  # even if this task was cancelled meanwhile (a closing socket's handler): ours get them too
        for _, event in sends:
            # Local sockets need no trip through Redis; the hub drops the copy that comes back.
            await hub.deliver(dict(event, origin=hub.origin))  # a copy: consumers cache the built frame in it
