"""Strict isolation between workspaces (issue 18; docs/workspaces.md): the authorisation matrix's
rows (tests/test_authz_matrix.py: every REST endpoint and every socket frame) run again for one
more person: someone of ANOTHER workspace, against the matrix's public room.

The matrix's world is built as there, then its rooms move into a workspace of their own ("Acme",
with all of the world's people) and the outsider is left only in a second one ("Globex"). Within
a workspace a public room's outsider sees the room (and is told `not_member`); from another
workspace, everything the matrix hides from a private room's outsider (404 `not_found`) is hidden
from them too, for the public room: its page, messages, members, boards, comments, simulations,
attachments, search, and the socket frames naming any of them. Lists never show it either.
"""

import dataclasses
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from rooms.models import Room
from tests import test_authz_matrix as matrix
from workspaces import services as workspace_services
from workspaces.models import WorkspaceMembership

pytestmark = pytest.mark.django_db

ACTOR = "outsider@public"  # the matrix's outsider, in the public room: here of another workspace
HIDDEN = matrix.NOT_FOUND


def _foreign_world() -> matrix.World:
    world = matrix.build_world()
    users = world.users
    acme = workspace_services.workspace_create(creator=users["owner"], name="Acme").workspace
    # Test setup, not a product path: the world's rooms move into Acme with everyone but the outsider.
    Room.objects.filter(pk__in=[room.pk for room in world.rooms.values()]).update(workspace=acme)
    WorkspaceMembership.objects.bulk_create(
        [
            WorkspaceMembership(workspace=acme, user=user, role="member")
            for name, user in users.items()
            if name not in ("owner", "outsider")
        ]
    )
    outsider = users["outsider"]
    workspace_services.workspace_create(creator=outsider, name="Globex")
    WorkspaceMembership.objects.filter(user=outsider).exclude(workspace__slug="globex").delete()
    return world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[matrix.World]:
    with django_db_blocker.unblock():
        try:
            yield _foreign_world()
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def api() -> APIClient:
    return APIClient()


# What the matrix hides from a private room's outsider, naming a room's things by a path parameter.
HIDDEN_ROWS = [
    dataclasses.replace(row, expect={**row.expect, ACTOR: HIDDEN})
    for row in matrix.REST_ROWS
    if row.expect["outsider"] == HIDDEN and "{" in row.path + row.query and "{export_id}" not in row.path
]
HIDDEN_FRAMES = [
    dataclasses.replace(row, expect={**row.expect, ACTOR: "error:not_found"})
    for row in matrix.FRAME_ROWS
    if row.expect["outsider"] == "error:not_found"
]


def test_the_matrix_rows_cover_the_rooms_things():
    paths = {row.path for row in HIDDEN_ROWS}
    for thing in ("{room_id}/", "messages/{message_id}", "boards/{board_id}", "comments/{comment_id}", "{run_id}"):
        assert any(thing in path for path in paths), thing
    assert {"message.send", "history", "sync", "board.join", "board.update"} <= {row.frame for row in HIDDEN_FRAMES}


@pytest.mark.parametrize("row", HIDDEN_ROWS, ids=lambda row: row.name)
def test_rest_from_another_workspace_is_not_found(row, world, api, events, django_capture_on_commit_callbacks):
    matrix.test_rest(row, ACTOR, world, api, events, django_capture_on_commit_callbacks)


@pytest.mark.asyncio
@pytest.mark.parametrize("row", HIDDEN_FRAMES, ids=lambda row: row.name)
async def test_socket_frames_from_another_workspace_are_not_found(row, world, events):
    await matrix.test_socket(row, ACTOR, world, events)


def test_lists_search_and_members_never_show_another_workspace(world, api):
    public = world.rooms["public"]
    member = matrix._client(api, matrix.Cell(world, "member"))
    mine = member.get("/api/v1/rooms/?workspace=acme").json()["results"]
    assert str(public.pk) in {room["id"] for room in mine}
    hits = member.get("/api/v1/search/?q=edited&workspace=acme").json()["results"]
    assert str(public.pk) in {hit["room"]["id"] for hit in hits}  # the search below would find it

    outsider = matrix._client(api, matrix.Cell(world, "outsider"))
    assert outsider.get("/api/v1/rooms/?discover=1").json()["results"] == []
    assert outsider.get("/api/v1/rooms/").json()["results"] == []
    assert outsider.get("/api/v1/search/?q=edited").json()["results"] == []
    for path in (
        "/api/v1/rooms/?workspace=acme",
        "/api/v1/search/?q=edited&workspace=acme",
        "/api/v1/workspaces/acme/members/",
    ):
        answer = outsider.get(path)
        assert (answer.status_code, answer.json()["error"]["code"]) == HIDDEN, path
    assert [w["slug"] for w in outsider.get("/api/v1/workspaces/").json()["results"]] == ["globex"]


def test_the_matrix_world_is_where_this_test_put_it(world):
    """The premise of every row above (a broken premise would make them pass vacuously)."""
    outsider = world.users["outsider"]
    rooms = Room.objects.filter(pk__in=[room.pk for room in world.rooms.values()])
    assert set(rooms.values_list("workspace__slug", flat=True)) == {"acme"}
    assert list(WorkspaceMembership.objects.filter(user=outsider).values_list("workspace__slug", flat=True)) == [
        "globex"
    ]
