"""Input that hurt other users: text PostgreSQL cannot store, JSON nested to break the parser, and
a database that cannot be reached. Each is answered clearly, and one client never fails another's
sends."""

import asyncio
import json
import uuid

import django.db
import pytest
from channels.db import database_sync_to_async
from django.test import Client

from core import asyncdb, jsontext
from messaging import services
from messaging.models import Message, SentMessageKey
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for
from tests.sockets import connect, receive_type

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def room_of_two(make_user):
    def build():
        ada, bob = make_user("ada"), make_user("bob")
        room = room_create(creator=ada, name="Two", kind=Room.Kind.PRIVATE)
        Membership.objects.create(room=room, user=bob, role="member")
        return room, ada, bob

    return database_sync_to_async(build)


def _send(room, content: str) -> str:
    """A message.send frame as a client would write it (JSON escapes kept as escapes)."""
    key = str(uuid.uuid4())
    return '{"type": "message.send", "room": "%s", "client_msg_id": "%s", "content": "%s"}' % (room.pk, key, content)


@pytest.mark.asyncio
@pytest.mark.parametrize("escaped", ["nul \\u0000 byte", "lone \\ud800 surrogate", "lone low \\udfff", "\\u0000"])
async def test_text_postgresql_cannot_store_is_invalid_and_stores_nothing(room_of_two, escaped):
    room, ada, _ = await room_of_two()
    socket, _ = await connect(ada)

    await socket.send_to(text_data=_send(room, escaped))
    error = await receive_type(socket, "error")
    await socket.send_to(text_data=_send(room, "a pair is fine: \\ud83d\\ude00"))
    ack = await receive_type(socket, "message.ack")

    assert (error["code"], list(error["fields"])) == ("invalid", ["content"])
    assert ack["message"]["content"] == "a pair is fine: \U0001f600"
    assert await database_sync_to_async(Message.objects.count)() == 1
    await socket.disconnect()


@pytest.mark.asyncio
async def test_one_client_sending_bad_text_fails_none_of_another_clients_sends(room_of_two, settings):
    """The measured bug: 10 NUL messages from one socket made 9 of 100 sends of an innocent client
    on the same process fail with `internal` (PostgreSQL refused their whole batch)."""
    settings.RATE_LIMITS = {"socket": {}, "user": {}}  # as fast as they can: isolation, not limits
    room, ada, bob = await room_of_two()
    attacker, _ = await connect(ada)
    innocent, _ = await connect(bob)

    for n in range(100):
        if n % 10 == 0:
            await attacker.send_to(text_data=_send(room, "bad \\u0000"))
        await innocent.send_to(text_data=_send(room, f"fine {n}"))
    acks = [await receive_type(innocent, "message.ack") for _ in range(100)]
    errors = [await receive_type(attacker, "error") for _ in range(10)]

    assert sorted(ack["message"]["content"] for ack in acks) == sorted(f"fine {n}" for n in range(100))
    assert {error["code"] for error in errors} == {"invalid"}
    assert await database_sync_to_async(Message.objects.count)() == 100
    for socket in (attacker, innocent):
        await socket.disconnect()


def test_a_batch_the_database_refuses_is_retried_so_only_the_bad_send_fails(make_user, monkeypatch):
    """Whatever the reason a batch's statement fails (here: a NUL that got past validation), its
    sends go again one by one: the others are stored, only the bad one fails."""
    ada = make_user("ada")
    room = room_create(creator=ada, name="Batch")
    monkeypatch.setattr(services, "storable_text", lambda value, field: value)  # let it reach PostgreSQL
    requests = [
        {"user": ada, "room_id": room.pk, "content": content, "client_msg_id": uuid.uuid4()}
        for content in ("one", "two \x00", "three")
    ]

    for send_many in (services.message_send_many, services.amessage_send_many):
        results = (
            send_many(requests=requests)
            if send_many is services.message_send_many
            else asyncio.run(send_many(requests=requests))
        )
        assert [r[0].content if isinstance(r, tuple) else r.code for r in results] == ["one", "internal", "three"]
        requests = [dict(r, client_msg_id=uuid.uuid4()) for r in requests]

    stored = list(Message.objects.filter(room=room).order_by("sequence").values_list("sequence", "content"))
    assert stored == [(1, "one"), (2, "three"), (3, "one"), (4, "three")]  # no hole left by the failure
    assert SentMessageKey.objects.count() == 4


@pytest.mark.asyncio
async def test_json_nested_to_break_the_parser_is_invalid_json_and_keeps_the_socket(room_of_two):
    room, ada, _ = await room_of_two()
    socket, _ = await connect(ada)
    deep = "[" * 10_000 + "]" * 10_000

    await socket.send_to(text_data='{"type": "message.send", "content": %s}' % deep)
    frame_error = await receive_type(socket, "error")
    await socket.send_to(text_data=deep)
    bare_error = await receive_type(socket, "error")
    await socket.send_to(text_data=_send(room, "still here"))

    assert frame_error["code"] == bare_error["code"] == "invalid_json"
    assert (await receive_type(socket, "message.ack"))["message"]["content"] == "still here"
    await socket.disconnect()


def test_rest_refuses_deep_json_and_unstorable_text_with_400(make_user):
    ada = make_user("ada")
    room = room_create(creator=ada, name="Rest")
    api = client_for(ada)
    url = f"/api/v1/rooms/{room.pk}/messages/"
    key = str(uuid.uuid4())

    deep = api.post(url, '{"content": %s}' % ("[" * 10_000 + "]" * 10_000), content_type="application/json")
    nul = api.post(url, '{"content": "a\\u0000b", "client_msg_id": "%s"}' % key, content_type="application/json")
    surrogate = api.patch(f"/api/v1/rooms/{room.pk}/", '{"topic": "x\\udc00y"}', content_type="application/json")

    assert (deep.status_code, deep.json()["error"]["code"]) == (400, "invalid_json")
    assert (nul.status_code, nul.json()["error"]["code"], list(nul.json()["error"]["fields"])) == (
        400,
        "invalid",
        ["content"],
    )
    assert (surrogate.status_code, surrogate.json()["error"]["code"]) == (400, "invalid")
    assert Message.objects.count() == 0


def test_the_depth_cap_leaves_ordinary_json_alone():
    wide = json.dumps({"items": [[i, {"k": [i]}] for i in range(1000)]})  # many brackets, shallow

    assert jsontext.loads(wide)["items"][999] == [999, {"k": [999]}]
    brackets_in_a_string = '{"s": "%s"}' % ("[" * 100)
    assert jsontext.loads(brackets_in_a_string)["s"] == "[" * 100
    with pytest.raises(jsontext.InvalidJson):
        jsontext.loads("[" * (jsontext.MAX_DEPTH + 1) + "]" * (jsontext.MAX_DEPTH + 1))


@pytest.mark.asyncio
async def test_sends_while_postgresql_is_unreachable_answer_unavailable_with_a_retry_hint(room_of_two, monkeypatch):
    room, ada, _ = await room_of_two()
    socket, _ = await connect(ada)
    # The event loop's connection (core.asyncdb) now goes to a port nothing listens on.
    params = asyncdb.connection_params
    monkeypatch.setattr(asyncdb, "connection_params", lambda: params() | {"host": "127.0.0.1", "port": "9"})

    await socket.send_to(text_data=_send(room, "into the void"))
    error = await receive_type(socket, "error")

    assert (error["code"], error["retry_after_ms"]) == ("unavailable", 1000)
    await socket.disconnect()


def test_rest_answers_503_with_retry_after_when_a_dependency_is_down(make_user, monkeypatch):
    ada = make_user("ada")
    room = room_create(creator=ada, name="Down")

    def down(**kwargs):
        raise django.db.OperationalError("connection refused")

    monkeypatch.setattr(services, "message_send", down)
    response = client_for(ada).post(
        f"/api/v1/rooms/{room.pk}/messages/", {"content": "hi", "client_msg_id": str(uuid.uuid4())}, format="json"
    )

    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "unavailable"


def test_an_oversized_body_is_a_json_400(make_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = Client()
    client.force_login(make_user("ada"))

    response = client.post("/api/v1/rooms/", json.dumps({"name": "x" * 2000}), content_type="application/json")

    assert response.status_code == 400 and response["Content-Type"] == "application/json"


def test_the_database_pool_retries_every_second_after_an_outage():
    """core.dbpool's contract with psycopg_pool: reconnect attempts are not spaced out
    exponentially (requests failed 10-18 s after PostgreSQL came back)."""
    from psycopg_pool.base import AttemptWithBackoff

    attempt = AttemptWithBackoff(timeout=300)
    delays = []
    for now in range(0, 50, 10):
        attempt.update_delay(float(now))
        delays.append(attempt.delay)

    assert max(delays) < 1.2
