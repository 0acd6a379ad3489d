"""Replay and export over REST: the timeline with who touched which elements, the state at a
number (also after compaction), the JSON export; and loading a board after compaction over the
socket (board.join, board.sync)."""

import base64
import datetime as dt

import pytest
from django.utils import timezone
from pycrdt import Doc

from boards import compaction, crdt, services
from rooms.models import Room
from tests.conftest import client_for, room_with
from tests.sockets import connect, receive_type
from tests.test_boards_compaction import Editor, edit_history, write


@pytest.fixture
def team(make_user):
    owner, ada, bob, viewer, outsider = (make_user(n) for n in ("owner", "ada", "bob", "viewer", "outsider"))
    room = room_with(owner, "Studio", Room.Kind.PRIVATE, members={ada: "member", bob: "member", viewer: "viewer"})
    board = services.board_create(user=owner, room_id=room.pk, title="Flow / v2")
    return {"board": board, "owner": owner, "ada": ada, "bob": bob, "viewer": viewer, "outsider": outsider}


def two_editors(team) -> tuple[Editor, Editor]:
    """Ada and Bob each edit their own copy; each update goes through the service, in turn."""
    board, ada, bob = team["board"], Editor(1), Editor(2)

    def both(editor: Editor, user, update: bytes) -> None:
        write(board, user, update)
        (bob if editor is ada else ada).doc.apply_update(update)

    both(ada, team["ada"], ada.add("e1", z="a1"))
    both(bob, team["bob"], bob.set("e1", x=40, y=50))
    both(ada, team["ada"], ada.add("e2", z="a0", type="ellipse"))
    with bob.doc.transaction():  # one update touching two elements
        bob.elements["e2"]["fill"] = "#f00"
        del bob.elements["e1"]
    both(bob, team["bob"], bob.updates[-1])
    both(ada, team["ada"], ada.add("e3", z="a2", type="text", text="hi"))
    return ada, bob


def decoded_rendering(update_b64: str) -> dict:
    return crdt.render_update(base64.b64decode(update_b64))


@pytest.mark.django_db
def test_the_timeline_says_who_touched_which_elements(team):
    two_editors(team)
    board = team["board"]
    api = client_for(team["viewer"])  # viewers may replay

    page = api.get(f"/api/v1/boards/{board.pk}/history/?limit=3").json()

    ada, bob = ({"id": team[n].pk, "username": n, "display_name": n, "avatar_url": None} for n in ("ada", "bob"))
    assert [(e["sequence"], e["user"], e["elements"], e["elements_total"]) for e in page["entries"]] == [
        (1, ada, ["e1"], 1),
        (2, bob, ["e1"], 1),
        (3, ada, ["e2"], 1),
    ]
    assert page["has_more"] and page["last_sequence"] == 5 and page["log_start"] == 0 and page["checkpoints"] == []
    rest = api.get(f"/api/v1/boards/{board.pk}/history/?after_sequence=3").json()
    assert [(e["sequence"], e["elements"]) for e in rest["entries"]] == [(4, ["e1", "e2"]), (5, ["e3"])]
    assert not rest["has_more"]
    assert all(e["created_at"] for e in rest["entries"])


@pytest.mark.django_db
def test_the_state_at_each_number_replays_the_board(team):
    board = team["board"]
    renderings = edit_history(board, team["ada"], 12)
    api = client_for(team["viewer"])

    for n in (1, 6, 12):
        body = api.get(f"/api/v1/boards/{board.pk}/state/?at={n}").json()
        assert (body["sequence"], body["requested"]) == (n, n)
        assert decoded_rendering(body["update"]) == renderings[n]
    latest = api.get(f"/api/v1/boards/{board.pk}/state/").json()
    assert (latest["sequence"], latest["requested"]) == (12, None)
    assert decoded_rendering(latest["update"]) == renderings[12]
    beyond = api.get(f"/api/v1/boards/{board.pk}/state/?at=99").json()
    assert beyond["sequence"] == 12
    empty = api.get(f"/api/v1/boards/{board.pk}/state/?at=0").json()
    assert (empty["sequence"], decoded_rendering(empty["update"])) == (0, {"elements": []})
    bad = api.get(f"/api/v1/boards/{board.pk}/state/?at=-1")
    assert bad.status_code == 400 and "at" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_replay_after_compaction_and_pruning(team, settings, monkeypatch):
    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)  # checkpoints by count (a tiny log)
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    board = team["board"]
    renderings = edit_history(board, team["ada"], 27)
    compaction.compact_board(board.pk, now=timezone.now() + dt.timedelta(days=31))
    api = client_for(team["ada"])

    page = api.get(f"/api/v1/boards/{board.pk}/history/").json()
    assert page["log_start"] == 20 and page["checkpoints"] == [10, 20, 27]
    assert [e["sequence"] for e in page["entries"]] == [21, 22, 23, 24, 25, 26, 27]
    assert page["entries"][0]["elements"] == ["e0"]  # 21 % 7: computed on the state at 20
    for asked, answered in ((27, 27), (23, 23), (20, 20), (15, 10), (3, 0)):
        body = api.get(f"/api/v1/boards/{board.pk}/state/?at={asked}").json()
        assert body["sequence"] == answered
        assert decoded_rendering(body["update"]) == (renderings[answered] if answered else {"elements": []})


@pytest.mark.django_db
def test_the_export_is_the_rendering_of_the_board(team):
    two_editors(team)
    board = team["board"]

    response = client_for(team["viewer"]).get(f"/api/v1/boards/{board.pk}/export/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="Flow _ v2.json"'
    body = response.json()
    document = client_for(team["ada"]).get(f"/api/v1/boards/{board.pk}/").json()
    assert (body["format"], body["version"], body["sequence"]) == ("parley.board", 1, 5)
    assert body["board"]["id"] == str(board.pk) and body["board"]["last_sequence"] == 5
    assert body["elements"] == document["elements"]
    assert [(e["id"], e["type"]) for e in body["elements"]] == [("e2", "ellipse"), ("e3", "text")]
    assert body["elements"][0]["fill"] == "#f00"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["history/", "state/", "state/?at=1", "export/"])
def test_outsiders_get_not_found(team, path):
    response = client_for(team["outsider"]).get(f"/api/v1/boards/{team['board'].pk}/{path}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# -- loading over the socket after compaction ---------------------------------------------------


def render_b64(*updates_b64: str) -> dict:
    doc: Doc = Doc()
    for update in updates_b64:
        doc.apply_update(base64.b64decode(update))
    return crdt.render(doc)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_join_and_sync_after_compaction_get_everything(team, settings, monkeypatch):
    from channels.db import database_sync_to_async

    from boards import documents

    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)
    settings.BOARD_CHECKPOINT_EVERY = 10
    settings.BOARD_KEEP_UPDATES = 5
    board = team["board"]

    def prepare() -> dict:
        renderings = edit_history(board, team["ada"], 23)
        compaction.compact_board(board.pk, now=timezone.now() + dt.timedelta(days=31))
        return renderings

    renderings = await database_sync_to_async(prepare)()
    assert documents.peek(board.pk) is None  # the next join loads it from the snapshot and the log
    socket, _ = await connect(team["bob"])
    try:
        await socket.send_json_to({"type": "board.join", "board": str(board.pk)})
        state = await receive_type(socket, "board.state")
        assert state["sequence"] == 23
        assert render_b64(state["update"]) == renderings[23]

        # A client that stopped at 21 (above the prune point) gets the updates it lacks...
        await socket.send_json_to({"type": "board.sync", "board": str(board.pk), "after_sequence": 21})
        updates = await receive_type(socket, "board.updates")
        assert [u["sequence"] for u in updates["updates"]] == [22, 23]
        # ...one that stopped at 4 (pruned away) gets the whole state instead.
        await socket.send_json_to({"type": "board.sync", "board": str(board.pk), "after_sequence": 4})
        whole = await receive_type(socket, "board.state")
        assert whole["sequence"] == 23 and render_b64(whole["update"]) == renderings[23]
    finally:
        await socket.disconnect()


@pytest.mark.django_db
def test_replay_reads_that_continue_from_a_kept_document_match_fresh_loads(team, settings, monkeypatch):
    """Each replay read keeps the document it ended at for the next one; whichever way a read
    starts (a kept document, a snapshot, nothing), it answers the same."""
    from boards import history

    monkeypatch.setattr(compaction, "CHECKPOINT_BYTES_RATIO", 0)
    settings.BOARD_CHECKPOINT_EVERY = 10
    board = team["board"]
    renderings = edit_history(board, team["ada"], 30)
    api = client_for(team["ada"])

    def state(n: int) -> tuple[int, dict]:
        body = api.get(f"/api/v1/boards/{board.pk}/state/?at={n}").json()
        return body["sequence"], decoded_rendering(body["update"])

    assert state(5) == (5, renderings[5])  # kept at 5
    compaction.compact_board(board.pk)  # snapshots at 10, 20, 30 now lie beyond it
    assert state(12) == (12, renderings[12])  # from the snapshot at 10
    assert state(14) == (14, renderings[14])  # from the document kept at 12
    assert state(3) == (3, renderings[3])  # backwards: loaded afresh
    history._REPLAY_DOCS.clear()
    pages = [api.get(f"/api/v1/boards/{board.pk}/history/?after_sequence={a}&limit=7").json() for a in (0, 7, 14)]
    whole = api.get(f"/api/v1/boards/{board.pk}/history/?limit=21").json()
    assert [e for p in pages for e in p["entries"]] == whole["entries"]
