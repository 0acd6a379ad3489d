"""The only way real-time events leave a service: after the surrounding transaction commits.

Each event is serialised to JSON text exactly once, by the service; every consumer that receives
it sends those same bytes to its socket. The channel layer is at-most-once, so events are hints
that speed clients up; the database (sequences + sync) is what guarantees nothing is lost.

Services are synchronous. Called from a sync context (a DRF view, a Celery task), their events
are published right after commit. Called from the WebSocket consumer through `call_service`,
they are collected and published from the event loop instead: a worker thread never blocks on
the loop (which would also deadlock during server shutdown).
"""

import json
import logging
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from core.hub import get_hub

logger = logging.getLogger(__name__)

Event = tuple[list[str], dict]
_outbox: ContextVar[list[Event] | None] = ContextVar("parley_event_outbox", default=None)


def room_group(room_id: object) -> str:
    return f"room.{room_id}"


def user_group(user_id: object) -> str:
    return f"user.{user_id}"


def dumps(payload: dict) -> str:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def send_event(groups: Iterable[str], event: dict) -> None:
    """Queue `event` for `groups`, to be sent once the current transaction commits.

    `event["type"]` names the consumer handler; the rest is handler-specific.
    """
    item = (list(groups), event)

    def _after_commit() -> None:
        outbox = _outbox.get()
        if outbox is not None:
            outbox.append(item)
        else:
            async_to_sync(publish)([item])

    transaction.on_commit(_after_commit, robust=True)


async def publish(events: list[Event]) -> None:
    """Send events to their groups, in order: this process's own sockets at once (its hub), the
    other processes through Redis, in one pipelined batch per shard (core.layers)."""
    if not events:
        return
    # The group travels with the event: each process's hub routes by it (core.hub).
    sends = [(group, {**event, "group": group}) for groups, event in events for group in groups]
    hub = get_hub.peek()
    if hub is not None:
        # Local sockets need no trip through Redis; the hub drops the copy that comes back.
        for _, event in sends:
            event["origin"] = hub.origin
            await hub.deliver(dict(event))  # a copy: consumers cache the built frame in it
    try:
        await get_channel_layer().group_send_many(sends)
    except Exception:  # a lost event is recovered by sync; a failed send must not fail the write
        logger.exception("could not publish %s events", len(sends))


async def call_service(service: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Run a synchronous service in a database thread and publish its events from the loop."""

    def run() -> tuple[Any, BaseException | None, list[Event]]:
        events: list[Event] = []
        token = _outbox.set(events)
        try:
            return service(**kwargs), None, events
        except Exception as error:  # events of transactions that did commit still go out
            return None, error, events
        finally:
            _outbox.reset(token)

    result, error, events = await database_sync_to_async(run)()
    await publish(events)
    if error is not None:
        raise error
    return result
