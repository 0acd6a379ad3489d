"""Presence and typing, kept in Redis only (nothing here is worth a database row).

Presence: each socket heartbeats every 30 s and counts as alive for 60 s (a sorted set of the
user's sockets scored by expiry, so dead sockets age out without a cleanup job). A user is
online if any socket is alive and they were active in the last 10 minutes, away if sockets are
alive but idle, offline if none is alive. Only transitions are announced, to the rooms the user
is in. The status change is decided atomically in Redis (a Lua script), so two tabs racing never
announce the same transition twice.
"""

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import cast

from accounts.models import User
from core import metrics, redis_clients
from core.batches import Batches
from core.events import dumps, publishing, room_group, send_event
from core.loops import per_loop
from rooms import access
from rooms.payloads import user_payload
from rooms.selectors import aroom_ids_of, membership_get, room_members

SOCKET_TTL_SECONDS = 60
AWAY_AFTER_SECONDS = 10 * 60
TYPING_INTERVAL_MS = 2000
HEARTBEAT_FLUSH_SECONDS = 1.0

logger = logging.getLogger(__name__)

# One script call applies a batch of beats (or disconnects), atomically, and answers only the
# transitions, so the usual batch (nothing changed) costs one call and an empty reply.
# KEYS: per beat, the user's sockets zset, last-active string and announced-status string
# ARGV: now, socket ttl, away after; then per beat: socket id, "beat" | "gone", active (1/0)
# Returns, flat, for each beat that changed its user's status: index (1-based), new status, last
# active. Two beats of one user in a batch announce a change once.
_TRANSITIONS = """
local now, ttl, away = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local changed = {}
for i = 1, #KEYS / 3 do
  local sockets, active, announced = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local socket, mode = ARGV[3 * i + 1], ARGV[3 * i + 2]
  if mode == "beat" then
    redis.call("ZADD", sockets, now + ttl, socket)
    redis.call("EXPIRE", sockets, ttl * 2)
    if ARGV[3 * i + 3] == "1" or redis.call("EXISTS", active) == 0 then
      redis.call("SET", active, ARGV[1])
    end
  else
    redis.call("ZREM", sockets, socket)
  end
  redis.call("ZREMRANGEBYSCORE", sockets, "-inf", now)
  local last_active = tonumber(redis.call("GET", active) or "0")
  local status = "offline"
  if redis.call("ZCARD", sockets) > 0 then
    if now - last_active >= away then status = "away" else status = "online" end
  end
  local previous = redis.call("GET", announced) or "offline"
  redis.call("SET", announced, status, "EX", 86400)
  if status ~= previous then
    table.insert(changed, i)
    table.insert(changed, status)
    table.insert(changed, tostring(last_active))
  end
end
return changed
"""
# A beat: (user, socket id, "beat" | "gone", active).
Beat = tuple[User, str, str, bool]
# At most this many beats per script call, so one call never holds Redis for long.
SCRIPT_BATCH = 1000


# The script on this loop's asyncio client (registered once: it hashes the source).
_transition_script = per_loop(lambda: redis_clients.aclient().register_script(_TRANSITIONS))


def _keys(user_id: int) -> list[str]:
    return [
        f"parley:presence:{user_id}:sockets",
        f"parley:presence:{user_id}:active",
        f"parley:presence:{user_id}:status",
    ]


def _iso(epoch: float) -> str | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat() if epoch else None


def _script_input(beats: list[Beat]) -> tuple[list[str], list]:
    keys: list[str] = []
    args: list[float | str] = [time.time(), SOCKET_TTL_SECONDS, AWAY_AFTER_SECONDS]
    for user, socket_id, mode, active in beats:
        keys += _keys(user.pk)
        args += [socket_id, mode, int(active)]
    return keys, args


def _transitions(beats: list[Beat], reply: list) -> list[tuple[User, str, str]]:
    """(user, new status, last active) for each change the script reported."""
    return [(beats[reply[i] - 1][0], reply[i + 1], reply[i + 2]) for i in range(0, len(reply), 3)]


def _announce_presence(user: User, status: str, last_active: str, rooms: Iterable[str]) -> None:
    if not rooms:
        return  # nobody shares a room with them
    frame = {"type": "presence", "user": user_payload(user), "status": status, "last_seen_at": _iso(float(last_active))}
    send_event([room_group(room) for room in rooms], {"type": "user.presence", "user": user.pk, "text": dumps(frame)})


async def _update(beats: list[Beat], known_rooms: dict[int, Iterable[str]] | None = None) -> None:
    """Apply beats in Redis: one script call per SCRIPT_BATCH beats (pipelined) and no database
    read for the common case (no transition); only transitions read their users' rooms, to
    announce them (unless `known_rooms` has them), in one statement for the whole batch."""
    started = time.perf_counter()
    script = _transition_script()
    chunks = [beats[i : i + SCRIPT_BATCH] for i in range(0, len(beats), SCRIPT_BATCH)]
    if len(chunks) == 1:
        # The usual batch (a few sockets opening or closing, a second's beats): one EVALSHA. In a
        # pipeline, redis-py asks SCRIPT EXISTS first on every execute, a round trip more (it
        # was one per socket opened and one per socket closed; docs/performance.md).
        keys, args = _script_input(chunks[0])
        replies = [await script(keys=keys, args=args)]
    else:
        # As a context, the pipeline is reset even when Redis fails it (else redis-py warns of an
        # unclosed pipeline for every failed update).
        async with redis_clients.aclient().pipeline(transaction=False) as pipe:
            for chunk in chunks:
                keys, args = _script_input(chunk)
                await script(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
    changes = [change for chunk, reply in zip(chunks, replies, strict=True) for change in _transitions(chunk, reply)]
    known = known_rooms or {}
    unknown = sorted({user.pk for user, _, _ in changes if user.pk not in known})
    read = await aroom_ids_of(user_ids=unknown) if unknown else {}  # one statement for them all
    async with publishing():
        for user, status, last_active in changes:
            rooms = known[user.pk] if user.pk in known else read.get(user.pk, [])
            _announce_presence(user, status, last_active, rooms)
            metrics.presence_transitions((status,))
    metrics.PRESENCE_UPDATE.observe(time.perf_counter() - started)


async def presence_heartbeat(*, user: User, socket_id: str, active: bool, rooms: Iterable[str] | None = None) -> None:
    """A socket is alive (and the user did something since the last beat, if `active`), at once:
    a socket's first beat makes its user "online" now. Later beats go through `heartbeats()`.
    `rooms`: the user's rooms if the caller has just read them (a new socket), to announce a
    transition to without reading them again. The first beats of sockets that connect together
    go in one script call (core.batches), with the goodbyes of those that close meanwhile."""
    await _beats_now().submit(((user, socket_id, "beat", active), rooms))


async def _beats_now_update(requests: list[tuple[Beat, Iterable[str] | None]]) -> list[None]:
    known_rooms = {beat[0].pk: rooms for beat, rooms in requests if rooms is not None}
    await _update([beat for beat, _ in requests], known_rooms or None)
    return [None] * len(requests)


# A socket's first beat and its goodbye: at once, but those of the sockets that open and close
# together share a script call (a storm's thousands of closes were a round trip each).
_beats_now = per_loop(lambda: Batches(_beats_now_update))


async def presence_disconnect(*, user: User, socket_id: str) -> None:
    """The socket is gone. A periodic beat of it still waiting in this process is dropped first,
    so it cannot bring the socket back to life after this."""
    await heartbeats().forget(socket_id)
    await _beats_now().submit(((user, socket_id, "gone", False), None))


class HeartbeatBatcher:
    """The periodic beats of every socket in this process go to Redis together, at most once per
    HEARTBEAT_FLUSH_SECONDS: 10,000 sockets beat 333 times a second, and one script call costs far
    less than 333 round trips (or 333 pipelined calls). A beat is only a refresh of a 60 s lease,
    so a second's delay changes nothing but an away -> online transition, which may show a second
    later."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[User, bool]] = {}
        self.in_flight: dict[str, tuple[User, bool]] = {}  # the batch being written now
        self.flushing: asyncio.Task | None = None

    def beat(self, *, user: User, socket_id: str, active: bool) -> None:
        earlier = self.waiting.get(socket_id)
        self.waiting[socket_id] = (user, active or (earlier is not None and earlier[1]))
        if self.flushing is None:
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def forget(self, socket_id: str) -> None:
        self.waiting.pop(socket_id, None)
        if socket_id in self.in_flight and self.flushing is not None:
            await asyncio.shield(self.flushing)  # its beat is on the wire: let it land first

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(HEARTBEAT_FLUSH_SECONDS)
            batch = self.in_flight = self.waiting
            self.waiting = {}
            await _update([(user, socket_id, "beat", active) for socket_id, (user, active) in batch.items()])
        except Exception:  # Redis away: sockets beat again in 30 s, and leases last 60
            logger.exception("heartbeat flush failed")
        finally:
            self.in_flight = {}
            self.flushing = None
            if self.waiting and not cast(asyncio.Task, asyncio.current_task()).cancelling():  # not when shutting down
                self.flushing = asyncio.get_running_loop().create_task(self._flush())


heartbeats = per_loop(HeartbeatBatcher)


def presence_of(*, user_ids: list[int]) -> dict[int, dict]:
    """{user id: {"status", "last_seen_at"}} computed from what is alive right now."""
    now = time.time()
    pipe = redis_clients.client().pipeline(transaction=False)
    for user_id in user_ids:
        sockets, active, _ = _keys(user_id)
        pipe.zcount(sockets, now, "+inf")
        pipe.get(active)
    replies = pipe.execute()
    result = {}
    for index, user_id in enumerate(user_ids):
        alive, last_active = replies[2 * index], float(replies[2 * index + 1] or 0)
        if not alive:
            status = "offline"
        else:
            status = "away" if now - last_active >= AWAY_AFTER_SECONDS else "online"
        result[user_id] = {"status": status, "last_seen_at": _iso(last_active)}
    return result


def room_presence(*, user: User, room_id: object) -> list[dict]:
    membership = membership_get(room_id=room_id, user=user)
    members = list(room_members(room=membership.room))
    states = presence_of(user_ids=[m.user_id for m in members])
    return [{"user": user_payload(m.user), **states[m.user_id]} for m in members]


def typing_notify(*, user: User, room_id: object) -> bool:
    """Tell the room's other members that `user` is typing. At most one per 2 s per user per room
    goes through (the rest are dropped: typing is a hint); never stored. True if relayed."""
    membership = membership_get(room_id=room_id, user=user)
    access.require_send(membership)
    room = str(membership.room.pk)
    if not redis_clients.client().set(f"parley:typing:{room}:{user.pk}", 1, nx=True, px=TYPING_INTERVAL_MS):
        metrics.TYPING_DROPPED.inc()
        return False
    metrics.RELAYED.inc()
    frame = dumps({"type": "typing", "room": room, "user": user_payload(user)})
    send_event([room_group(room)], {"type": "room.relay", "room": room, "exclude_user": user.pk, "text": frame})
    return True
