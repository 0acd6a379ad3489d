"""The board's rendering kept per process (boards.rendering, boards.selectors.board_rendering):
at every number it is exactly crdt.render of the whole document, whatever changed in between
(adds, moves, deletes, z changes, non-map values, many at once, a compaction and reload), and the
REST reads (GET /boards/{id}/ and the export) serve it."""

import datetime as dt
import json
import random

import pytest
from django.utils import timezone
from pycrdt import Map

from boards import compaction, crdt, documents, rendering, selectors, services
from boards.models import Board
from rooms.models import Room
from tests.boards_helpers import Client
from tests.conftest import client_for, room_with
from tests.test_boards_compaction import write

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(make_user):
    owner = make_user("owner")
    room = room_with(owner, "Drawing", Room.Kind.PRIVATE)
    return services.board_create(user=owner, room_id=room.pk, title="Plan"), owner


def rendered(board: Board) -> tuple[int, list]:
    board.refresh_from_db()
    sequence, text = selectors.board_rendering(board=board)
    return sequence, json.loads(text)


def test_the_kept_rendering_is_the_whole_documents_at_every_number(board, settings, monkeypatch):
    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    board, owner = board
    client, rng = Client(), random.Random(7)
    for step in range(1, 61):
        ids = [f"e{i}" for i in range(12)]
        kind = rng.random()
        if kind < 0.15 and client.elements:
            update = client.delete(rng.choice(sorted(client.elements.keys())))
        elif kind < 0.25:  # many elements in one update (re-rendered all at once)
            before = client.doc.get_state()
            with client.doc.transaction():
                for element in ids:
                    z = f"a{rng.randrange(5)}"
                    if element in client.elements:
                        client.elements[element]["x"] = step
                        client.elements[element]["z"] = z
                    else:
                        client.elements[element] = Map({"x": step, "z": z})
            update = client.doc.get_update(before)
        elif kind < 0.3:
            before = client.doc.get_state()
            client.elements["not-a-map"] = step  # skipped by the rendering, like crdt.render does
            update = client.doc.get_update(before)
        else:
            update = client.edit(rng.choice(ids), x=step * 1.5, y=-step, z=f"a{rng.randrange(5)}", text=f"t{step}")
        if not update or update == b"\x00\x00":
            continue
        number = write(board, owner, update)
        if step % 3 == 0:  # read at some numbers only: the kept rendering jumps several updates
            sequence, elements = rendered(board)
            assert sequence == number
            assert elements == crdt.render(client.doc)["elements"]
        if step == 40:  # compaction, and this process's live document thrown away and reloaded
            compaction.compact_board(board.pk, now=timezone.now() + dt.timedelta(days=31))
            live = documents.peek(board.pk) or documents.cached(board.pk)
            if live is not None:
                documents.invalidate(live)
    sequence, elements = rendered(board)
    assert elements == crdt.render(client.doc)["elements"]
    # A new mirror (another process, or this one after eviction) renders the same.
    rendering.forget(board.pk)
    selectors.forget_renderings(board.pk)
    assert rendered(board) == (sequence, elements)


def test_get_and_export_serve_the_rendering_and_a_deleted_board_is_forgotten(board):
    board, owner = board
    client = Client()
    write(board, owner, client.edit("a", type="rect", x=1, angle=30, z="b"))
    write(board, owner, client.edit("b", type="ellipse", x=2, z="a"))
    api = client_for(owner)
    body = api.get(f"/api/v1/boards/{board.pk}/").json()
    assert body["sequence"] == 2 and body["board"]["id"] == str(board.pk)
    assert body["elements"] == crdt.render(client.doc)["elements"]
    assert [e["id"] for e in body["elements"]] == ["b", "a"] and body["elements"][1]["angle"] == 30
    exported = api.get(f"/api/v1/boards/{board.pk}/export/").json()
    assert exported["sequence"] == 2 and exported["elements"] == body["elements"]
    write(board, owner, client.edit("a", x=5))
    assert api.get(f"/api/v1/boards/{board.pk}/export/").json()["elements"] == crdt.render(client.doc)["elements"]
    services.board_delete(user=owner, board_id=board.pk)
    assert str(board.pk) not in rendering._MIRRORS
    assert not [key for key in selectors._RENDERINGS if key[0] == str(board.pk)]
    assert api.get(f"/api/v1/boards/{board.pk}/").status_code == 404
