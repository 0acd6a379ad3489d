"""Board updates in batches (boards.services.board_update_apply_many, boards.consumers.update_batches):
the updates queued at once commit in one transaction with gapless numbers, a bad one fails alone,
resends inside a batch replay, access is checked per update; a socket's cursors do not wait for its
updates, whose acks keep their order; the live document stays cached between REST requests."""

import asyncio
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boards import consumers, crdt, documents, services
from boards.models import Board, BoardUpdate
from boards.services import board_create
from core.batches import Batches
from core.errors import ApplicationError
from rooms.models import Membership, Room
from tests.boards_helpers import Client, b64, update_frame
from tests.conftest import client_for, room_with
from tests.sockets import TIMEOUT, connect, receive_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def crew(make_user):
    def build():
        owner, ada, bob, viewer, gone = (make_user(n) for n in ("owner", "ada", "bob", "viewer", "gone"))
        room = room_with(
            owner, "Crew", Room.Kind.PRIVATE, members={ada: "member", bob: "member", viewer: "viewer", gone: "member"}
        )
        board = board_create(user=owner, room_id=room.pk, title="Plan")
        return {"room": room, "board": board, "owner": owner, "ada": ada, "bob": bob, "viewer": viewer, "gone": gone}

    return database_sync_to_async(build)


def log(board) -> list[tuple[int, str]]:
    rows = BoardUpdate.objects.filter(board=board).order_by("sequence").values_list("sequence", "client_update_id")
    return [(n, str(key)) for n, key in rows]


def request(user, board, update: bytes | str, key: object = None) -> dict:
    return {"user": user, "board_id": board.pk, "update": update, "client_update_id": key or uuid.uuid4()}


async def test_updates_queued_at_once_commit_in_one_transaction_with_gapless_numbers(crew, events, monkeypatch):
    people = await crew()
    board = people["board"]
    calls: list[int] = []
    many = services.board_update_apply_many

    def spy(*, requests):
        calls.append(len(requests))
        with CaptureQueriesContext(connection) as queries:
            results = many(requests=requests)
        inserts = [q for q in queries.captured_queries if q["sql"].lstrip().startswith("WITH sized")]
        assert len(inserts) == 1  # one statement stores the whole batch
        assert len(queries.captured_queries) <= 8  # access, lock, resends, store (+ transaction)
        return results

    monkeypatch.setattr(services, "board_update_apply_many", spy)
    batcher = Batches(consumers._apply_updates, limit=consumers.MAX_UPDATE_BATCH)
    clients = {name: Client() for name in ("ada", "bob", "owner")}
    keys = []
    futures = []
    for n in range(12):
        name = ("ada", "bob", "owner")[n % 3]
        keys.append(str(uuid.uuid4()))
        update = b64(clients[name].edit(f"{name}-{n}", x=n))
        futures.append(batcher.put(request(people[name], board, update, keys[-1]) | {"session": f"s-{name}"}))
    results = await asyncio.gather(*futures)
    assert calls == [12]
    assert [(stored.sequence, created) for stored, created in results] == [(n, True) for n in range(1, 13)]
    assert await database_sync_to_async(log)(board) == list(zip(range(1, 13), keys, strict=True))
    assert [e.event["seq"] for e in events.of_type("board.sequenced")] == list(range(1, 13))
    row = await database_sync_to_async(Board.objects.get)(pk=board.pk)
    assert row.last_sequence == 12 and row.size > 0


async def test_a_bad_update_in_a_batch_fails_alone(crew, monkeypatch):
    people = await crew()
    board = people["board"]

    def run():
        Membership.objects.filter(room=people["room"], user=people["gone"]).delete()  # removed from the room
        ada = Client()
        first = request(people["ada"], board, ada.edit("a", x=1))
        malformed = request(people["ada"], board, b"\x01\x02\x03")
        viewer = request(people["viewer"], board, Client().edit("v", x=1))
        removed = request(people["gone"], board, Client().edit("g", x=1))
        no_key = request(people["ada"], board, Client().edit("k", x=1)) | {"client_update_id": "nope"}
        huge = request(people["bob"], board, Client().edit("huge", text="y" * 4000))
        last = request(people["bob"], board, Client().edit("b", x=2))
        monkeypatch.setattr(crdt, "MAX_DOCUMENT_BYTES", 1000)  # the huge one: only once applied
        return services.board_update_apply_many(requests=[first, malformed, viewer, removed, no_key, huge, last])

    results = await database_sync_to_async(run)()
    codes = [r.code if isinstance(r, ApplicationError) else r[0].sequence for r in results]
    assert codes == [1, "invalid", "forbidden", "not_found", "invalid", "too_large", 2]
    assert [n for n, _ in await database_sync_to_async(log)(board)] == [1, 2]
    # The live document holds exactly what is stored.
    body = (await database_sync_to_async(client_for(people["owner"]).get)(f"/api/v1/boards/{board.pk}/")).json()
    assert body["sequence"] == 2 and [e["id"] for e in body["elements"]] == ["a", "b"]


async def test_a_deactivated_accounts_update_is_refused_in_a_batch(crew):
    people = await crew()
    board = people["board"]

    def run():
        type(people["bob"]).objects.filter(pk=people["bob"].pk).update(is_active=False)
        people["bob"].refresh_from_db()
        return services.board_update_apply_many(
            requests=[
                request(people["bob"], board, Client().edit("b", x=1)),
                request(people["ada"], board, Client().edit("a", x=1)),
            ]
        )

    results = await database_sync_to_async(run)()
    assert isinstance(results[0], ApplicationError) and results[0].code == "account_inactive"
    assert results[1][0].sequence == 1


async def test_resends_inside_one_batch_and_of_stored_updates_replay(crew, events):
    people = await crew()
    board = people["board"]
    ada = Client()
    stored_key, key = uuid.uuid4(), uuid.uuid4()

    def run():
        services.board_update_apply(
            user=people["ada"], board_id=board.pk, update=ada.edit("a", x=1), client_update_id=stored_key
        )
        update = ada.edit("a", x=2)
        return services.board_update_apply_many(
            requests=[
                request(people["ada"], board, update, key),
                request(people["ada"], board, ada.edit("a", x=0), stored_key),  # a resend of #1
                request(people["ada"], board, update, key),  # the same update twice in the batch
                request(people["ada"], board, ada.edit("a", x=3)),
            ]
        )

    results = await database_sync_to_async(run)()
    assert [(stored.sequence, created) for stored, created in results] == [(2, True), (1, False), (2, False), (3, True)]
    assert results[1][0].user == people["ada"]
    assert [n for n, _ in await database_sync_to_async(log)(board)] == [1, 2, 3]
    assert [e.event["seq"] for e in events.of_type("board.sequenced")] == [1, 2, 3]


async def test_cursors_do_not_wait_for_updates_and_acks_keep_their_order(crew, monkeypatch):
    people = await crew()
    board = people["board"]
    ada, _ = await connect(people["ada"])
    bob, _ = await connect(people["bob"])
    for socket in (ada, bob):
        await socket.send_json_to({"type": "board.join", "board": str(board.pk)})
        await receive_type(socket, "board.state")
    gate = threading.Event()
    many = services.board_update_apply_many

    def held(*, requests):
        assert gate.wait(TIMEOUT)
        return many(requests=requests)

    monkeypatch.setattr(services, "board_update_apply_many", held)
    client = Client()
    keys = [str(uuid.uuid4()) for _ in range(3)]
    for n, key in enumerate(keys):
        await ada.send_json_to(update_frame(board, client.edit("e", x=n), key))
    await ada.send_json_to({"type": "board.awareness", "board": str(board.pk), "state": {"cursor": {"x": 1, "y": 2}}})
    cursor = await receive_type(bob, "board.awareness")  # while the updates wait for the database
    assert cursor["state"]["cursor"] == {"x": 1, "y": 2}
    # A frame of another kind waits for the socket's pending updates to be answered first.
    await ada.send_json_to({"type": "board.sync", "board": str(board.pk), "after_sequence": 0})
    gate.set()
    # Had the sync not waited, its page would come first and hold none of the updates.
    frames = []
    while not frames or frames[-1]["type"] != "board.updates":
        frames.append(await ada.receive_json_from(timeout=TIMEOUT))
    acks = [f for f in frames if f["type"] == "board.update.ack"]
    assert [(a["client_update_id"], a["sequence"]) for a in acks] == [(k, n) for n, k in enumerate(keys, 1)]
    page = frames[-1]
    assert [u["sequence"] for u in page["updates"]] == [1, 2, 3]
    for socket in (ada, bob):
        await socket.disconnect(timeout=TIMEOUT)


async def test_rest_writers_keep_the_live_document_between_requests(crew, monkeypatch):
    people = await crew()
    board = people["board"]
    api = client_for(people["ada"])
    ada = Client()
    loads = []
    load = documents.load

    def counted(board_id, upto):
        loads.append(upto)
        return load(board_id, upto)

    monkeypatch.setattr(documents, "load", counted)
    for n in range(3):
        body = {"update": b64(ada.edit("e", x=n)), "client_update_id": str(uuid.uuid4())}
        response = await database_sync_to_async(api.post)(
            f"/api/v1/boards/{board.pk}/updates/", body, content_type="application/json"
        )
        assert response.status_code == 201
    assert loads == [0]  # loaded once, then kept (idle) between the requests
    assert documents.peek(board.pk) is None and documents.cached(board.pk) is not None
    body = (await database_sync_to_async(api.get)(f"/api/v1/boards/{board.pk}/")).json()
    assert body["sequence"] == 3 and body["elements"] == [{"id": "e", "x": 2}]
    monkeypatch.setattr(documents, "IDLE_SECONDS", 0.0)  # expired: the next use loads it again
    await asyncio.sleep(0.01)
    # (Not a GET of the same number: its rendering is kept per number, boards.selectors.)
    body = {"update": b64(ada.edit("e", x=3)), "client_update_id": str(uuid.uuid4())}
    await database_sync_to_async(api.post)(f"/api/v1/boards/{board.pk}/updates/", body, content_type="application/json")
    assert loads == [0, 3]
