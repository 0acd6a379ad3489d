"""Room management in the web UI (docs/rooms-ui.md): handing over ownership (service, REST, and on
the way out), the room page's settings / delete / leave forms for every role, and what the pages
show (direct rooms titled by the other person, rooms of the same name told apart, Discover's member
counts and activity). The member menu's role changes and removals call the REST endpoints that
tests/test_rooms_api.py and tests/test_authz_matrix.py cover; the browser flow is in
tests/test_browser.py (test_room_management_through_the_member_menu)."""

import uuid

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.errors import ApplicationError
from rooms import services
from rooms.models import Membership, Room
from tests.conftest import client_for, room_with, send_message

pytestmark = pytest.mark.django_db

ROLES = ("owner", "admin", "member", "viewer")


@pytest.fixture
def people(make_user):
    """A private room with an owner, an admin, a member and a viewer, plus an outsider."""
    owner, admin, member, viewer, outsider = (make_user(name) for name in ("owner", "admin", "member", "viewer", "out"))
    room = room_with(owner, "Secret", Room.Kind.PRIVATE, members={admin: "admin", member: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "admin": admin, "member": member, "viewer": viewer, "outsider": outsider}


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def roles_in(room) -> dict[str, str]:
    return dict(Membership.objects.filter(room=room).values_list("user__username", "role"))


def flashes(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# -- handing over ownership -------------------------------------------------------------------------


def test_it_hands_the_room_over_and_the_owner_steps_down_to_admin(people, events, django_capture_on_commit_callbacks):
    room = people["room"]
    actor = Membership.objects.get(room=room, user=people["owner"])

    with django_capture_on_commit_callbacks(execute=True):
        new_owner = services.ownership_transfer(actor=actor, user=people["member"])

    assert new_owner.role == "owner" and actor.role == "admin"
    assert roles_in(room) == {"owner": "admin", "admin": "admin", "member": "owner", "viewer": "viewer"}
    updates = [(f["member"]["user"]["username"], f["member"]["role"]) for f in events.frames("member.update")]
    assert updates == [("member", "owner"), ("owner", "admin")]
    assert [f["room"]["role"] for f in events.frames("room.added")] == ["owner", "admin"]


@pytest.mark.parametrize("who", ["admin", "member", "viewer"])
def test_only_the_owner_hands_the_room_over(people, who, events, django_capture_on_commit_callbacks):
    before = roles_in(people["room"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(people[who]).post(f"/api/v1/rooms/{people['room'].pk}/owner/", {"user": "member"})

    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert roles_in(people["room"]) == before and not events.recorded


def test_handing_over_over_rest(people):
    response = client_for(people["owner"]).post(f"/api/v1/rooms/{people['room'].pk}/owner/", {"user": "viewer"})

    assert response.status_code == 200
    assert response.json()["user"]["username"] == "viewer" and response.json()["role"] == "owner"
    assert roles_in(people["room"])["owner"] == "admin"


@pytest.mark.parametrize(
    "user,status,code",
    [("owner", 400, "invalid"), ("out", 404, "not_member_target"), ("nobody", 404, "user_not_found")],
)
def test_handing_over_to_myself_a_non_member_or_nobody_is_refused(people, user, status, code):
    before = roles_in(people["room"])
    response = client_for(people["owner"]).post(f"/api/v1/rooms/{people['room'].pk}/owner/", {"user": user})

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert roles_in(people["room"]) == before


def test_outsiders_cannot_tell_a_private_room_exists_when_handing_over(people):
    api = client_for(people["outsider"])
    for room_id in (people["room"].pk, uuid.uuid4()):
        response = api.post(f"/api/v1/rooms/{room_id}/owner/", {"user": "owner"})
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_direct_rooms_have_no_owner_to_hand_over(make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room, _ = services.direct_room_get_or_create(user=ada, other=bob)
    actor = Membership.objects.get(room=room, user=ada)

    with pytest.raises(ApplicationError) as refused:
        services.ownership_transfer(actor=actor, user=bob)
    assert refused.value.code == "direct_room"


def test_the_last_owner_hands_over_then_leaves_over_rest(people):
    api = client_for(people["owner"])
    room_url = f"/api/v1/rooms/{people['room'].pk}/"

    refused = api.post(f"{room_url}leave/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "last_owner")

    assert api.post(f"{room_url}owner/", {"user": "admin"}).status_code == 200
    assert api.post(f"{room_url}leave/").status_code == 204
    assert roles_in(people["room"]) == {"admin": "owner", "member": "member", "viewer": "viewer"}


# -- the room page's forms ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ROLES)
def test_room_settings_are_for_owners_and_admins(people, who):
    room = people["room"]
    response = page_client(people[who]).post(
        f"/rooms/{room.pk}/settings/", {"name": "Renamed", "topic": "New topic", "kind": "public"}
    )

    assert response.status_code == 302 and response["Location"] == f"/rooms/{room.pk}/"
    room.refresh_from_db()
    if who in ("owner", "admin"):
        assert (room.name, room.topic, room.kind) == ("Renamed", "New topic", "public")
        assert flashes(response) == ["Room settings saved."]
    else:
        assert (room.name, room.topic, room.kind) == ("Secret", "", "private")
        assert flashes(response) == ["Only room owners and admins can do that."]


@pytest.mark.parametrize(
    "data", [{"name": "", "kind": "public"}, {"name": "x" * 81, "kind": "public"}, {"name": "Ok", "kind": "direct"}]
)
def test_bad_room_settings_change_nothing(people, data):
    room = people["room"]
    response = page_client(people["owner"]).post(f"/rooms/{room.pk}/settings/", data)

    assert response.status_code == 302
    room.refresh_from_db()
    assert (room.name, room.kind) == ("Secret", "private")
    assert len(flashes(response)) == 1


@pytest.mark.parametrize("who", ROLES)
def test_only_the_owner_deletes_the_room_from_its_page(people, who):
    room = people["room"]
    response = page_client(people[who]).post(f"/rooms/{room.pk}/delete/")

    assert response.status_code == 302
    if who == "owner":
        assert response["Location"] == "/" and not Room.objects.filter(pk=room.pk).exists()
    else:
        assert response["Location"] == f"/rooms/{room.pk}/" and Room.objects.filter(pk=room.pk).exists()
        assert flashes(response) == ["Only the room owner can delete it."]


@pytest.mark.parametrize("who", ROLES)
def test_leaving_from_the_page(people, who):
    room = people["room"]
    response = page_client(people[who]).post(f"/rooms/{room.pk}/leave/")

    if who == "owner":  # the last owner: refused until someone else owns the room
        assert response["Location"] == f"/rooms/{room.pk}/"
        assert flashes(response) == ["A room needs at least one owner; make someone else owner first."]
        assert "owner" in roles_in(room)
    else:
        assert response["Location"] == "/" and who not in roles_in(room)
        assert flashes(response) == ["You left Secret."]


def test_the_last_owner_leaves_from_the_page_by_naming_the_next_owner(people):
    room = people["room"]
    response = page_client(people["owner"]).post(f"/rooms/{room.pk}/leave/", {"new_owner": "member"})

    assert response["Location"] == "/"
    assert roles_in(room) == {"admin": "admin", "member": "owner", "viewer": "viewer"}


@pytest.mark.parametrize(
    "who,new_owner,flash",
    [
        ("admin", "member", "Only the room's owner can hand over ownership."),
        ("owner", "out", "That person is not a member."),
        ("owner", "nobody", "No such user."),
    ],
)
def test_a_refused_hand_over_on_the_way_out_leaves_everyone_in_place(people, who, new_owner, flash):
    room = people["room"]
    before = roles_in(room)
    response = page_client(people[who]).post(f"/rooms/{room.pk}/leave/", {"new_owner": new_owner})

    assert response["Location"] == f"/rooms/{room.pk}/"
    assert flashes(response) == [flash] and roles_in(room) == before


@pytest.mark.parametrize("action", ["settings/", "delete/", "leave/", "invite/", ""])
def test_outsiders_get_404_from_every_page_of_a_private_room(people, action):
    client = page_client(people["outsider"])
    method = client.get if action == "" else client.post
    for room_id in (people["room"].pk, uuid.uuid4()):
        response = method(f"/rooms/{room_id}/{action}", {"name": "Taken", "kind": "public"})
        assert response.status_code == 404
    room = people["room"]
    room.refresh_from_db()
    assert room.name == "Secret" and len(roles_in(room)) == 4


def test_a_member_menu_opens_the_direct_conversation_from_the_page(people):
    """The menu's "Message {name}" posts the page's direct form (rooms.views.direct_open)."""
    client = page_client(people["viewer"])

    response = client.post("/rooms/direct/", {"user": "member"})
    again = client.post("/rooms/direct/", {"user": "member"})
    unknown = client.post("/rooms/direct/", {"user": "nobody"})

    room = Room.objects.get(kind=Room.Kind.DIRECT)
    assert response["Location"] == again["Location"] == f"/rooms/{room.pk}/"
    assert roles_in(room) == {"viewer": "member", "member": "member"}
    assert unknown["Location"] == "/" and flashes(unknown) == ["No such user."]


# -- what the pages show --------------------------------------------------------------------------


def test_the_room_page_offers_what_the_role_allows(people):
    room = people["room"]
    owner_page = page_client(people["owner"]).get(f"/rooms/{room.pk}/").content.decode()
    admin_page = page_client(people["admin"]).get(f"/rooms/{room.pk}/").content.decode()
    member_page = page_client(people["member"]).get(f"/rooms/{room.pk}/").content.decode()

    assert 'id="room-settings-button" aria-haspopup="dialog">' in owner_page
    assert 'id="room-delete-form">' in owner_page
    assert 'id="room-settings-button" aria-haspopup="dialog">' in admin_page
    assert 'id="room-delete-form" hidden>' in admin_page
    assert 'id="room-settings-button" aria-haspopup="dialog" hidden>' in member_page
    for page in (owner_page, admin_page, member_page):
        assert 'id="leave-form"' in page and 'id="leave-dialog"' in page
    # The invite form is folded away (a <details>), not a permanent part of the panel.
    assert '<details class="invite-details" id="invite-details">' in owner_page
    assert 'id="invite-form"' not in member_page


def test_a_direct_room_is_titled_by_the_other_person_without_leave_or_roles(make_user):
    ada, bob = make_user("ada"), make_user("bob")
    room, _ = services.direct_room_get_or_create(user=ada, other=bob)

    page = page_client(ada).get(f"/rooms/{room.pk}/").content.decode()

    assert '<span id="room-name">bob</span>' in page and "<title>bob · Parley</title>" in page
    assert 'id="leave-form"' not in page and "Leave room" not in page
    assert "role-badge" not in page and 'id="room-settings-button"' not in page
    home = page_client(bob).get("/").content.decode()
    assert '<span class="room-name" data-room-name>ada</span>' in home
    assert "role-badge" not in home and "Direct message" in home


def test_rooms_of_the_same_name_are_told_apart(make_user):
    ada, bob = make_user("ada"), make_user("bob")
    mine = services.room_create(creator=ada, name="General", topic="Ada's team")
    theirs = services.room_create(creator=bob, name="General")
    services.room_join(room=theirs, user=ada)
    services.room_create(creator=ada, name="Unique")

    home = page_client(ada).get("/").content.decode()
    room_page = page_client(ada).get(f"/rooms/{mine.pk}/").content.decode()

    assert '<span class="room-topic" data-room-topic>Ada&#x27;s team</span>' in home
    assert '<span class="room-topic">by bob</span>' in home
    assert '<span class="sidebar-room-hint">Ada&#x27;s team</span>' in room_page
    assert '<span class="sidebar-room-hint">by bob</span>' in room_page
    assert room_page.count("sidebar-room-hint") == 2  # "Unique" needs no hint


def test_discover_shows_member_counts_and_activity_in_a_fixed_number_of_queries(make_user):
    ada, bob, cy = make_user("ada"), make_user("bob"), make_user("cy")
    services.room_create(creator=ada, name="Mine")
    busy = services.room_create(creator=bob, name="Busy")
    services.room_join(room=busy, user=cy)
    send_message(busy, bob, "hello")
    services.room_create(creator=bob, name="Quiet")
    client = page_client(ada)
    client.get("/")  # sessions, content types: what the first request loads once

    with CaptureQueriesContext(connection) as few:
        home = client.get("/").content.decode()
    for n in range(5):
        services.room_create(creator=bob, name=f"More {n}")
        services.room_create(creator=ada, name=f"Mine {n}")
    with CaptureQueriesContext(connection) as many:
        more = client.get("/").content.decode()

    assert len(many) == len(few)  # more rooms, the same statements
    discover = home.split('id="discover-rooms"')[1]
    facts = [line.split("<")[0].strip() for line in discover.split('data-testid="room-facts">')[1:]]
    assert facts == ["Public · 2 members · last message just now", "Public · 1 member · no recent messages"]
    assert more.count('data-testid="room-facts"') == 13  # 6 of mine, 7 to discover
