"""docs/protocol.md and the code agree, and the socket and REST answer the same input the same way:
the same code and the same `fields` for the same mistake, validated by the same code."""

import uuid

import pytest
from channels.db import database_sync_to_async

from messaging.services import message_send
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for
from tests.sockets import connect, receive_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def pair(make_user):
    def build():
        ada, bob = make_user("ada"), make_user("bob")
        room = room_create(creator=ada, name="Pair", kind=Room.Kind.PRIVATE)
        Membership.objects.create(room=room, user=bob, role="member")
        message = message_send(user=ada, room_id=room.pk, content="hello", client_msg_id=uuid.uuid4())[0]
        return {"ada": ada, "bob": bob, "room": room, "message": message}

    return database_sync_to_async(build)


def _rest(user, method: str, path: str, body: dict | None = None):
    client = client_for(user)
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


# (socket frame, the same request over REST, the code, the fields named)
CASES = [
    (
        {"type": "message.send", "content": "hi"},
        ("post", "messages/", {"content": "hi"}),
        "invalid",
        ["client_msg_id"],
    ),
    (
        {"type": "message.send", "content": "", "client_msg_id": "KEY"},
        ("post", "messages/", {"content": "", "client_msg_id": "KEY"}),
        "invalid",
        ["content"],
    ),
    (
        {"type": "message.send", "content": "hi", "client_msg_id": "not-a-uuid"},
        ("post", "messages/", {"content": "hi", "client_msg_id": "not-a-uuid"}),
        "invalid",
        ["client_msg_id"],
    ),
    ({"type": "history", "limit": 101}, ("get", "messages/?limit=101", None), "invalid", ["limit"]),
    (
        {"type": "history", "before_sequence": 0},
        ("get", "messages/?before_sequence=0", None),
        "invalid",
        ["before_sequence"],
    ),
    ({"type": "sync"}, ("get", "changes/", None), "invalid", ["after_sequence"]),
    (
        {"type": "sync", "after_sequence": -1},
        ("get", "changes/?after_sequence=-1", None),
        "invalid",
        ["after_sequence"],
    ),
    ({"type": "receipt"}, ("post", "receipts/", {}), "invalid", ["non_field_errors"]),
    (
        {"type": "receipt", "read_sequence": True},
        ("post", "receipts/", {"read_sequence": True}),
        "invalid",
        ["read_sequence"],
    ),
]


@pytest.mark.parametrize("frame,request_,code,fields", CASES)
async def test_the_socket_and_rest_give_the_same_error_for_the_same_mistake(pair, frame, request_, code, fields):
    people = await pair()
    room = str(people["room"].pk)
    key = str(uuid.uuid4())
    frame = {**frame, "room": room} | ({"client_msg_id": key} if frame.get("client_msg_id") == "KEY" else {})
    method, suffix, body = request_
    if body and body.get("client_msg_id") == "KEY":
        body = {**body, "client_msg_id": key}
    socket, _ = await connect(people["ada"])

    await socket.send_json_to(frame)
    error = await receive_type(socket, "error")
    response = await database_sync_to_async(_rest)(people["ada"], method, f"/api/v1/rooms/{room}/{suffix}", body)

    rest = response.json()["error"]
    assert response.status_code == 400
    assert (error["code"], sorted(error["fields"])) == (code, fields)
    assert (rest["code"], sorted(rest["fields"])) == (code, fields)
    assert error["fields"] == rest["fields"] and error["message"] == rest["message"]
    await socket.disconnect()


async def test_a_missing_or_ill_typed_room_is_invalid_with_its_field(pair):
    people = await pair()
    socket, _ = await connect(people["ada"])
    for room in (None, 7):
        frame = {"type": "message.send", "content": "hi", "client_msg_id": str(uuid.uuid4())}
        await socket.send_json_to(frame if room is None else frame | {"room": room})
        error = await receive_type(socket, "error")
        assert (error["code"], list(error["fields"])) == ("invalid", ["room"])
    await socket.disconnect()


async def test_edits_and_deletes_are_acked_even_when_they_change_nothing(pair, events):
    people = await pair()
    room, message = str(people["room"].pk), people["message"]
    socket, _ = await connect(people["ada"])
    events.clear()

    await socket.send_json_to({"type": "message.edit", "room": room, "id": str(message.id), "content": "hello"})
    unchanged = await receive_type(socket, "message.edit.ack")
    await socket.send_json_to({"type": "message.edit", "room": room, "id": str(message.id), "content": "edited"})
    edited = await receive_type(socket, "message.edit.ack")
    await socket.send_json_to({"type": "message.delete", "room": room, "id": str(message.id)})
    deleted = await receive_type(socket, "message.delete.ack")
    await socket.send_json_to({"type": "message.delete", "room": room, "id": str(message.id)})
    again = await receive_type(socket, "message.delete.ack")

    assert (unchanged["id"], unchanged["message"]["content"], unchanged["message"]["edited_at"]) == (
        str(message.id),
        "hello",
        None,
    )
    assert edited["message"]["content"] == "edited" and edited["message"]["edited_at"]
    assert deleted["message"]["deleted"] and again["message"]["deleted"]
    # Only the two real changes were announced to the room, numbered 2 and 3.
    changes = [f for f in events.frames(group=f"room.{room}") if f["type"].startswith("message.")]
    assert [(f["type"], f["sequence"]) for f in changes] == [
        ("message.edit", 2),
        ("message.delete", 3),
    ]
    await socket.disconnect()


async def test_typing_from_a_non_member_is_answered_not_dropped(pair, make_user):
    people = await pair()
    outsider = await database_sync_to_async(make_user)("outsider")
    socket, _ = await connect(outsider)

    await socket.send_json_to({"type": "typing", "room": str(people["room"].pk)})

    assert (await receive_type(socket, "error"))["code"] == "not_found"
    await socket.disconnect()


async def test_history_is_not_clamped_and_sync_pages_by_the_same_limit(pair):
    people = await pair()
    room = str(people["room"].pk)
    socket, _ = await connect(people["ada"])

    await socket.send_json_to({"type": "history", "room": room, "limit": 100})
    page = await receive_type(socket, "history.page")
    await socket.send_json_to({"type": "sync", "room": room, "after_sequence": 0, "limit": 1})
    batch = await receive_type(socket, "sync.batch")

    assert [m["content"] for m in page["messages"]] == ["hello"]
    assert (len(batch["events"]), batch["last_sequence"], batch["has_more"]) == (1, 1, False)
    await socket.disconnect()
