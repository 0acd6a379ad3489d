"""The resume position of a Server-Sent Events stream or a long-poll: one string for every room.

A position is `<key>` or `<key>.<entry>.<entry>…`:

- `<key>` names a **base**: the per-room numbers of all the user's rooms at one moment, kept in
  Redis (`parley:transport:<stream>` hash, one field per base) for TRANSPORT_RESUME_TTL_SECONDS
  after the stream's last write. `<key>` is `<stream>-<generation>`.
- each `<entry>` is a room that moved since the base: `<room index in the base, hex>-<number, hex>`,
  or, for a room joined after the base was written, `<room id, 32 hex>-<number, hex>`; a room of
  the base the user has left since is `<index>-g` (gone: a resume does not announce it again).
- a board the stream follows (`?boards=`) is one more entry of the same map, keyed `b:<board id>`
  (`board_key`): in the base like a room, or `b<board id, 32 hex>-<number, hex>` when it moved
  since; its number is the last board update (or `board.state`) written.

So an id stays short: a stream writes a new base (a **rebase**, one Redis write of the whole
map) once REBASE_AFTER rooms have moved, and keeps the last KEEP_BASES bases, so an id a client
received a little before a cut still resolves. A position whose base is gone (expired, or a
client that lagged more than KEEP_BASES rebases behind) cannot be resumed: the stream starts
afresh with `session.ready`, and the client syncs each room from its own numbers, as after a
socket reconnect (docs/protocol.md).
"""

import json
import re
import secrets
import uuid
from typing import cast

from django.conf import settings

from core import redis_clients

REBASE_AFTER = 16
KEEP_BASES = 4
_KEY = re.compile(r"^[0-9a-z]{12}-[0-9a-f]{1,8}$")
_ENTRY = re.compile(r"^([0-9a-f]{1,6}|b?[0-9a-f]{32})-([0-9a-f]{1,12}|g)$")
BOARD = "b:"  # the prefix of a board's key in a position (rooms are bare ids)
GONE = -1
MAX_LENGTH = 4096


class BadPosition(ValueError):
    pass


def board_key(board_id: str) -> str:
    return BOARD + board_id


def new_stream_id() -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _redis_key(stream: str) -> str:
    return f"parley:transport:{stream}"


def parse(position: str) -> tuple[str, int, list[tuple[str, int]]]:
    """(stream, generation, [(room index or room id hex, number)]); BadPosition if malformed."""
    if len(position) > MAX_LENGTH:
        raise BadPosition("too long")
    key, *entries = position.split(".")
    if not _KEY.match(key):
        raise BadPosition("bad key")
    stream, generation = key.split("-")
    moved = []
    for entry in entries:
        match = _ENTRY.match(entry)
        if match is None:
            raise BadPosition("bad entry")
        number = match.group(2)
        moved.append((match.group(1), GONE if number == "g" else int(number, 16)))
    return stream, int(generation, 16), moved


def store_base(stream: str, generation: int, rooms: dict[str, int]) -> None:
    """Write a base (synchronous: run it in a thread). Keeps the last KEEP_BASES."""
    pipe = redis_clients.client().pipeline(transaction=False)
    key = _redis_key(stream)
    pipe.hset(key, format(generation, "x"), json.dumps(sorted(rooms.items()), separators=(",", ":")))
    if generation >= KEEP_BASES:
        pipe.hdel(key, format(generation - KEEP_BASES, "x"))
    pipe.expire(key, settings.TRANSPORT_RESUME_TTL_SECONDS)
    pipe.execute()


def touch(stream: str) -> None:
    redis_clients.client().expire(_redis_key(stream), settings.TRANSPORT_RESUME_TTL_SECONDS)


def resolve(position: str) -> "Position | None":
    """The Position a string names, or None if its base is gone (synchronous: run it in a
    thread). BadPosition if malformed."""
    stream, generation, entries = parse(position)
    raw = cast(str | None, redis_clients.client().hget(_redis_key(stream), format(generation, "x")))
    if raw is None:
        return None
    base: list[list] = json.loads(raw)
    resolved = Position(stream, generation, {room: number for room, number in base})
    for ref, number in entries:
        if len(ref) == 32:
            resolved.move(str(uuid.UUID(ref)), number)
        elif len(ref) == 33:
            resolved.move(board_key(str(uuid.UUID(ref[1:]))), number)
        else:
            index = int(ref, 16)
            if index >= len(base):
                raise BadPosition("bad room index")
            resolved.move(base[index][0], number)
    return resolved


class Position:
    """A stream's position as it writes frames: a base plus the rooms moved since."""

    def __init__(self, stream: str, generation: int, base: dict[str, int]) -> None:
        self.stream = stream
        self.generation = generation
        self.set_base(base)
        self.moved: dict[str, int] = {}

    def set_base(self, base: dict[str, int]) -> None:
        self.base = dict(base)
        self.index = {room: i for i, (room, _) in enumerate(sorted(base.items()))}

    def encode(self) -> str:
        parts = [f"{self.stream}-{self.generation:x}"]
        for room, number in self.moved.items():
            if room in self.index:
                ref = format(self.index[room], "x")
            elif room.startswith(BOARD):
                ref = "b" + uuid.UUID(room[len(BOARD) :]).hex
            else:
                ref = uuid.UUID(room).hex
            parts.append(f"{ref}-g" if number == GONE else f"{ref}-{number:x}")
        return ".".join(parts)

    def move(self, room: str, number: int) -> None:
        if self.base.get(room) == number:
            self.moved.pop(room, None)
        else:
            self.moved[room] = number

    def rooms(self) -> dict[str, int]:
        """{room id: number}: every change of each room up to its number was written."""
        return {
            room: number
            for room, number in (self.base | self.moved).items()
            if number != GONE and not room.startswith(BOARD)
        }

    def boards(self) -> dict[str, int]:
        """{board id: number}: every update of each board up to its number was written."""
        return {
            key[len(BOARD) :]: number
            for key, number in (self.base | self.moved).items()
            if number != GONE and key.startswith(BOARD)
        }

    def forget(self, room: str) -> None:
        """The user left the room (and was told: room.removed)."""
        if room in self.index:
            self.moved[room] = GONE
        else:  # joined and left since the base: a resume need not know it ever existed
            self.moved.pop(room, None)

    def wants_rebase(self) -> bool:
        return len(self.moved) > REBASE_AFTER or any(room not in self.index for room in self.moved)
