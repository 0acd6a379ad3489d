"""The only way real-time events leave a service: after the surrounding transaction commits.

Each event is serialised to JSON text exactly once here; every consumer that receives it sends
those same bytes to its socket. The channel layer is at-most-once, so events are hints that
speed clients up; the database (sequences + sync) is what guarantees nothing is lost.
"""

import json
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)


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
    groups = list(groups)

    def _send() -> None:
        layer = get_channel_layer()
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, event)
            except Exception:  # a lost event is recovered by sync; a failed send must not 500
                logger.exception("could not publish %s to %s", event.get("type"), group)

    transaction.on_commit(_send, robust=True)
