"""Reads for operators: archived days' messages (through the archive's own read path), live
connection counts per server process (written to Redis by core.hub), partitions ahead."""

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import cast

from django.conf import settings

from accounts.models import User
from core.hub import CONNECTIONS_KEY
from core.redis_clients import client as redis_client
from messaging import archive
from messaging.models import Message, MessageArchive
from rooms.models import Room


def archived_day_messages(day: dt.date, *, search: str = "") -> list[Message]:
    """The messages of an archived (dropped) day, read as scroll-back reads them
    (messaging.archive.archived_messages: this process's cache of decoded days), ordered by room
    and sequence, with room and sender attached. `search` keeps those whose room name, room id
    or sender's name contains every word (like the admin's search). Raises ArchiveUnavailable
    when the object cannot be read."""
    record = MessageArchive.objects.filter(day=day, status=MessageArchive.Status.DROPPED).first()
    if record is None:
        return []
    messages = [m for room_id in sorted(record.room_ranges) for m in archive.archived_messages(room_id, [record.key])]
    rooms = {str(pk): room for pk, room in Room.objects.in_bulk({m.room_id for m in messages}).items()}
    senders = User.objects.in_bulk({m.sender_id for m in messages if m.sender_id})
    for message in messages:
        room = rooms.get(str(message.room_id))
        if room is not None:  # a room deleted since keeps its id only
            message.room = room
        message.sender = senders.get(message.sender_id) if message.sender_id else None
    words = search.lower().split()
    if words:

        def haystack(m: Message) -> str:
            room = rooms.get(str(m.room_id))
            return f"{room.name if room else ''} {m.room_id} {m.sender.username if m.sender else ''}".lower()

        messages = [m for m in messages if all(word in haystack(m) for word in words)]
    return messages


def archived_days() -> list[dt.date]:
    dropped = MessageArchive.objects.filter(status=MessageArchive.Status.DROPPED)
    return list(dropped.order_by("-day").values_list("day", flat=True))


@dataclass
class ProcessEntry:
    process: str  # host:pid
    connections: dict[str, int]  # by transport
    updated_at: float
    age_s: float

    @property
    def total(self) -> int:
        return sum(self.connections.values())


def live_connections(now: float | None = None) -> tuple[list[ProcessEntry], list[ProcessEntry]]:
    """(live, stale) entries of the server processes' connection counts. An entry not refreshed
    for CONNECTIONS_STALE_SECONDS belongs to a process that stopped (or cannot reach Redis): it
    is ignored in totals and shown apart."""
    now = time.time() if now is None else now
    live: list[ProcessEntry] = []
    stale: list[ProcessEntry] = []
    entries = cast(dict[str, str], redis_client().hgetall(CONNECTIONS_KEY))
    for process, raw in sorted(entries.items()):
        try:
            entry = json.loads(raw)
            counts = {str(k): int(v) for k, v in entry["connections"].items()}
            updated = float(entry["updated_at"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        item = ProcessEntry(process=process, connections=counts, updated_at=updated, age_s=max(0.0, now - updated))
        (live if item.age_s <= settings.CONNECTIONS_STALE_SECONDS else stale).append(item)
    return live, stale
