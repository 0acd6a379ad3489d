"""Read receipts, unread counts, presence and typing, on real Redis and PostgreSQL."""

import asyncio
import time

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings

from core import asyncdb
from messaging import services
from messaging.selectors import unread_counts
from presence import services as presence
from rooms.models import Membership, Room
from tests.conftest import await_until, client_for, frames_before_marker, room_with
from tests.conftest import send_message as send
from tests.sockets import TIMEOUT, connect, receive_type


@pytest.fixture
def trio(make_user):
    ada, bob, cy = make_user("ada"), make_user("bob"), make_user("cy")
    room = room_with(ada, "Trio", Room.Kind.PRIVATE, members={bob: "member", cy: "viewer"})
    return {"room": room, "ada": ada, "bob": bob, "cy": cy}


def marks(room, user):
    membership = Membership.objects.get(room=room, user=user)
    return membership.delivered_sequence, membership.read_sequence


# -- receipts --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_receipts_only_move_forward_and_never_past_the_end(trio):
    room, bob = trio["room"], trio["bob"]
    for _ in range(5):
        send(room, trio["ada"])
    api = client_for(bob)
    url = f"/api/v1/rooms/{room.pk}/receipts/"
    assert api.post(url, {"delivered_sequence": 4, "read_sequence": 2}).json() == {
        "delivered_sequence": 4,
        "read_sequence": 2,
    }
    assert api.post(url, {"delivered_sequence": 1, "read_sequence": 1}).json() == {
        "delivered_sequence": 4,
        "read_sequence": 2,
    }
    assert api.post(url, {"read_sequence": 99}).json() == {"delivered_sequence": 5, "read_sequence": 5}
    assert marks(room, bob) == (5, 5)
    for bad in ({}, {"read_sequence": -1}, {"delivered_sequence": "x"}):
        assert api.post(url, bad).status_code == 400
    assert marks(room, bob) == (5, 5)


@pytest.mark.django_db
def test_outsiders_cannot_post_receipts(trio, make_user):
    response = client_for(make_user("eve")).post(f"/api/v1/rooms/{trio['room'].pk}/receipts/", {"read_sequence": 1})
    assert response.status_code == 404


@pytest.mark.django_db
def test_the_sender_sees_who_received_and_read_and_privacy_hides_reads(trio):
    room, ada, bob, cy = trio["room"], trio["ada"], trio["bob"], trio["cy"]
    message = send(room, ada, "did you see this?")
    services.receipt_update(user=bob, room_id=room.pk, read_sequence=1)
    services.receipt_update(user=cy, room_id=room.pk, read_sequence=1)
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/receipts/"
    body = client_for(ada).get(url).json()
    assert [u["username"] for u in body["delivered_to"]] == ["bob", "cy"]
    assert [u["username"] for u in body["read_by"]] == ["bob", "cy"]

    client_for(cy).patch("/api/v1/me/", {"send_read_receipts": False})
    body = client_for(ada).get(url).json()
    assert [u["username"] for u in body["read_by"]] == ["bob"]
    assert [u["username"] for u in body["delivered_to"]] == ["bob", "cy"]
    assert client_for(bob).get(url).status_code == 403  # not bob's message


@pytest.mark.django_db
def test_unread_counts_ignore_my_own_and_deleted_messages(trio):
    room, ada, bob = trio["room"], trio["ada"], trio["bob"]
    send(room, ada, "one")
    doomed = send(room, ada, "two")
    send(room, bob, "mine")
    send(room, ada, "three")
    services.message_delete(user=ada, room_id=room.pk, message_id=doomed.id)
    assert unread_counts(user_id=bob.pk) == {str(room.pk): 2}
    services.receipt_update(user=bob, room_id=room.pk, read_sequence=3)
    assert unread_counts(user_id=bob.pk) == {str(room.pk): 1}
    rooms = client_for(bob).get("/api/v1/rooms/").json()["results"]
    assert rooms[0]["unread"] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_receipt_frames_reach_others_and_my_other_devices(trio):
    people = await database_sync_to_async(lambda: trio)()
    room, ada, bob, cy = people["room"], people["ada"], people["bob"], people["cy"]
    await database_sync_to_async(send)(room, ada, "hello")
    ada_socket, _ = await connect(ada)
    bob_phone, ready = await connect(bob)
    bob_laptop, _ = await connect(bob)
    assert ready["unread"] == {str(room.pk): 1}

    await bob_phone.send_json_to({"type": "receipt", "room": str(room.pk), "delivered_sequence": 1, "read_sequence": 1})
    seen_by_ada = await receive_type(ada_socket, "receipt")
    assert seen_by_ada == {
        "type": "receipt",
        "room": str(room.pk),
        "user": {"id": bob.pk, "username": "bob", "display_name": "bob", "avatar_url": None},
        "delivered_sequence": 1,
        "read_sequence": 1,
    }
    assert (await receive_type(bob_laptop, "receipt"))["read_sequence"] == 1

    # cy hides reads: ada learns of the delivery only; cy's own devices still get the real mark.
    cy.send_read_receipts = False
    await database_sync_to_async(cy.save)()
    cy_socket, _ = await connect(cy)
    await cy_socket.send_json_to({"type": "receipt", "room": str(room.pk), "read_sequence": 1})
    hidden = await receive_type(ada_socket, "receipt")
    assert hidden["user"]["username"] == "cy" and hidden["delivered_sequence"] == 1 and hidden["read_sequence"] is None
    assert (await receive_type(cy_socket, "receipt"))["read_sequence"] == 1
    await cy_socket.send_json_to({"type": "receipt", "room": str(room.pk)})
    assert (await receive_type(cy_socket, "error"))["code"] == "invalid"
    for socket in (ada_socket, bob_phone, bob_laptop, cy_socket):
        await socket.disconnect(timeout=TIMEOUT)


# -- presence --------------------------------------------------------------------------------


async def next_presence(socket, username: str) -> dict:
    while True:
        frame = await receive_type(socket, "presence")
        if frame["user"]["username"] == username:
            return frame


async def connect_watcher(user):
    """A socket of `user` that has seen its own arrival announced (it comes after session.ready),
    so that nothing about it is still on its way when a test looks at what the socket got."""
    socket, _ = await connect(user)
    assert (await next_presence(socket, user.username))["status"] == "online"
    return socket


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_presence_combines_two_tabs_and_only_announces_transitions(trio):
    people = await database_sync_to_async(lambda: trio)()
    room, ada, bob = people["room"], people["ada"], people["bob"]
    watcher = await connect_watcher(ada)

    tab1, _ = await connect(bob)
    online = await next_presence(watcher, "bob")
    assert online["status"] == "online" and online["last_seen_at"]
    tab2, _ = await connect(bob)
    await tab2.send_json_to({"type": "heartbeat", "active": True})
    await tab2.disconnect(timeout=TIMEOUT)  # one tab closed: still online, nothing announced
    # disconnect() returns once the consumer has handled it (and published what it had to).
    assert await frames_before_marker(watcher) == []
    api_view = await database_sync_to_async(presence.room_presence)(user=ada, room_id=room.pk)
    assert {p["user"]["username"]: p["status"] for p in api_view}["bob"] == "online"

    await tab1.disconnect(timeout=TIMEOUT)
    offline = await next_presence(watcher, "bob")
    assert offline["status"] == "offline"
    await watcher.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_idle_users_become_away_and_come_back_online(trio):
    people = await database_sync_to_async(lambda: trio)()
    ada, bob = people["ada"], people["bob"]
    watcher, _ = await connect(ada)
    tab, _ = await connect(bob)
    assert (await next_presence(watcher, "bob"))["status"] == "online"
    # Pretend bob's last activity was 11 minutes ago, then an idle heartbeat arrives.
    redis.Redis.from_url(settings.REDIS_URL).set(f"parley:presence:{bob.pk}:active", time.time() - 11 * 60)
    await tab.send_json_to({"type": "heartbeat", "active": False})
    assert (await next_presence(watcher, "bob"))["status"] == "away"
    await tab.send_json_to({"type": "heartbeat", "active": True})
    assert (await next_presence(watcher, "bob"))["status"] == "online"
    await tab.disconnect(timeout=TIMEOUT)
    await watcher.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
def test_a_socket_that_stops_heartbeating_expires(trio):
    bob = trio["bob"]
    async_to_sync(presence.presence_heartbeat)(user=bob, socket_id="specific.dead!socket", active=True)
    assert presence.presence_of(user_ids=[bob.pk])[bob.pk]["status"] == "online"
    sockets_key = f"parley:presence:{bob.pk}:sockets"
    redis.Redis.from_url(settings.REDIS_URL).zadd(sockets_key, {"specific.dead!socket": time.time() - 1})
    assert presence.presence_of(user_ids=[bob.pk])[bob.pk]["status"] == "offline"


# -- typing ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_typing_is_relayed_to_others_at_most_every_two_seconds(trio, monkeypatch):
    assert presence.TYPING_INTERVAL_MS == 2000
    # A long interval here, so that however slowly the five frames are handled they all fall in it.
    monkeypatch.setattr(presence, "TYPING_INTERVAL_MS", 60_000)
    people = await database_sync_to_async(lambda: trio)()
    room, ada, bob, cy = people["room"], people["ada"], people["bob"], people["cy"]
    ada_socket, _ = await connect(ada)
    bob_socket, _ = await connect(bob)
    frame = {"type": "typing", "room": str(room.pk)}
    for _ in range(5):
        await ada_socket.send_json_to(frame)
    first = await receive_type(bob_socket, "typing")
    assert first == {
        "type": "typing",
        "room": str(room.pk),
        "user": {"id": ada.pk, "username": "ada", "display_name": "ada", "avatar_url": None},
    }
    # Ada's five frames are handled (each relayed or dropped) before her marker is answered.
    assert "typing" not in [f["type"] for f in await frames_before_marker(ada_socket)]  # not told of her own
    assert "typing" not in [f["type"] for f in await frames_before_marker(bob_socket)]  # the other four dropped
    # The interval is the lifetime of a key in Redis, set by the relayed frame; when it ends, the
    # next frame goes through.
    store, key = redis.Redis.from_url(settings.REDIS_URL), f"parley:typing:{room.pk}:{ada.pk}"
    assert 0 < store.pttl(key) <= 60_000
    store.pexpire(key, 1)  # the interval ends
    await await_until(lambda: not store.exists(key), what="the end of the typing interval")
    # From her other tab: this socket's own rate limit (5 typing frames at once) is spent, and the
    # interval is per user and room anyway.
    ada_tab, _ = await connect(ada)
    await ada_tab.send_json_to(frame)
    assert (await receive_type(bob_socket, "typing"))["user"]["username"] == "ada"

    cy_socket, _ = await connect(cy)  # a viewer cannot type
    await cy_socket.send_json_to(frame)
    assert (await receive_type(cy_socket, "error"))["code"] == "forbidden"
    for socket in (ada_socket, ada_tab, bob_socket, cy_socket):
        await socket.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db
def test_typing_in_a_room_you_cannot_see_is_not_found(trio, make_user):
    from core.errors import NotFound

    with pytest.raises(NotFound):
        presence.typing_notify(user=make_user("eve"), room_id=trio["room"].pk)
    with pytest.raises(NotFound):
        presence.typing_notify(user=trio["ada"], room_id="not-a-room")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_periodic_heartbeats_go_to_redis_together_and_never_outlive_a_disconnect(trio):
    """Sockets' periodic beats are written in one pipeline per second; a beat still waiting when
    its socket closes is dropped, so the closed socket does not come back to life."""
    bob = await database_sync_to_async(lambda: trio["bob"])()
    sockets_key = f"parley:presence:{bob.pk}:sockets"
    store = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    batcher = presence.heartbeats()
    for name in ("tab-1", "tab-2", "tab-3"):
        await presence.presence_heartbeat(user=bob, socket_id=name, active=True)
    before = dict(store.zrange(sockets_key, 0, -1, withscores=True))
    for name in ("tab-1", "tab-2", "tab-3"):
        batcher.beat(user=bob, socket_id=name, active=False)
    assert set(batcher.waiting) == {"tab-1", "tab-2", "tab-3"}
    await presence.presence_disconnect(user=bob, socket_id="tab-3")  # closes with its beat queued
    assert set(batcher.waiting) == {"tab-1", "tab-2"}
    await asyncio.wait_for(batcher.flushing, presence.HEARTBEAT_FLUSH_SECONDS + 5)
    after = dict(store.zrange(sockets_key, 0, -1, withscores=True))
    assert set(after) == {"tab-1", "tab-2"}
    assert all(after[name] > before[name] for name in after)  # leases renewed (the flush waits a second)
    assert presence.presence_of(user_ids=[bob.pk])[bob.pk]["status"] == "online"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_one_flush_announces_each_change_once_and_nothing_else(trio, monkeypatch, events):
    """A flush applies every waiting beat in one script call: bob's two idle tabs make him away
    once; cy's beat changes nothing, so nothing is said about cy. With SCRIPT_BATCH at 2, the three
    beats take two calls, and the result is the same."""
    monkeypatch.setattr(presence, "SCRIPT_BATCH", 2)
    people = await database_sync_to_async(lambda: trio)()
    ada, bob, cy = people["ada"], people["bob"], people["cy"]
    watcher = await connect_watcher(ada)
    for user, name in ((bob, "bob-1"), (bob, "bob-2"), (cy, "cy-1")):
        await presence.presence_heartbeat(user=user, socket_id=name, active=True)
    assert (await next_presence(watcher, "bob"))["status"] == "online"
    assert (await next_presence(watcher, "cy"))["status"] == "online"
    redis.Redis.from_url(settings.REDIS_URL).set(f"parley:presence:{bob.pk}:active", time.time() - 11 * 60)
    batcher = presence.heartbeats()
    events.clear()
    for user, name in ((bob, "bob-1"), (cy, "cy-1"), (bob, "bob-2")):
        batcher.beat(user=user, socket_id=name, active=False)
    await asyncio.wait_for(batcher.flushing, presence.HEARTBEAT_FLUSH_SECONDS + 5)
    # The flush has published all it had to say: bob's change, once, and nothing about cy.
    published = [(f["user"]["username"], f["status"]) for f in events.frames("presence")]
    assert published == [("bob", "away")]
    said = [(f["user"]["username"], f["status"]) for f in await frames_before_marker(watcher)]
    assert said == [("bob", "away")]
    await watcher.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_closing_while_redis_does_not_answer_closes_cleanly(make_user, monkeypatch):
    """Seen with 100,000 sockets closing at once: Redis answered too late, presence_disconnect
    raised a timeout and the socket's disconnect crashed. Its presence lease runs out by itself;
    the close must not fail."""
    ada = await database_sync_to_async(make_user)("ada")
    communicator, _ = await connect(ada)
    failed: list[str] = []

    async def too_slow(*, user, socket_id):
        failed.append(socket_id)
        raise redis.exceptions.TimeoutError("Timeout reading from Redis")

    monkeypatch.setattr(presence, "presence_disconnect", too_slow)
    await communicator.disconnect()  # re-raises what the consumer raised
    assert len(failed) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_users_who_go_offline_together_are_announced_after_one_read_of_their_rooms(trio, monkeypatch, events):
    """A storm's closes go offline in one batch: the users' rooms are read in one statement for all
    of them (it was a round trip per user), and each is announced to their room."""
    people = await database_sync_to_async(lambda: trio)()
    users = [people[name] for name in ("ada", "bob", "cy")]
    await asyncio.gather(*(presence.presence_heartbeat(user=u, socket_id=f"tab-{u.pk}", active=True) for u in users))
    reads: list[list[int]] = []
    fetchall = asyncdb.fetchall

    async def counted(statement, params, **kwargs):
        if "FROM rooms_membership" in statement:
            reads.append(params[0])
        return await fetchall(statement, params, **kwargs)

    monkeypatch.setattr(asyncdb, "fetchall", counted)
    events.clear()
    await asyncio.gather(*(presence.presence_disconnect(user=u, socket_id=f"tab-{u.pk}") for u in users))
    assert reads == [sorted(u.pk for u in users)]
    room = f"room.{people['room'].pk}"
    announced = sorted((f["user"]["username"], f["status"]) for f in events.frames("presence", group=room))
    assert announced == [("ada", "offline"), ("bob", "offline"), ("cy", "offline")]
    assert [e.groups for e in events.of_type("user.presence")] == [[room]] * 3


def redis_commands(monkeypatch) -> list[str]:
    """The names of the commands this loop's Redis client sends from now on (in order)."""
    from core import redis_clients

    client = redis_clients.aclient()
    sent: list[str] = []
    execute = client.execute_command

    async def recording(*args, **options):
        sent.append(args[0])
        return await execute(*args, **options)

    monkeypatch.setattr(client, "execute_command", recording)
    return sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_presence_update_is_one_script_call_and_survives_a_forgotten_script(make_user, monkeypatch):
    """A socket opening or closing is one EVALSHA (in a pipeline, redis-py asked SCRIPT EXISTS
    before every execute: a round trip more per socket). A Redis that lost its script cache (a
    restart) gets the script again and the beat still lands."""
    ada = await database_sync_to_async(make_user)("ada")
    sent = redis_commands(monkeypatch)
    await presence.presence_heartbeat(user=ada, socket_id="tab-1", active=True)
    assert [command for command in sent if command != "PUBLISH"] == ["EVALSHA"]
    assert presence.presence_of(user_ids=[ada.pk])[ada.pk]["status"] == "online"

    redis.Redis.from_url(settings.REDIS_URL).script_flush()
    sent.clear()
    await presence.presence_disconnect(user=ada, socket_id="tab-1")
    assert [command for command in sent if command != "PUBLISH"] == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    assert presence.presence_of(user_ids=[ada.pk])[ada.pk]["status"] == "offline"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sockets_that_close_together_say_goodbye_in_one_script_call(make_user, monkeypatch):
    """A storm's closes share a script call, as its first beats do (a round trip each before)."""
    users = [await database_sync_to_async(make_user)(name) for name in ("ada", "bob", "cy")]
    await asyncio.gather(*(presence.presence_heartbeat(user=u, socket_id=f"tab-{u.pk}", active=True) for u in users))
    assert {presence.presence_of(user_ids=[u.pk])[u.pk]["status"] for u in users} == {"online"}
    sent = redis_commands(monkeypatch)
    await asyncio.gather(*(presence.presence_disconnect(user=u, socket_id=f"tab-{u.pk}") for u in users))
    assert [command for command in sent if command != "PUBLISH"] == ["EVALSHA"]
    assert {presence.presence_of(user_ids=[u.pk])[u.pk]["status"] for u in users} == {"offline"}
