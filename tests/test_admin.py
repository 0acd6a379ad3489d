"""Django admin writes through rooms.services: removals stop delivery at once, the owner and rank
rules hold, edits are announced; nothing else in admin can change a membership."""

import uuid

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from accounts.models import User
from messaging.services import message_send
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.sockets import connect, receive_type

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff(db) -> Client:
    admin = User.objects.create_superuser("root", "root@example.com", "correct-horse-battery")
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def crew(make_user):
    owner, member = make_user("owner"), make_user("member")
    room = room_create(creator=owner, name="Crew", kind=Room.Kind.PRIVATE)
    membership = Membership.objects.create(room=room, user=member, role="member")
    return {"room": room, "owner": owner, "member": member, "membership": membership}


@pytest.mark.asyncio
async def test_a_member_removed_in_admin_stops_receiving_the_room_at_once(staff, crew):
    room, member, owner = crew["room"], crew["member"], crew["owner"]
    socket, ready = await connect(member)
    assert str(room.pk) in ready["rooms"]

    response = await database_sync_to_async(staff.post)(
        f"/admin/rooms/membership/{crew['membership'].pk}/delete/", {"post": "yes"}
    )
    await database_sync_to_async(message_send)(
        user=owner, room_id=room.pk, content="after the removal", client_msg_id=uuid.uuid4()
    )
    # A message in the member's own direct room, sent after: it arrives, the room's does not.
    other = await database_sync_to_async(room_create)(creator=member, name="Mine")
    await database_sync_to_async(message_send)(
        user=member, room_id=other.pk, content="marker", client_msg_id=uuid.uuid4()
    )

    assert response.status_code == 302
    assert (await receive_type(socket, "room.removed"))["room"] == str(room.pk)
    frames = []
    while not frames or frames[-1].get("message", {}).get("content") != "marker":
        frames.append(await socket.receive_json_from(timeout=5))
    assert [f for f in frames if f.get("room") == str(room.pk) and f["type"] == "message.new"] == []
    assert not await database_sync_to_async(Membership.objects.filter(pk=crew["membership"].pk).exists)()
    await socket.disconnect()


def test_admin_cannot_remove_the_last_owner(staff, crew):
    owner_membership = Membership.objects.get(room=crew["room"], user=crew["owner"])

    response = staff.post(f"/admin/rooms/membership/{owner_membership.pk}/delete/", {"post": "yes"}, follow=True)

    assert Membership.objects.filter(pk=owner_membership.pk).exists()
    assert "A room needs at least one owner" in response.content.decode()


def test_bulk_removal_in_admin_goes_through_the_service(staff, crew, events, make_user):
    extra = Membership.objects.create(room=crew["room"], user=make_user("extra"), role="viewer")
    events.clear()
    ids = [crew["membership"].pk, extra.pk]

    staff.post("/admin/rooms/membership/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})

    assert not Membership.objects.filter(pk__in=ids).exists()
    removed = [frame["room"] for frame in events.frames("room.removed")]
    assert removed == [str(crew["room"].pk)] * 2


def test_memberships_cannot_be_added_or_changed_in_admin(staff, crew):
    membership = crew["membership"]

    add = staff.get("/admin/rooms/membership/add/")
    change = staff.post(
        f"/admin/rooms/membership/{membership.pk}/change/",
        {"room": crew["room"].pk, "user": membership.user_id, "role": "owner"},
    )
    room_page = staff.post(
        f"/admin/rooms/room/{crew['room'].pk}/change/",
        {
            "name": "Crew",
            "topic": "",
            "kind": "private",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": membership.pk,
            "memberships-0-room": crew["room"].pk,
            "memberships-0-role": "owner",
            "memberships-0-DELETE": "on",
        },
    )

    assert add.status_code == 403
    assert change.status_code == 403
    assert room_page.status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == "member"


def test_a_room_edited_in_admin_is_announced_to_the_room(staff, crew, events):
    events.clear()

    response = staff.post(
        f"/admin/rooms/room/{crew['room'].pk}/change/",
        {
            "name": "Renamed",
            "topic": "new topic",
            "kind": "private",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    assert Room.objects.get(pk=crew["room"].pk).name == "Renamed"
    (update,) = events.frames("room.update")
    assert (update["room"]["name"], update["room"]["topic"]) == ("Renamed", "new topic")


def test_a_room_deleted_in_admin_tells_every_member(staff, crew, events):
    events.clear()

    response = staff.post(f"/admin/rooms/room/{crew['room'].pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Room.objects.filter(pk=crew["room"].pk).exists()
    assert sorted(e.groups[0] for e in events.of_type("user.membership")) == sorted(
        [f"user.{crew['owner'].pk}", f"user.{crew['member'].pk}"]
    )
