"""One numbered history per room: edits, deletes, sync over REST and the socket, catch-up."""

import uuid

import pytest
from channels.db import database_sync_to_async

from messaging import services
from messaging.models import Message, MessageRevision
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for, nothing_but_presence, room_with
from tests.conftest import send_message as send
from tests.sockets import TIMEOUT, connect, receive_type


@pytest.fixture
def team(make_user):
    owner, admin, author, viewer = (make_user(n) for n in ("owner", "admin", "author", "viewer"))
    room = room_with(owner, "Team", Room.Kind.PRIVATE, members={admin: "admin", author: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "admin": admin, "author": author, "viewer": viewer}


def apply(state: dict, frame: dict) -> None:
    """What a client does with a numbered change: upsert the message by id."""
    state[frame["message"]["id"]] = frame["message"]


def database_view(room) -> dict:
    from messaging.payloads import message_payload

    return {str(m.id): message_payload(m) for m in Message.objects.filter(room=room).select_related("sender")}


@pytest.mark.django_db
def test_edits_and_deletes_take_numbers_from_the_room_sequence(team):
    room, author = team["room"], team["author"]
    first = send(room, author, "hello")
    edited = services.message_edit(user=author, room_id=room.pk, message_id=first.id, content="hello!")
    second = send(room, author, "bye")
    deleted = services.message_delete(user=team["admin"], room_id=room.pk, message_id=second.id)
    assert (first.sequence, edited.changed_sequence, second.sequence, deleted.changed_sequence) == (1, 2, 3, 4)
    assert edited.sequence == 1 and edited.edited_at is not None
    stored = Message.objects.get(id=second.id)
    assert stored.content == "" and stored.deleted_at is not None
    room.refresh_from_db()
    assert room.last_sequence == 4


@pytest.mark.django_db
def test_a_no_op_edit_or_repeated_delete_uses_no_number(team):
    room, author = team["room"], team["author"]
    message = send(room, author, "same")
    services.message_edit(user=author, room_id=room.pk, message_id=message.id, content="same")
    services.message_delete(user=author, room_id=room.pk, message_id=message.id)
    services.message_delete(user=author, room_id=room.pk, message_id=message.id)
    room.refresh_from_db()
    assert room.last_sequence == 2


@pytest.mark.django_db
def test_only_the_author_edits_and_viewers_never(team):
    room = team["room"]
    message = send(room, team["author"], "mine")
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/"
    for who in ("owner", "admin", "viewer"):
        response = client_for(team[who]).patch(url, {"content": "theirs"})
        assert response.status_code == 403, who
    response = client_for(team["author"]).patch(url, {"content": "mine, edited"})
    assert response.status_code == 200
    assert response.json()["content"] == "mine, edited" and response.json()["edited_at"]
    assert client_for(team["author"]).patch(url, {"content": ""}).status_code == 400


@pytest.mark.django_db
def test_authors_and_admins_delete_members_do_not(team, make_user):
    room = team["room"]
    other = make_user("other")
    Membership.objects.create(room=room, user=other, role="member")
    message = send(room, team["author"], "text")
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/"
    assert client_for(other).delete(url).status_code == 403
    response = client_for(team["admin"]).delete(url)
    assert response.status_code == 200 and response.json()["deleted"] is True and response.json()["content"] == ""


@pytest.mark.django_db
def test_revisions_are_kept_for_admins_and_the_author_and_die_with_the_message(team):
    room, author = team["room"], team["author"]
    message = send(room, author, "v1")
    services.message_edit(user=author, room_id=room.pk, message_id=message.id, content="v2")
    services.message_edit(user=author, room_id=room.pk, message_id=message.id, content="v3")
    url = f"/api/v1/rooms/{room.pk}/messages/{message.id}/revisions/"
    for who in ("admin", "owner", "author"):
        response = client_for(team[who]).get(url)
        assert [r["content"] for r in response.json()["results"]] == ["v1", "v2"], who
    assert client_for(team["viewer"]).get(url).status_code == 403
    services.message_delete(user=author, room_id=room.pk, message_id=message.id)
    assert not MessageRevision.objects.exists()
    assert "v" not in Message.objects.get(id=message.id).content


@pytest.mark.django_db
def test_unknown_or_foreign_message_ids_are_not_found(team, make_user):
    room = team["room"]
    elsewhere = room_create(creator=team["owner"], name="Elsewhere")
    foreign = send(elsewhere, team["owner"], "not here")
    api = client_for(team["owner"])
    for message_id in (uuid.uuid4(), "nonsense", foreign.id):
        response = api.delete(f"/api/v1/rooms/{room.pk}/messages/{message_id}/")
        assert response.status_code == 404
    assert not Message.objects.filter(id=foreign.id, deleted_at__isnull=False).exists()


@pytest.mark.django_db
def test_sync_pages_through_interleaved_changes_each_message_once_in_latest_state(team):
    room, author = team["room"], team["author"]
    messages = [send(room, author, f"m{i}") for i in range(1, 6)]  # numbers 1..5
    services.message_edit(user=author, room_id=room.pk, message_id=messages[1].id, content="m2 edited")  # 6
    services.message_delete(user=author, room_id=room.pk, message_id=messages[3].id)  # 7
    send(room, author, "m6")  # 8
    services.message_edit(user=author, room_id=room.pk, message_id=messages[1].id, content="m2 again")  # 9
    api = client_for(team["viewer"])

    state: dict = {}
    after, pages = 2, 0
    while True:
        body = api.get(f"/api/v1/rooms/{room.pk}/changes/", {"after_sequence": after, "limit": 2}).json()
        numbers = [event["sequence"] for event in body["results"]]
        assert numbers == sorted(numbers) and all(n > after for n in numbers)
        for event in body["results"]:
            apply(state, event)
        after, pages = body["last_sequence"], pages + 1
        if not body["has_more"]:
            break
    assert after == 9 and pages == 3
    # m2 appears once, in its latest state (its creation number 2 was already seen).
    by_content = {m["content"]: m for m in state.values()}
    assert set(by_content) == {"m3", "", "m5", "m6", "m2 again"}
    assert by_content[""]["deleted"] is True and by_content["m2 again"]["sequence"] == 2
    assert api.get(f"/api/v1/rooms/{room.pk}/changes/", {"after_sequence": 9}).json() == {
        "results": [],
        "has_more": False,
        "last_sequence": 9,
    }


@pytest.mark.django_db
def test_an_up_to_date_sync_is_one_query_and_a_member_is_checked_in_one(team, django_assert_num_queries):
    """A reconnecting client is usually up to date (a reconnect storm is thousands of them): the
    access check reads the member's room with the membership, and a cursor at the room's latest
    number reads nothing more. One behind, the change is there (the check is the same)."""
    from messaging import selectors

    room, viewer = team["room"], team["viewer"]
    send(room, team["author"], "m1")
    send(room, team["author"], "m2")
    with django_assert_num_queries(1):
        assert selectors.changes_page(user=viewer, room_id=room.pk, after_sequence=2) == ([], False, 2)
    with django_assert_num_queries(3):  # the check, the changes, the archived days
        messages, has_more, cursor = selectors.changes_page(user=viewer, room_id=room.pk, after_sequence=1)
    assert [m.content for m in messages] == ["m2"] and (has_more, cursor) == (False, 2)


@pytest.mark.django_db
def test_sync_requires_a_cursor_and_membership(team, make_user):
    room = team["room"]
    assert client_for(team["owner"]).get(f"/api/v1/rooms/{room.pk}/changes/").status_code == 400
    assert client_for(make_user("x")).get(f"/api/v1/rooms/{room.pk}/changes/?after_sequence=0").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_socket_sync_sends_batches_until_caught_up(team):
    people = await database_sync_to_async(lambda: team)()
    room, author = people["room"], people["author"]
    await database_sync_to_async(lambda: [send(room, author, f"m{i}") for i in range(150)])()
    socket, ready = await connect(people["viewer"])
    assert ready["rooms"][str(room.pk)] == 150
    await socket.send_json_to({"type": "sync", "room": str(room.pk), "after_sequence": 20})
    first = await receive_type(socket, "sync.batch")
    second = await receive_type(socket, "sync.batch")
    assert (len(first["events"]), first["has_more"], first["last_sequence"]) == (100, True, 120)
    assert (len(second["events"]), second["has_more"], second["last_sequence"]) == (30, False, 150)
    numbers = [e["sequence"] for e in first["events"] + second["events"]]
    assert numbers == list(range(21, 151))
    await socket.send_json_to({"type": "sync", "room": str(room.pk), "after_sequence": -1})
    error = await receive_type(socket, "error")
    assert error["code"] == "invalid" and list(error["fields"]) == ["after_sequence"]
    await socket.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_edits_and_deletes_are_broadcast_with_their_numbers(team):
    people = await database_sync_to_async(lambda: team)()
    room = people["room"]
    author, _ = await connect(people["author"])
    viewer, _ = await connect(people["viewer"])
    await author.send_json_to(
        {"type": "message.send", "room": str(room.pk), "content": "typo", "client_msg_id": str(uuid.uuid4())}
    )
    message = (await receive_type(viewer, "message.new"))["message"]
    await author.send_json_to({"type": "message.edit", "room": str(room.pk), "id": message["id"], "content": "fixed"})
    edit = await receive_type(viewer, "message.edit")
    assert edit["sequence"] == 2 and edit["message"]["content"] == "fixed" and edit["message"]["sequence"] == 1
    await viewer.send_json_to({"type": "message.delete", "room": str(room.pk), "id": message["id"]})
    error = await receive_type(viewer, "error")
    assert error["code"] == "forbidden" and error["ref"] == message["id"]
    await author.send_json_to({"type": "message.delete", "room": str(room.pk), "id": message["id"]})
    delete = await receive_type(viewer, "message.delete")
    assert delete["sequence"] == 3 and delete["message"]["deleted"] is True and delete["message"]["content"] == ""
    await author.disconnect(timeout=TIMEOUT)
    await viewer.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_lost_changes_superseded_later_are_filled_in_order(team, monkeypatch):
    people = await database_sync_to_async(lambda: team)()
    room, author = people["room"], people["author"]
    viewer, _ = await connect(people["viewer"])
    # Lose both the creation (1) and the edit (2) of a message, then deliver message 3 live.
    monkeypatch.setattr(services, "send_event", lambda groups, event: None)
    first = await database_sync_to_async(send)(room, author, "draft")
    await database_sync_to_async(services.message_edit)(
        user=author, room_id=room.pk, message_id=first.id, content="final"
    )
    monkeypatch.undo()
    await database_sync_to_async(send)(room, author, "next")
    filled = await receive_type(viewer, "message.edit")
    live = await receive_type(viewer, "message.new")
    assert (filled["sequence"], filled["message"]["content"]) == (2, "final")
    assert (live["sequence"], live["message"]["content"]) == (3, "next")
    # The gap filler sent 2 then 3 and has nothing left: no number comes twice.
    assert await nothing_but_presence(viewer)
    await viewer.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_client_that_missed_live_events_catches_up_to_exactly_the_database(team):
    people = await database_sync_to_async(lambda: team)()
    room, author = people["room"], people["author"]
    state: dict = {}
    seen = 0

    socket, ready = await connect(people["viewer"])
    for i in range(3):
        await database_sync_to_async(send)(room, author, f"early {i}")
    for _ in range(3):
        frame = await receive_type(socket, "message.new")
        apply(state, frame)
        seen = frame["sequence"]
    await socket.disconnect(timeout=TIMEOUT)  # the client goes away; the world moves on

    def meanwhile():
        ids = [m.id for m in Message.objects.filter(room=room).order_by("sequence")]
        services.message_edit(user=author, room_id=room.pk, message_id=ids[0], content="early 0, edited")
        services.message_delete(user=author, room_id=room.pk, message_id=ids[1])
        for i in range(120):
            send(room, author, f"late {i}")

    await database_sync_to_async(meanwhile)()

    socket, ready = await connect(people["viewer"])
    assert ready["rooms"][str(room.pk)] == 125 > seen
    await socket.send_json_to({"type": "sync", "room": str(room.pk), "after_sequence": seen})
    while True:
        batch = await receive_type(socket, "sync.batch")
        for event in batch["events"]:
            apply(state, event)
        if not batch["has_more"]:
            break
    assert batch["last_sequence"] == 125
    assert state == await database_sync_to_async(database_view)(room)
    await socket.disconnect(timeout=TIMEOUT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_live_events_a_sync_already_carried_are_not_sent_again(team, monkeypatch):
    """A reconnecting client syncs while the room goes on: the sync reads up to the room's latest
    number, past what its socket delivered live. The live events of those numbers, arriving after
    the batch, would only repeat it: the socket goes on after the batch's last number."""
    people = await database_sync_to_async(lambda: team)()
    room, author = people["room"], people["author"]
    viewer, ready = await connect(people["viewer"])
    assert ready["rooms"][str(room.pk)] == 0
    held: list[tuple] = []
    publish = services.send_event
    monkeypatch.setattr(services, "send_event", lambda groups, event: held.append((groups, event)))
    await database_sync_to_async(lambda: [send(room, author, f"m{i}") for i in (1, 2)])()
    monkeypatch.undo()
    assert len(held) == 2  # committed, their live events not out yet

    await viewer.send_json_to({"type": "sync", "room": str(room.pk), "after_sequence": 0})
    batch = await receive_type(viewer, "sync.batch")
    assert [e["sequence"] for e in batch["events"]] == [1, 2] and batch["last_sequence"] == 2
    await database_sync_to_async(lambda: [publish(groups, event) for groups, event in held])()
    await database_sync_to_async(send)(room, author, "m3")

    live = await receive_type(viewer, "message.new")  # 1 and 2 again would come first
    assert (live["sequence"], live["message"]["content"]) == (3, "m3")
    await viewer.disconnect(timeout=TIMEOUT)
