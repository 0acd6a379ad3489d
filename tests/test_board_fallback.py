"""Boards without a socket (docs/protocol.md, "Boards in a stream"): awareness over REST
(`POST boards/{id}/awareness/`: who may, what it announces, its limit per client) and board
updates over REST on a budget of their own. The board page's client over SSE and long-polling is
tests/test_board_browser.py's fallback test."""

import uuid

import pytest
from channels.db import database_sync_to_async
from rest_framework.throttling import SimpleRateThrottle

from boards.models import BoardUpdate
from boards.services import board_create, board_delete, board_group
from rooms.models import Room
from tests.boards_helpers import Client, b64
from tests.conftest import client_for, room_with
from tests.sockets import connect, receive_type


def crew(make_user):
    owner, member, viewer, outsider = (make_user(n) for n in ("owner", "member", "viewer", "outsider"))
    room = room_with(owner, "Crew", Room.Kind.PRIVATE, members={member: "member", viewer: "viewer"})
    board = board_create(user=owner, room_id=room.pk, title="Plan")
    return owner, member, viewer, outsider, board


def awareness(user, board, state, session="tab-1"):
    return client_for(user).post(f"/api/v1/boards/{board.pk}/awareness/", {"session": session, "state": state})


@pytest.mark.django_db
def test_it_announces_a_members_and_a_viewers_awareness_to_the_board(
    make_user, events, django_capture_on_commit_callbacks
):
    owner, member, viewer, _, board = crew(make_user)
    cursor = {"cursor": {"x": 10, "y": 20}, "selection": [], "name": "v", "colour": "#123456"}
    with django_capture_on_commit_callbacks(execute=True):
        answers = [awareness(member, board, {"cursor": None}), awareness(viewer, board, cursor, session="Tab_2")]
        gone = awareness(viewer, board, None, session="Tab_2")
    assert [a.status_code for a in (*answers, gone)] == [200, 200, 200]
    assert answers[1].json() == {"session": f"rest-{viewer.pk}-Tab_2"}  # viewers' cursors are shown too
    sent = events.of_type("board.awareness")
    assert [e.groups for e in sent] == [[board_group(board.pk)]] * 3
    assert [(e.frame["session"], e.frame["state"]) for e in sent] == [
        (f"rest-{member.pk}-tab-1", {"cursor": None}),
        (f"rest-{viewer.pk}-Tab_2", cursor),
        (f"rest-{viewer.pk}-Tab_2", None),  # gone
    ]
    assert sent[1].frame["type"] == "board.awareness" and sent[1].frame["board"] == str(board.pk)
    assert sent[1].frame["user"]["id"] == viewer.pk
    assert not BoardUpdate.objects.exists()  # ephemeral: nothing stored


@pytest.mark.django_db
def test_it_refuses_outsiders_a_deleted_board_and_bad_input_and_announces_nothing(
    make_user, events, django_capture_on_commit_callbacks
):
    owner, member, _, outsider, board = crew(make_user)
    public = board_create(user=owner, room_id=room_with(owner, "Open", Room.Kind.PUBLIC).pk, title="Open")
    gone = board_create(user=owner, room_id=board.room_id, title="Gone")
    board_delete(user=owner, board_id=gone.pk)
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        answers = {
            "outsider": awareness(outsider, board, {"cursor": None}),
            "public": awareness(outsider, public, {"cursor": None}),
            "deleted": awareness(member, gone, {"cursor": None}),
            "unknown": awareness(member, type("B", (), {"pk": "nope"}), {"cursor": None}),
            "no session": awareness(member, board, {"cursor": None}, session=""),
            "bad session": awareness(member, board, {"cursor": None}, session="a b/c"),
            "not an object": awareness(member, board, ["x"]),
            "too large": awareness(member, board, {"name": "x" * 5000}),
        }
    codes = {name: (a.status_code, a.json()["error"]["code"]) for name, a in answers.items()}
    assert codes == {
        "outsider": (404, "not_found"),
        "public": (403, "not_member"),
        "deleted": (404, "not_found"),
        "unknown": (404, "not_found"),
        "no session": (400, "invalid"),
        "bad session": (400, "invalid"),
        "not an object": (400, "invalid"),
        "too large": (400, "too_large"),
    }
    assert "session" in answers["bad session"].json()["error"]["fields"]
    assert events.of_type("board.awareness") == []


@pytest.mark.django_db
def test_awareness_is_limited_per_client_and_updates_have_their_own_budget(make_user, monkeypatch):
    rates = dict(SimpleRateThrottle.THROTTLE_RATES, awareness="3/min", awareness_user="7/min")
    rates |= {"board": "2/min", "send": "1/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    _, member, _, _, board = crew(make_user)

    tab_one = [awareness(member, board, {"cursor": {"x": n, "y": 0}}).status_code for n in range(4)]
    limited = awareness(member, board, {"cursor": None}).json()["error"]
    assert tab_one == [200, 200, 200, 429]
    assert limited["code"] == "rate_limited" and limited["retry_after_ms"] > 0
    # Another page of the same user has a budget of its own, but made-up keys do not add up forever.
    others = [awareness(member, board, {"cursor": None}, session=f"tab-{n}").status_code for n in (2, 3, 4)]
    assert others == [200, 200, 429]  # the user's 7 a minute here, every request counted (60/s by default)

    # Board updates over REST draw on `board`, not on the user's message sends.
    api, editor = client_for(member), Client()
    url = f"/api/v1/boards/{board.pk}/updates/"
    posted = [
        api.post(url, {"update": b64(editor.edit(f"e{n}", x=n)), "client_update_id": str(uuid.uuid4())}).status_code
        for n in range(3)
    ]
    message = api.post(
        f"/api/v1/rooms/{board.room_id}/messages/", {"content": "hi", "client_msg_id": str(uuid.uuid4())}
    )
    assert posted == [201, 201, 429] and message.status_code == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_rest_clients_awareness_reaches_the_sockets_on_the_board(make_user):
    owner, member, viewer, _, board = await database_sync_to_async(crew)(make_user)
    socket, _ = await connect(member)
    await socket.send_json_to({"type": "board.join", "board": str(board.pk)})
    await receive_type(socket, "board.state")

    answer = await database_sync_to_async(awareness)(viewer, board, {"cursor": {"x": 1, "y": 2}})
    assert answer.status_code == 200
    frame = await receive_type(socket, "board.awareness")
    assert (frame["session"], frame["state"], frame["user"]["id"]) == (
        f"rest-{viewer.pk}-tab-1",
        {"cursor": {"x": 1, "y": 2}},
        viewer.pk,
    )
    await database_sync_to_async(awareness)(viewer, board, None)
    assert (await receive_type(socket, "board.awareness"))["state"] is None
    await socket.disconnect()
