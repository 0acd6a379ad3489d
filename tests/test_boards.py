"""Boards: the update log (numbered, idempotent, validated), access, the server's authoritative
document, awareness, and the REST API (docs/protocol.md "Boards")."""

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async

from boards import crdt, documents
from boards.models import Board, BoardUpdate
from boards.services import board_create
from core.ratelimit import Rate
from rooms.models import Room
from rooms.selectors import membership_get
from rooms.services import membership_remove
from tests.boards_helpers import Client, b64, update_frame
from tests.conftest import client_for, nothing_but_presence, room_with
from tests.sockets import TIMEOUT, connect, receive_close, receive_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def cast(make_user):
    """A private room with an owner, a member and a viewer, an outsider, and a board."""

    def build():
        owner, member, viewer, outsider = (make_user(n) for n in ("owner", "member", "viewer", "outsider"))
        room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
        board = board_create(user=owner, room_id=room.pk, title="Plan")
        return {"room": room, "board": board, "owner": owner, "member": member, "viewer": viewer, "outsider": outsider}

    return database_sync_to_async(build)


async def join(socket, board, state_vector: str | None = None) -> dict:
    frame = {"type": "board.join", "board": str(board.pk)}
    if state_vector is not None:
        frame["state_vector"] = state_vector
    await socket.send_json_to(frame)
    return await receive_type(socket, "board.state")


def stored(board) -> list[tuple[int, bytes]]:
    return [(u.sequence, bytes(u.update)) for u in BoardUpdate.objects.filter(board=board).order_by("sequence")]


async def test_updates_are_applied_stored_in_order_and_sent_to_everyone_else(cast, events):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    viewer, _ = await connect(people["viewer"])
    for socket in (owner, member, viewer):
        state = await join(socket, board)
        assert state["sequence"] == 0 and state["room"] == str(people["room"].pk)

    ada = Client()
    updates = [ada.edit("e1", type="rect", x=1, y=2, z="a"), ada.edit("e1", x=5), ada.edit("e2", type="text", z="b")]
    keys = [uuid.uuid4() for _ in updates]
    for update, key in zip(updates, keys, strict=True):
        await owner.send_json_to(update_frame(board, update, key))
    acks = [await receive_type(owner, "board.update.ack") for _ in updates]
    assert acks == [
        {"type": "board.update.ack", "board": str(board.pk), "client_update_id": str(key), "sequence": n}
        for n, key in enumerate(keys, 1)
    ]
    for socket in (member, viewer):
        bob = Client()
        for n, key in enumerate(keys, 1):
            frame = await receive_type(socket, "board.update")
            assert (frame["sequence"], frame["client_update_id"]) == (n, str(key))
            assert frame["user"] == {
                "id": people["owner"].pk,
                "username": "owner",
                "display_name": "owner",
                "avatar_url": None,
            }
            bob.apply(frame["update"])
        assert bob.render() == ada.render()
    assert await nothing_but_presence(owner)  # its own updates come back as acks only

    assert await database_sync_to_async(stored)(board) == list(enumerate(updates, 1))
    row = await database_sync_to_async(Board.objects.get)(pk=board.pk)
    assert row.last_sequence == 3 and 0 < row.size
    # The process's document is the board's, at the last number.
    live = documents.peek(board.pk)
    assert live is not None and live.sequence == 3 and crdt.render(live.doc) == ada.render()
    api = client_for(people["viewer"])
    body = (await database_sync_to_async(api.get)(f"/api/v1/boards/{board.pk}/")).json()
    assert body["sequence"] == 3
    assert body["elements"] == [
        {"id": "e1", "type": "rect", "x": 5, "y": 2, "z": "a"},
        {"id": "e2", "type": "text", "z": "b"},
    ]
    assert [e.event["seq"] for e in events.of_type("board.sequenced")] == [1, 2, 3]
    for socket in (owner, member, viewer):
        await socket.disconnect(timeout=TIMEOUT)
    assert documents.peek(board.pk) is None  # evicted with the last socket


async def test_a_malformed_update_is_invalid_and_stores_nothing(cast):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    await join(owner, board)
    key = uuid.uuid4()
    for bad in (b64(b"\x05\x01garbage"), "not base64 !", "", 42):
        await owner.send_json_to(update_frame(board, b"", key) | {"update": bad})
        error = await receive_type(owner, "error")
        assert (error["code"], list(error["fields"]), error["ref"]) == ("invalid", ["update"], str(key))
    await owner.send_json_to(update_frame(board, Client().edit("e", x=1)) | {"client_update_id": "nope"})
    assert (await receive_type(owner, "error"))["fields"] == {"client_update_id": ["Must be a UUID."]}
    api = client_for(people["owner"])
    response = await database_sync_to_async(api.post)(
        f"/api/v1/boards/{board.pk}/updates/",
        {"update": b64(b"\x01\x02\x03"), "client_update_id": str(key)},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert await database_sync_to_async(stored)(board) == []
    row = await database_sync_to_async(Board.objects.get)(pk=board.pk)
    assert row.last_sequence == 0
    # The same key then works with a good update: nothing of the refused ones was kept.
    await owner.send_json_to(update_frame(board, Client().edit("e", x=1), key))
    assert (await receive_type(owner, "board.update.ack"))["sequence"] == 1
    await owner.disconnect(timeout=TIMEOUT)


async def test_over_size_updates_and_documents_are_too_large(cast, monkeypatch):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    await join(owner, board)
    big = Client().edit("e", text="x" * (crdt.MAX_UPDATE_BYTES + 10))
    await owner.send_json_to(update_frame(board, big))  # a 350 KB frame: allowed for board.update
    assert (await receive_type(owner, "error"))["code"] == "too_large"
    # A document that would pass the limit: refused, nothing stored, the live document unharmed.
    ada = Client()
    await owner.send_json_to(update_frame(board, ada.edit("small", x=1)))
    assert (await receive_type(owner, "board.update.ack"))["sequence"] == 1
    monkeypatch.setattr(crdt, "MAX_DOCUMENT_BYTES", 300)
    await owner.send_json_to(update_frame(board, ada.edit("more", text="y" * 400)))
    assert (await receive_type(owner, "error"))["code"] == "too_large"
    assert [n for n, _ in await database_sync_to_async(stored)(board)] == [1]
    monkeypatch.setattr(crdt, "MAX_DOCUMENT_BYTES", 10 * 2**20)
    await owner.send_json_to(update_frame(board, Client().edit("other", x=2)))
    assert (await receive_type(owner, "board.update.ack"))["sequence"] == 2
    body = (await database_sync_to_async(client_for(people["owner"]).get)(f"/api/v1/boards/{board.pk}/")).json()
    assert [e["id"] for e in body["elements"]] == ["other", "small"]
    # Any other frame over 64 KB still closes the socket.
    await owner.send_to(text_data='{"type": "board.awareness", "pad": "' + "x" * 70_000 + '"}')
    code, frames = await receive_close(owner)
    assert code == 1009 and frames[-1]["code"] == "too_large"
    await owner.disconnect(timeout=TIMEOUT)  # returns once the consumer is done


async def test_viewers_are_forbidden_and_outsiders_not_found(cast):
    people = await cast()
    board = people["board"]
    viewer, _ = await connect(people["viewer"])
    outsider, _ = await connect(people["outsider"])
    await join(viewer, board)  # viewers watch
    await viewer.send_json_to(update_frame(board, Client().edit("e", x=1)))
    assert (await receive_type(viewer, "error"))["code"] == "forbidden"
    for frame in (
        {"type": "board.join", "board": str(board.pk)},
        {"type": "board.join", "board": str(uuid.uuid4())},
        {"type": "board.join", "board": "not-a-uuid"},
        {"type": "board.sync", "board": str(board.pk), "after_sequence": 0},
        update_frame(board, Client().edit("e", x=1)),
        {"type": "board.awareness", "board": str(board.pk), "state": None},
    ):
        await outsider.send_json_to(frame)
        assert (await receive_type(outsider, "error"))["code"] == "not_found", frame
    update = {"update": b64(Client().edit("e", x=1)), "client_update_id": str(uuid.uuid4())}
    viewer_api, outsider_api = client_for(people["viewer"]), client_for(people["outsider"])
    response = await database_sync_to_async(viewer_api.post)(
        f"/api/v1/boards/{board.pk}/updates/", update, format="json"
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    for method, path in [
        ("get", f"/api/v1/boards/{board.pk}/"),
        ("get", f"/api/v1/boards/{board.pk}/updates/?after_sequence=0"),
        ("post", f"/api/v1/boards/{board.pk}/updates/"),
        ("patch", f"/api/v1/boards/{board.pk}/"),
        ("delete", f"/api/v1/boards/{board.pk}/"),
        ("get", f"/api/v1/rooms/{people['room'].pk}/boards/"),
        ("post", f"/api/v1/rooms/{people['room'].pk}/boards/"),
    ]:
        body = None if method == "get" else update | {"title": "x"}
        response = await database_sync_to_async(getattr(outsider_api, method))(path, body, format="json")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
    assert await database_sync_to_async(stored)(board) == []
    await viewer.disconnect(timeout=TIMEOUT)
    await outsider.disconnect(timeout=TIMEOUT)


async def test_a_resend_gets_the_same_ack_and_is_stored_and_sent_once(cast, events):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    await join(owner, board)
    await join(member, board)
    frame = update_frame(board, Client().edit("e", x=1))
    await owner.send_json_to(frame)
    first = await receive_type(owner, "board.update.ack")
    assert (await receive_type(member, "board.update"))["sequence"] == 1
    await owner.send_json_to(frame)
    assert await receive_type(owner, "board.update.ack") == first
    response = await database_sync_to_async(client_for(people["owner"]).post)(
        f"/api/v1/boards/{board.pk}/updates/",
        {"update": frame["update"], "client_update_id": frame["client_update_id"]},
        format="json",
    )
    assert response.status_code == 200 and response.json() == {k: v for k, v in first.items() if k != "type"}
    assert await nothing_but_presence(member)
    assert len(events.of_type("board.sequenced")) == 1
    assert len(await database_sync_to_async(stored)(board)) == 1
    await owner.disconnect(timeout=TIMEOUT)
    await member.disconnect(timeout=TIMEOUT)


async def test_resume_after_reconnect_from_a_sequence_and_from_a_state_vector(cast):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    await join(owner, board)
    bob = Client()
    bob.apply((await join(member, board))["update"])
    ada = Client()
    await owner.send_json_to(update_frame(board, ada.edit("a", type="rect", x=1)))
    await receive_type(owner, "board.update.ack")  # else each ack below is one update behind
    bob.apply((await receive_type(member, "board.update"))["update"])
    await member.disconnect(timeout=TIMEOUT)  # Bob goes offline and edits meanwhile
    offline = bob.edit("b", type="sticky", text="offline")
    for i in range(5):
        await owner.send_json_to(update_frame(board, ada.edit("a", x=10 + i)))
        await receive_type(owner, "board.update.ack")

    # Back: sync from his number (1), in pages.
    member, _ = await connect(people["member"])
    await member.send_json_to({"type": "board.sync", "board": str(board.pk), "after_sequence": 1, "limit": 3})
    page = await receive_type(member, "board.updates")
    assert ([u["sequence"] for u in page["updates"]], page["has_more"], page["last_sequence"]) == ([2, 3, 4], True, 4)
    await member.send_json_to({"type": "board.sync", "board": str(board.pk), "after_sequence": 4})
    rest = await receive_type(member, "board.updates")
    assert ([u["sequence"] for u in rest["updates"]], rest["has_more"], rest["last_sequence"]) == ([5, 6], False, 6)
    # Or from his state vector: only what he lacks (not the first edit again).
    carol = Client()
    carol.apply(bob.doc.get_update())
    state = await join(member, board, state_vector=bob.state_vector())
    assert state["sequence"] == 6 and len(state["update"]) < len(b64(ada.doc.get_update()))
    bob.apply(state["update"])
    for update in page["updates"] + rest["updates"]:
        carol.apply(update["update"])
    assert bob.render() == carol.render()
    # His offline edit goes up; both converge.
    await member.send_json_to(update_frame(board, offline))
    assert (await receive_type(member, "board.update.ack"))["sequence"] == 7
    ada.apply((await receive_type(owner, "board.update"))["update"])
    assert ada.render() == bob.render()
    assert [e["id"] for e in ada.render()["elements"]] == ["a", "b"]
    # Over REST: the same pages.
    body = (
        await database_sync_to_async(client_for(people["member"]).get)(
            f"/api/v1/boards/{board.pk}/updates/?after_sequence=5&limit=100"
        )
    ).json()
    assert [u["sequence"] for u in body["updates"]] == [6, 7] and body["last_sequence"] == 7 and not body["has_more"]
    await owner.disconnect(timeout=TIMEOUT)
    await member.disconnect(timeout=TIMEOUT)


async def test_the_process_document_catches_up_with_updates_stored_elsewhere(cast):
    """Another process stored an update this process's document has not seen: under the row
    lock, the next write first applies the missing stored updates."""
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    await join(owner, board)
    live = documents.peek(board.pk)
    assert live is not None and live.sequence == 0
    elsewhere = Client().edit("from-elsewhere", type="rect", z="a")

    def store_as_another_process():
        Board.objects.filter(pk=board.pk).update(last_sequence=1)
        BoardUpdate.objects.create(board=board, sequence=1, update=elsewhere, client_update_id=uuid.uuid4())

    await database_sync_to_async(store_as_another_process)()
    assert live.sequence == 0
    await owner.send_json_to(update_frame(board, Client().edit("here", type="text", z="b")))
    assert (await receive_type(owner, "board.update.ack"))["sequence"] == 2
    assert live.sequence == 2
    assert [e["id"] for e in crdt.render(live.doc)["elements"]] == ["from-elsewhere", "here"]
    # The socket also gets the number it missed, read from the database.
    frame = await receive_type(owner, "board.update")
    assert frame["sequence"] == 1
    await owner.disconnect(timeout=TIMEOUT)


async def test_awareness_is_relayed_given_to_joiners_rate_limited_and_cleared(cast, settings):
    people = await cast()
    board = people["board"]
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "socket": {**settings.RATE_LIMITS["socket"]}}
    settings.RATE_LIMITS["socket"]["awareness"] = Rate(0.001, 3)
    viewer, _ = await connect(people["viewer"])
    member, _ = await connect(people["member"])
    await join(viewer, board)
    await join(member, board)
    for x in range(5):  # two over the limit: dropped silently
        state = {"cursor": {"x": x, "y": 0}, "selection": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}
        await viewer.send_json_to({"type": "board.awareness", "board": str(board.pk), "state": state})
    # States that change within one tick are sent as the latest only: some of 0 and 1 may be
    # skipped, 2 (the last one under the limit) comes last, 3 and 4 never.
    seen = []
    while not seen or seen[-1] != 2:
        frame = await receive_type(member, "board.awareness")
        assert frame["user"] == {
            "id": people["viewer"].pk,
            "username": "viewer",
            "display_name": "viewer",
            "avatar_url": None,
        }
        seen.append(frame["state"]["cursor"]["x"])
    assert seen == sorted(set(seen)) and set(seen) <= {0, 1, 2}
    await viewer.send_json_to({"type": "board.leave", "board": str(board.pk)})
    gone = await receive_type(member, "board.awareness")
    assert gone["state"] is None
    assert await nothing_but_presence(viewer)  # no error for the dropped ones, nothing of its own
    # A joiner gets the others' current states.
    await member.send_json_to({"type": "board.awareness", "board": str(board.pk), "state": {"cursor": None}})
    owner, _ = await connect(people["owner"])
    state = await join(owner, board)
    assert [(a["user"]["username"], a["state"]) for a in state["awareness"]] == [("member", {"cursor": None})]
    # A socket that closes leaves its boards.
    await member.disconnect(timeout=TIMEOUT)
    gone = await receive_type(owner, "board.awareness")
    assert gone["user"]["username"] == "member" and gone["state"] is None
    await owner.disconnect(timeout=TIMEOUT)
    await viewer.disconnect(timeout=TIMEOUT)


async def test_awareness_goes_out_at_most_once_per_tick_with_the_latest_of_each_socket(cast, monkeypatch):
    from boards import consumers

    people = await cast()
    board = people["board"]
    gate, arrived, count = asyncio.Event(), asyncio.Event(), [0]
    monkeypatch.setattr(consumers, "AWARENESS_TICK_SECONDS", 3600.0)  # every tick waits for the gate

    async def held(seconds):
        await gate.wait()

    monkeypatch.setattr(consumers, "_tick_wait", held)
    received = consumers.LocalBoard.hub_event

    async def counted(self, event):
        await received(self, event)
        if event["type"] == "board.awareness":
            count[0] += 1
            if count[0] == 4:
                arrived.set()

    monkeypatch.setattr(consumers.LocalBoard, "hub_event", counted)
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    viewer, _ = await connect(people["viewer"])
    for socket in (owner, member, viewer):
        await join(socket, board)

    async def say(socket, x):
        await socket.send_json_to({"type": "board.awareness", "board": str(board.pk), "state": {"cursor": {"x": x}}})

    await say(owner, 1)  # after a quiet tick: at once, as it is
    for socket in (member, viewer):
        first = await receive_type(socket, "board.awareness")
        assert (first["user"]["username"], first["state"]) == ("owner", {"cursor": {"x": 1}})
    # Within the next tick: the owner twice, the member once. The tick ends when the gate opens.
    await say(owner, 2)
    await say(member, 10)
    await say(owner, 3)
    await asyncio.wait_for(arrived.wait(), TIMEOUT)
    gate.set()
    batch = await receive_type(viewer, "board.awareness.batch")
    assert batch["board"] == str(board.pk)
    # One entry per socket (in the order their changes reached this process): the owner's latest,
    # 2 having been superseded within the tick.
    assert sorted((s["user"]["username"], s["state"]["cursor"]["x"]) for s in batch["states"]) == [
        ("member", 10),
        ("owner", 3),
    ]
    assert all(s["session"] for s in batch["states"])
    # The senders get the others' only: one entry each, as a plain board.awareness.
    to_owner = await receive_type(owner, "board.awareness")
    to_member = await receive_type(member, "board.awareness")
    assert (to_owner["user"]["username"], to_owner["state"]) == ("member", {"cursor": {"x": 10}})
    assert (to_member["user"]["username"], to_member["state"]) == ("owner", {"cursor": {"x": 3}})
    for socket in (owner, member, viewer):
        await socket.disconnect(timeout=TIMEOUT)


async def test_leaving_the_room_or_deleting_the_board_ends_its_events(cast):
    people = await cast()
    board = people["board"]
    owner, _ = await connect(people["owner"])
    member, _ = await connect(people["member"])
    await join(owner, board)
    await join(member, board)
    owner_membership = await database_sync_to_async(membership_get)(room_id=people["room"].pk, user=people["owner"])
    await database_sync_to_async(membership_remove)(actor=owner_membership, user=people["member"])
    await receive_type(member, "room.removed")
    await owner.send_json_to(update_frame(board, Client().edit("e", x=1)))
    await receive_type(owner, "board.update.ack")
    assert await nothing_but_presence(member)
    await member.send_json_to(update_frame(board, Client().edit("e", x=2)))
    assert (await receive_type(member, "error"))["code"] == "not_found"

    response = await database_sync_to_async(client_for(people["owner"]).delete)(f"/api/v1/boards/{board.pk}/")
    assert response.status_code == 204
    deleted = await receive_type(owner, "board.deleted")
    assert deleted["board"]["id"] == str(board.pk)
    await owner.send_json_to(update_frame(board, Client().edit("e", x=3)))
    assert (await receive_type(owner, "error"))["code"] == "not_found"
    assert documents.peek(board.pk) is None
    await owner.disconnect(timeout=TIMEOUT)
    await member.disconnect(timeout=TIMEOUT)


async def test_boards_rest_crud_and_who_may_do_it(cast, make_user):
    people = await cast()
    room = people["room"]
    admin = await database_sync_to_async(make_user)("admin")

    def add_admin():
        from rooms.models import Membership

        Membership.objects.create(room=room, user=admin, role="admin")

    await database_sync_to_async(add_admin)()
    owner_socket, _ = await connect(people["viewer"])  # every member socket of the room hears of boards
    member_api = client_for(people["member"])
    call = database_sync_to_async
    response = await call(member_api.post)(f"/api/v1/rooms/{room.pk}/boards/", {"title": "  Sketch "}, format="json")
    assert response.status_code == 201
    created = response.json()
    assert created["title"] == "Sketch" and created["created_by"]["username"] == "member"
    assert created["last_sequence"] == 0 and created["room"] == str(room.pk)
    assert (await receive_type(owner_socket, "board.created"))["board"] == created
    listed = (await call(client_for(people["viewer"]).get)(f"/api/v1/rooms/{room.pk}/boards/")).json()
    assert [b["title"] for b in listed["results"]] == ["Sketch", "Plan"]
    for bad in ("", "x" * 121):
        response = await call(member_api.post)(f"/api/v1/rooms/{room.pk}/boards/", {"title": bad}, format="json")
        assert response.status_code == 400 and response.json()["error"]["fields"]["title"]
    response = await call(client_for(people["viewer"]).post)(f"/api/v1/rooms/{room.pk}/boards/", {"title": "v"})
    assert response.status_code == 403
    path = f"/api/v1/boards/{created['id']}/"
    # Members rename their own boards, not others'; admins and owners rename any.
    response = await call(member_api.patch)(path, {"title": "Mine"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "Mine"
    assert (await receive_type(owner_socket, "board.renamed"))["board"]["title"] == "Mine"
    plan = f"/api/v1/boards/{people['board'].pk}/"
    assert (await call(member_api.patch)(plan, {"title": "No"}, format="json")).status_code == 403
    assert (await call(member_api.delete)(plan)).status_code == 403
    assert (await call(client_for(admin).patch)(plan, {"title": "Yes"}, format="json")).status_code == 200
    assert (await call(client_for(people["viewer"]).delete)(path)).status_code == 403
    assert (await call(client_for(admin).delete)(path)).status_code == 204
    assert (await receive_type(owner_socket, "board.deleted"))["board"]["id"] == created["id"]
    assert (await call(member_api.get)(path)).status_code == 404
    await owner_socket.disconnect(timeout=TIMEOUT)


async def test_a_socket_that_outlived_its_account_opens_and_changes_nothing(cast):
    """The revocation that closes it (4403) may not have reached it yet (another process)."""
    people = await cast()
    board = people["board"]
    member, _ = await connect(people["member"])
    await join(member, board)

    def deactivate():
        type(people["member"]).objects.filter(pk=people["member"].pk).update(is_active=False)

    await database_sync_to_async(deactivate)()
    await member.send_json_to(update_frame(board, Client().edit("e", x=1)))
    assert (await receive_type(member, "error"))["code"] == "account_inactive"
    await member.send_json_to({"type": "board.join", "board": str(board.pk)})
    assert (await receive_type(member, "error"))["code"] == "account_inactive"
    assert await database_sync_to_async(stored)(board) == []
    await member.disconnect(timeout=TIMEOUT)


async def test_after_a_redis_outage_sockets_on_a_board_catch_up_from_the_database(cast):
    """Updates published while Redis was away are lost; the hub's recovery reads them."""
    from boards import consumers as board_consumers
    from core.hub import get_hub

    people = await cast()
    board = people["board"]
    member, _ = await connect(people["member"])
    await join(member, board)
    missed = Client().edit("missed", type="rect")

    def store_without_event():
        Board.objects.filter(pk=board.pk).update(last_sequence=1)
        BoardUpdate.objects.create(board=board, sequence=1, update=missed, client_update_id=uuid.uuid4())

    await database_sync_to_async(store_without_event)()
    await board_consumers._catch_up_after_an_outage(get_hub(), [f"board.{board.pk}"])
    frame = await receive_type(member, "board.update")
    assert frame["sequence"] == 1 and frame["update"] == b64(missed)
    await member.disconnect(timeout=TIMEOUT)


async def test_a_board_update_frame_over_400_kb_closes_the_socket(cast):
    people = await cast()
    owner, _ = await connect(people["owner"])
    frame = update_frame(people["board"], b"x" * 310_000)  # 413 KB of base64
    await owner.send_json_to(frame)
    code, frames = await receive_close(owner)
    assert code == 1009 and frames[-1]["code"] == "too_large"
    await owner.disconnect(timeout=TIMEOUT)  # returns once the consumer is done


async def test_an_update_needs_no_join_but_awareness_does(cast):
    people = await cast()
    board = people["board"]
    member, _ = await connect(people["member"])
    owner, _ = await connect(people["owner"])
    await join(owner, board)
    await member.send_json_to(update_frame(board, Client().edit("e", x=1)))
    assert (await receive_type(member, "board.update.ack"))["sequence"] == 1
    assert (await receive_type(owner, "board.update"))["sequence"] == 1
    await member.send_json_to({"type": "board.awareness", "board": str(board.pk), "state": None})
    assert (await receive_type(member, "error"))["code"] == "not_found"
    await member.disconnect(timeout=TIMEOUT)
    await owner.disconnect(timeout=TIMEOUT)


async def test_boards_renamed_and_deleted_in_admin_are_announced(cast, events):
    people = await cast()
    board = people["board"]

    def as_staff():
        from django.test import Client as Browser

        from accounts.models import User

        browser = Browser()
        browser.force_login(User.objects.create_superuser("root", "root@example.com", "correct-horse-battery"))
        assert browser.get("/admin/boards/board/").status_code == 200
        renamed = browser.post(f"/admin/boards/board/{board.pk}/change/", {"title": "By staff"})
        deleted = browser.post(f"/admin/boards/board/{board.pk}/delete/", {"post": "yes"})
        return renamed.status_code, deleted.status_code

    assert await database_sync_to_async(as_staff)() == (302, 302)
    frames = events.frames(group=f"room.{people['room'].pk}")
    assert [(f["type"], f["board"]["title"]) for f in frames if f["type"].startswith("board.")] == [
        ("board.created", "Plan"),
        ("board.renamed", "By staff"),
        ("board.deleted", "By staff"),
    ]
    assert not await database_sync_to_async(Board.objects.filter(pk=board.pk).exists)()
