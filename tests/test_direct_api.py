"""POST /api/v1/rooms/direct/: a person's direct conversation with another, over REST."""

import pytest
from rest_framework.test import APIClient

from core.events import room_group, user_group
from rooms.models import Membership, Room
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DIRECT = "/api/v1/rooms/direct/"


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("ana", "bob", "cid")}


def test_the_first_call_creates_the_room_and_later_calls_find_it(people, events, django_capture_on_commit_callbacks):
    ana, bob = people["ana"], people["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        created = client_for(ana).post(DIRECT, {"user": "bob"})
    assert created.status_code == 201
    room = created.json()
    assert room["kind"] == "direct" and room["role"] == "member" and room["created_by"]["id"] == ana.pk
    assert set(Membership.objects.filter(room_id=room["id"]).values_list("user__username", "role")) == {
        ("ana", "member"),
        ("bob", "member"),
    }
    # Both people's sockets learn about the room, and the room about its two members.
    for person in (ana, bob):
        frames = events.frames("room.added", group=user_group(person.pk))
        assert [(frame["room"]["id"], frame["room"]["role"]) for frame in frames] == [(room["id"], "member")]
    members = events.frames("member.update", group=room_group(room["id"]))
    assert {frame["member"]["user"]["username"] for frame in members} == {"ana", "bob"}

    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = client_for(ana).post(DIRECT, {"user": "bob"})
        from_bob = client_for(bob).post(DIRECT, {"user": ana.pk}, format="json")  # by id, as a number
    assert again.status_code == 200 and again.json() == room
    assert from_bob.status_code == 200 and from_bob.json()["id"] == room["id"]
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 1
    assert len(events) == 0  # nothing changed, nothing announced


def test_only_the_two_people_see_the_room(people):
    ana, bob, cid = people["ana"], people["bob"], people["cid"]
    room_id = client_for(ana).post(DIRECT, {"user": str(bob.pk)}).json()["id"]
    assert client_for(ana).get(f"/api/v1/rooms/{room_id}/").status_code == 200
    assert client_for(bob).get(f"/api/v1/rooms/{room_id}/").json()["role"] == "member"
    assert [r["id"] for r in client_for(bob).get("/api/v1/rooms/").json()["results"]] == [room_id]
    outsider = client_for(cid)
    assert outsider.get(f"/api/v1/rooms/{room_id}/").status_code == 404
    assert outsider.post(f"/api/v1/rooms/{room_id}/join/").status_code == 404
    assert room_id not in [r["id"] for r in outsider.get("/api/v1/rooms/?discover=1").json()["results"]]
    # The outsider's own direct room with Ana is another room.
    theirs = outsider.post(DIRECT, {"user": "ana"})
    assert theirs.status_code == 201 and theirs.json()["id"] != room_id


@pytest.mark.parametrize("ref", ["nobody", "999999", ""])
def test_unknown_people_are_not_found(people, ref):
    response = client_for(people["ana"]).post(DIRECT, {"user": ref})
    if ref:
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "user_not_found"
    else:
        assert response.status_code == 400
        assert set(response.json()["error"]["fields"]) == {"user"}
    assert not Room.objects.filter(kind=Room.Kind.DIRECT).exists()


def test_deactivated_people_are_not_found(people):
    people["bob"].is_active = False
    people["bob"].save(update_fields=["is_active"])
    response = client_for(people["ana"]).post(DIRECT, {"user": "bob"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "user_not_found"


def test_a_direct_room_with_yourself_is_invalid(people):
    ana = people["ana"]
    for ref in ("ana", str(ana.pk)):
        response = client_for(ana).post(DIRECT, {"user": ref})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid" and set(error["fields"]) == {"user"}
    assert not Room.objects.exists()


def test_it_needs_a_signed_in_user(people):
    response = APIClient().post(DIRECT, {"user": "bob"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_route_is_not_taken_for_a_room_id(people):
    """rooms/direct/ comes before rooms/<room_id>/: GET is not "the room with id 'direct'"."""
    response = client_for(people["ana"]).get(DIRECT)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
