import uuid

import pytest
from asgiref.sync import async_to_sync

from messaging import services
from messaging.models import Message, SentMessageKey
from messaging.services import amessage_send_many, message_send, message_send_many
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(make_user):
    owner = make_user("owner")
    return room_create(creator=owner, name="Team", kind=Room.Kind.PRIVATE)


def url(room, suffix="messages/"):
    return f"/api/v1/rooms/{room.pk}/{suffix}"


def send(room, user, content="hello", client_msg_id=None):
    return client_for(user).post(url(room), {"content": content, "client_msg_id": str(client_msg_id or uuid.uuid4())})


def test_it_sends_and_returns_the_message_shape(room):
    key = uuid.uuid4()
    response = send(room, room.created_by, "<b>hi</b>", key)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "room",
        "sequence",
        "sender",
        "content",
        "client_msg_id",
        "created_at",
        "edited_at",
        "deleted",
        "html",  # formatting (issue 16 part B)
        # Threads and reactions (issue 16).
        "changed_sequence",
        "reply_to",
        "reply_count",
        "last_reply_at",
        "reactions",
        # Mentions (issue 16, docs/notifications.md).
        "mentions",
        "mentions_room",
        # Attachments (issue 16, docs/attachments.md).
        "attachments",
    }
    assert body["edited_at"] is None and body["deleted"] is False
    assert body["room"] == str(room.pk) and body["sequence"] == 1
    assert body["sender"] == {
        "id": room.created_by.pk,
        "username": "owner",
        "display_name": "owner",
        "avatar_url": None,
    }
    assert body["content"] == "<b>hi</b>" and body["client_msg_id"] == str(key)


def test_resending_the_same_client_msg_id_returns_the_same_message(room):
    key = uuid.uuid4()
    first = send(room, room.created_by, "once", key)
    second = send(room, room.created_by, "once", key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Message.objects.filter(room=room).count() == 1
    room.refresh_from_db()
    assert room.last_sequence == 1


def test_a_client_msg_id_from_another_room_is_a_conflict(room):
    other = room_create(creator=room.created_by, name="Other")
    key = uuid.uuid4()
    send(room, room.created_by, "a", key)
    response = send(other, room.created_by, "b", key)
    assert response.status_code == 409 and response.json()["error"]["code"] == "client_msg_id_reused"
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "data,field",
    [
        ({"content": "", "client_msg_id": str(uuid.uuid4())}, "content"),
        ({"content": "   \n", "client_msg_id": str(uuid.uuid4())}, "content"),
        ({"client_msg_id": str(uuid.uuid4())}, "content"),
        ({"content": "hi"}, "client_msg_id"),
        ({"content": "hi", "client_msg_id": "not-a-uuid"}, "client_msg_id"),
    ],
)
def test_bad_input_is_rejected_and_writes_nothing(room, data, field):
    response = client_for(room.created_by).post(url(room), data)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Message.objects.exists() and not SentMessageKey.objects.exists()
    room.refresh_from_db()
    assert room.last_sequence == 0


def test_content_over_4000_characters_is_too_large(room):
    assert send(room, room.created_by, "x" * 4000).status_code == 201
    response = send(room, room.created_by, "x" * 4001)
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_large"
    assert Message.objects.count() == 1


def test_viewers_read_but_cannot_send(room, make_user):
    viewer = make_user("viewer")
    Membership.objects.create(room=room, user=viewer, role="viewer")
    send(room, room.created_by, "hi")
    assert client_for(viewer).get(url(room)).status_code == 200
    response = send(room, viewer, "me too")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert Message.objects.count() == 1 and SentMessageKey.objects.count() == 1


def test_pagination_forward_and_backward(room):
    for i in range(1, 8):
        message_send(user=room.created_by, room_id=room.pk, content=f"m{i}", client_msg_id=uuid.uuid4())
    api = client_for(room.created_by)

    newest = api.get(url(room), {"limit": 3}).json()
    assert [m["sequence"] for m in newest["results"]] == [7, 6, 5] and newest["has_more"] is True
    older = api.get(url(room), {"before_sequence": 5, "limit": 3}).json()
    assert [m["sequence"] for m in older["results"]] == [4, 3, 2] and older["has_more"] is True
    oldest = api.get(url(room), {"before_sequence": 2, "limit": 3}).json()
    assert [m["sequence"] for m in oldest["results"]] == [1] and oldest["has_more"] is False

    forward = api.get(url(room), {"after_sequence": 0, "limit": 4}).json()
    assert [m["sequence"] for m in forward["results"]] == [1, 2, 3, 4] and forward["has_more"] is True
    rest = api.get(url(room), {"after_sequence": 4, "limit": 4}).json()
    assert [m["sequence"] for m in rest["results"]] == [5, 6, 7] and rest["has_more"] is False
    assert api.get(url(room), {"after_sequence": 7}).json() == {"results": [], "has_more": False}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"after_sequence": -1}, {"after_sequence": 1, "before_sequence": 5}],
)
def test_pagination_bounds_are_enforced(room, params):
    response = client_for(room.created_by).get(url(room), params)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_a_page_of_100_takes_a_fixed_number_of_queries(room, sql_statements):
    for i in range(120):
        message_send(user=room.created_by, room_id=room.pk, content=f"m{i}", client_msg_id=uuid.uuid4())
    api = client_for(room.created_by)
    counts = []
    for limit in (1, 100):
        with sql_statements.recording():
            response = api.get(url(room), {"limit": limit})
        assert len(response.json()["results"]) == limit
        counts.append(len(sql_statements))
    assert counts[0] == counts[1] <= 4, sql_statements.statements


def requests_for(room, count: int) -> list[dict]:
    return [
        {"user": room.created_by, "room_id": room.pk, "content": f"m{i}", "client_msg_id": uuid.uuid4()}
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 25])
def test_send_takes_a_fixed_number_of_queries(room, sql_statements, count):
    """Counted where the send runs: psycopg's cursors (the statement goes through a raw psycopg
    cursor that Django's query capture never sees). One statement whatever the batch size, in a
    savepoint here (inside the test's transaction; on its own it is BEGIN ... COMMIT)."""
    message_send(user=room.created_by, room_id=room.pk, content="warm", client_msg_id=uuid.uuid4())
    with sql_statements.recording():
        results = message_send_many(requests=requests_for(room, count))
    assert [(message.sequence, created) for message, created in results] == [(n, True) for n in range(2, count + 2)]
    assert sql_statements.labels(send=services._SEND) == ['SAVEPOINT "…"', "send", 'RELEASE SAVEPOINT "…"']


def test_a_rest_send_runs_the_send_statement_and_nothing_else(room, sql_statements):
    send(room, room.created_by, "warm")
    with sql_statements.recording():
        response = send(room, room.created_by, "hi")
    assert response.status_code == 201 and response.json()["sequence"] == 2
    assert sql_statements.labels(send=services._SEND) == ['SAVEPOINT "…"', "send", 'RELEASE SAVEPOINT "…"']


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [1, 25])
def test_a_socket_send_takes_one_statement_whatever_the_batch(room, sql_statements, count):
    """The socket's path (core.asyncdb's own AsyncConnection, in autocommit): the send statement
    is its own transaction, so a batch of any size is one statement and no BEGIN or COMMIT."""

    async def warm_then_send() -> list:
        await amessage_send_many(requests=requests_for(room, 1))  # opens this loop's connection
        with sql_statements.recording():
            return await amessage_send_many(requests=requests_for(room, count))

    results = async_to_sync(warm_then_send)()
    assert [(message.sequence, created) for message, created in results] == [(n, True) for n in range(2, count + 2)]
    assert sql_statements.labels(send=services._SEND) == ["send"]
