"""Comments on boards: who may do what, threads and replies, tombstones, and the live event."""

import uuid

import pytest

from boards import services
from boards.comments import comment_create
from boards.models import BoardComment
from rooms.models import Room
from tests.conftest import client_for, room_with
from tests.sockets import connect, receive_type


@pytest.fixture
def team(make_user):
    owner, admin, author, other, viewer, outsider = (
        make_user(n) for n in ("owner", "admin", "author", "other", "viewer", "outsider")
    )
    room = room_with(
        owner,
        "Design",
        Room.Kind.PRIVATE,
        members={admin: "admin", author: "member", other: "member", viewer: "viewer"},
    )
    board = services.board_create(user=owner, room_id=room.pk, title="Wireframes")
    return {
        "room": room,
        "board": board,
        "owner": owner,
        "admin": admin,
        "author": author,
        "other": other,
        "viewer": viewer,
        "outsider": outsider,
    }


def url(board, comment=None) -> str:
    base = f"/api/v1/boards/{board.pk}/comments/"
    return base if comment is None else f"{base}{comment}/"


def comment_events(events, board) -> list[dict]:
    return events.frames("board.comment", group=f"board.{board.pk}")


@pytest.mark.django_db
def test_it_starts_a_thread_on_an_element_and_announces_it(team, events, django_capture_on_commit_callbacks):
    board = team["board"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(team["author"]).post(url(board), {"body": "Too wide?", "element_id": "e1"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "board": str(board.pk),
        "parent": None,
        "author": {"id": team["author"].pk, "username": "author", "display_name": "author", "avatar_url": None},
        "element_id": "e1",
        "x": None,
        "y": None,
        "body": "Too wide?",
        "resolved": False,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "deleted": False,
    }
    assert comment_events(events, board) == [{"type": "board.comment", "board": str(board.pk), "comment": body}]


@pytest.mark.django_db
def test_threads_on_a_point_and_replies_one_level_deep(team):
    board, author, other = team["board"], team["author"], team["other"]
    api = client_for(other)
    thread = api.post(url(board), {"body": "Here", "x": 10.5, "y": -3}, format="json").json()
    assert (thread["x"], thread["y"], thread["element_id"]) == (10.5, -3.0, None)
    reply = client_for(author).post(url(board), {"body": "Agreed", "parent": thread["id"]}, format="json").json()
    assert reply["parent"] == thread["id"] and (reply["element_id"], reply["x"]) == (None, None)
    # A reply to a reply joins the thread.
    nested = api.post(url(board), {"body": "Me too", "parent": reply["id"], "x": 1, "y": 1}, format="json").json()
    assert nested["parent"] == thread["id"] and nested["x"] is None

    listed = client_for(team["viewer"]).get(url(board)).json()["results"]
    assert [c["id"] for c in listed] == [thread["id"], reply["id"], nested["id"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data, field",
    [
        ({"body": "no anchor"}, "element_id"),
        ({"body": "half a point", "x": 1}, "y"),
        ({"body": "bad point", "x": "left", "y": 1}, "x"),
        ({"body": "", "element_id": "e1"}, "body"),
        ({"body": "   ", "element_id": "e1"}, "body"),
        ({"body": "x" * 4001, "element_id": "e1"}, "body"),
        ({"body": "long id", "element_id": "e" * 201}, "element_id"),
    ],
)
def test_bad_comments_are_refused_and_store_nothing(team, data, field):
    response = client_for(team["author"]).post(url(team["board"]), data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and field in response.json()["error"]["fields"]
    assert not BoardComment.objects.exists()


@pytest.mark.django_db
def test_viewers_read_comments_but_cannot_write_them(team):
    board = team["board"]
    thread = comment_create(user=team["author"], board_id=board.pk, body="Look", element_id="e1")
    viewer = client_for(team["viewer"])

    assert viewer.get(url(board)).status_code == 200
    for response in (
        viewer.post(url(board), {"body": "me?", "element_id": "e1"}, format="json"),
        viewer.post(url(board), {"body": "me?", "parent": str(thread.id)}, format="json"),
        viewer.patch(url(board, thread.id), {"resolved": True}, format="json"),
        viewer.delete(url(board, thread.id)),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "forbidden"
    thread.refresh_from_db()
    assert (thread.resolved, thread.deleted_at, BoardComment.objects.count()) == (False, None, 1)


@pytest.mark.django_db
def test_outsiders_get_not_found(team):
    board = team["board"]
    thread = comment_create(user=team["author"], board_id=board.pk, body="Look", element_id="e1")
    outsider = client_for(team["outsider"])
    for response in (
        outsider.get(url(board)),
        outsider.post(url(board), {"body": "hi", "element_id": "e1"}, format="json"),
        outsider.patch(url(board, thread.id), {"body": "mine"}, format="json"),
        outsider.delete(url(board, thread.id)),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_only_the_author_edits_the_text(team, events, django_capture_on_commit_callbacks):
    board = team["board"]
    thread = comment_create(user=team["author"], board_id=board.pk, body="Draft", element_id="e1")
    for someone in ("other", "admin", "owner"):
        response = client_for(team[someone]).patch(url(board, thread.id), {"body": "Mine now"}, format="json")
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    events.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(team["author"]).patch(url(board, thread.id), {"body": "Final"}, format="json")
        unchanged = client_for(team["author"]).patch(url(board, thread.id), {"body": "Final"}, format="json")

    assert response.status_code == 200 and response.json()["body"] == "Final"
    assert response.json()["updated_at"] > response.json()["created_at"]
    assert unchanged.status_code == 200
    assert [e["comment"]["body"] for e in comment_events(events, board)] == ["Final"]  # the no-op announced nothing


@pytest.mark.django_db
def test_any_editor_resolves_and_reopens_a_thread_but_not_a_reply(team, events, django_capture_on_commit_callbacks):
    board = team["board"]
    thread = comment_create(user=team["author"], board_id=board.pk, body="Fix", element_id="e1")
    reply = comment_create(user=team["owner"], board_id=board.pk, body="On it", parent_id=thread.id)
    events.clear()

    with django_capture_on_commit_callbacks(execute=True):
        resolved = client_for(team["other"]).patch(url(board, thread.id), {"resolved": True}, format="json")
        reopened = client_for(team["admin"]).patch(url(board, thread.id), {"resolved": False}, format="json")
    refused = client_for(team["other"]).patch(url(board, reply.id), {"resolved": True}, format="json")

    assert (resolved.status_code, resolved.json()["resolved"]) == (200, True)
    assert (reopened.status_code, reopened.json()["resolved"]) == (200, False)
    assert [e["comment"]["resolved"] for e in comment_events(events, board)] == [True, False]
    assert refused.status_code == 400 and "resolved" in refused.json()["error"]["fields"]
    empty = client_for(team["other"]).patch(url(board, thread.id), {}, format="json")
    assert empty.status_code == 400


@pytest.mark.django_db
def test_the_author_or_a_room_admin_deletes_leaving_a_tombstone(team, events, django_capture_on_commit_callbacks):
    board = team["board"]
    first = comment_create(user=team["author"], board_id=board.pk, body="One", element_id="e1")
    second = comment_create(user=team["author"], board_id=board.pk, body="Two", parent_id=first.id)
    third = comment_create(user=team["other"], board_id=board.pk, body="Three", parent_id=first.id)
    refused = client_for(team["other"]).delete(url(board, first.id))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    events.clear()

    with django_capture_on_commit_callbacks(execute=True):
        by_author = client_for(team["author"]).delete(url(board, second.id))
        by_admin = client_for(team["admin"]).delete(url(board, third.id))
        again = client_for(team["admin"]).delete(url(board, third.id))

    assert [r.status_code for r in (by_author, by_admin, again)] == [200, 200, 200]
    assert by_author.json()["deleted"] and by_author.json()["body"] == ""
    assert [e["comment"]["id"] for e in comment_events(events, board)] == [str(second.id), str(third.id)]
    listed = client_for(team["viewer"]).get(url(board)).json()["results"]
    assert [(c["body"], c["deleted"]) for c in listed] == [("One", False), ("", True), ("", True)]
    assert BoardComment.objects.get(id=third.id).body == ""  # the text is gone, not just hidden
    edit = client_for(team["author"]).patch(url(board, second.id), {"body": "back"}, format="json")
    assert edit.status_code == 409 and edit.json()["error"]["code"] == "deleted"


@pytest.mark.django_db
def test_no_replies_to_a_deleted_thread_and_comments_of_other_boards_are_not_found(team):
    board, author = team["board"], team["author"]
    thread = comment_create(user=author, board_id=board.pk, body="Gone soon", element_id="e1")
    client_for(author).delete(url(board, thread.id))
    response = client_for(author).post(url(board), {"body": "late", "parent": str(thread.id)}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "deleted"

    elsewhere = services.board_create(user=team["owner"], room_id=team["room"].pk, title="Other")
    alive = comment_create(user=author, board_id=board.pk, body="Here", element_id="e1")
    api = client_for(author)
    assert api.patch(url(elsewhere, alive.id), {"body": "moved"}, format="json").status_code == 404
    assert api.post(url(elsewhere), {"body": "r", "parent": str(alive.id)}, format="json").status_code == 404
    assert api.delete(url(board, uuid.uuid4())).status_code == 404
    assert api.delete(url(board, "not-a-uuid")).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_comment_reaches_the_sockets_on_the_board(team):
    from channels.db import database_sync_to_async

    board = team["board"]
    watcher, _ = await connect(team["viewer"])
    try:
        await watcher.send_json_to({"type": "board.join", "board": str(board.pk)})
        await receive_type(watcher, "board.state")
        response = await database_sync_to_async(
            lambda: client_for(team["author"]).post(url(board), {"body": "Hello", "x": 1, "y": 2}, format="json")
        )()
        assert response.status_code == 201
        frame = await receive_type(watcher, "board.comment")
        assert frame == {"type": "board.comment", "board": str(board.pk), "comment": response.json()}
    finally:
        await watcher.disconnect()
