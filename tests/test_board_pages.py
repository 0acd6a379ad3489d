"""The board page (/rooms/<room>/boards/<board>/, boards/views.py) and the room page's boards panel:
who gets the page, and what it hands the board's script (static/js/board/page.js)."""

import json
import re
import uuid

import pytest
from django.test import Client

from boards.services import board_create
from tests.conftest import room_with

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_data(response) -> dict:
    html = response.content.decode()
    match = re.search(r'<script id="board-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no board-data on the page"
    return json.loads(match.group(1))


def test_members_and_viewers_get_the_page_with_their_role(make_user):
    owner, viewer = make_user(), make_user()
    room = room_with(owner, name="Plans", members={viewer: "viewer"})
    board = board_create(user=owner, room_id=room.pk, title="Q3 <sketch>")
    url = f"/rooms/{room.pk}/boards/{board.pk}/"
    for user, role in ((owner, "owner"), (viewer, "viewer")):
        response = signed_in(user).get(url)
        assert response.status_code == 200
        data = page_data(response)
        assert data["board"] == {
            "id": str(board.pk),
            "room": str(room.pk),
            "title": "Q3 <sketch>",
            "created_by": {
                "id": owner.pk,
                "username": owner.username,
                "display_name": owner.username,
                "avatar_url": None,
            },  # who may rename / delete it
        }
        assert data["role"] == role and data["me"]["id"] == user.pk
        html = response.content.decode()
        assert "Q3 &lt;sketch&gt;" in html and "Q3 <sketch>" not in html.split('id="board-data"')[0]
        assert f'href="/api/v1/boards/{board.pk}/" as="fetch"' in html  # preloaded for page.js
        assert "js/board/page.js" in html


def test_outsiders_unknown_boards_and_boards_of_other_rooms_are_not_found(make_user):
    owner, outsider = make_user(), make_user()
    room = room_with(owner)
    other_room = room_with(owner, name="Elsewhere")
    board = board_create(user=owner, room_id=room.pk, title="Mine")
    assert signed_in(outsider).get(f"/rooms/{room.pk}/boards/{board.pk}/").status_code == 404
    assert signed_in(owner).get(f"/rooms/{room.pk}/boards/{uuid.uuid4()}/").status_code == 404
    assert signed_in(owner).get(f"/rooms/{other_room.pk}/boards/{board.pk}/").status_code == 404
    assert signed_in(owner).get(f"/rooms/{uuid.uuid4()}/boards/{board.pk}/").status_code == 404


def test_a_public_rooms_non_member_is_sent_to_the_room_and_anonymous_to_sign_in(make_user):
    owner, passer = make_user(), make_user()
    room = room_with(owner, kind="public")
    board = board_create(user=owner, room_id=room.pk, title="Open")
    url = f"/rooms/{room.pk}/boards/{board.pk}/"
    response = signed_in(passer).get(url)
    assert response.status_code == 302 and response["Location"] == f"/rooms/{room.pk}/"
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_room_page_has_the_boards_panel(make_user):
    owner, viewer = make_user(), make_user()
    room = room_with(owner, members={viewer: "viewer"})
    html = signed_in(owner).get(f"/rooms/{room.pk}/").content.decode()
    assert 'id="board-list"' in html and 'id="board-split"' in html
    assert re.search(r'<form class="input-row board-create" id="board-create">', html)
    viewer_html = signed_in(viewer).get(f"/rooms/{room.pk}/").content.decode()
    assert re.search(r'id="board-create" hidden>', viewer_html)  # viewers cannot create boards
