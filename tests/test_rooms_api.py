import uuid

import pytest

from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for, room_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    """A private room with an owner, an admin, a member and a viewer, plus an outsider."""
    owner, admin, member, viewer, outsider = (make_user(name) for name in ("owner", "admin", "member", "viewer", "out"))
    room = room_with(owner, "Secret", Room.Kind.PRIVATE, members={admin: "admin", member: "member", viewer: "viewer"})
    return {"room": room, "owner": owner, "admin": admin, "member": member, "viewer": viewer, "outsider": outsider}


def test_it_creates_a_room_owned_by_the_creator(make_user):
    ada = make_user("ada")
    response = client_for(ada).post("/api/v1/rooms/", {"name": "General", "topic": "Hi"})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "General" and body["kind"] == "public" and body["role"] == "owner"
    assert Membership.objects.get(room_id=body["id"], user=ada).role == "owner"


def test_it_validates_room_input(make_user):
    response = client_for(make_user()).post("/api/v1/rooms/", {"name": "", "kind": "direct"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "kind"}


def test_list_shows_only_my_rooms_and_discover_shows_unjoined_public_ones(people, make_user):
    public = room_create(creator=people["owner"], name="Lobby")
    mine = client_for(people["member"]).get("/api/v1/rooms/").json()["results"]
    assert [room["name"] for room in mine] == ["Secret"]
    discover = client_for(people["outsider"]).get("/api/v1/rooms/?discover=1").json()["results"]
    assert [room["id"] for room in discover] == [str(public.pk)]


def test_discover_is_a_boolean(make_user):
    """Found by the negative schema test: `?discover=Å` listed my rooms as if it said no."""
    api = client_for(make_user())

    assert api.get("/api/v1/rooms/?discover=true").status_code == 200
    response = api.get("/api/v1/rooms/?discover=%C3%85")

    assert (response.status_code, list(response.json()["error"]["fields"])) == (400, ["discover"])


@pytest.mark.parametrize("who", ["owner", "admin", "member", "viewer"])
def test_members_see_the_private_room(people, who):
    response = client_for(people[who]).get(f"/api/v1/rooms/{people['room'].pk}/")
    assert response.status_code == 200
    assert response.json()["role"] == who


@pytest.mark.parametrize(
    "method,suffix,data",
    [
        ("get", "", None),
        ("patch", "", {"name": "x"}),
        ("delete", "", None),
        ("post", "join/", None),
        ("post", "leave/", None),
        ("get", "members/", None),
        ("post", "members/", {"user": "out"}),
        ("get", "messages/", None),
        ("post", "messages/", {"content": "hi", "client_msg_id": str(uuid.uuid4())}),
    ],
)
def test_outsiders_get_404_never_403_for_a_private_room(people, method, suffix, data):
    api = client_for(people["outsider"])
    existing = getattr(api, method)(f"/api/v1/rooms/{people['room'].pk}/{suffix}", data)
    missing = getattr(api, method)(f"/api/v1/rooms/{uuid.uuid4()}/{suffix}", data)
    malformed = getattr(api, method)(f"/api/v1/rooms/not-a-uuid/{suffix}", data)
    for response in (existing, missing, malformed):
        assert response.status_code == 404, response.content
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_only_owners_and_admins_edit_the_room(people):
    room_url = f"/api/v1/rooms/{people['room'].pk}/"
    assert client_for(people["member"]).patch(room_url, {"topic": "x"}).json()["error"]["code"] == "forbidden"
    assert client_for(people["viewer"]).patch(room_url, {"topic": "x"}).status_code == 403
    response = client_for(people["admin"]).patch(room_url, {"topic": "New topic"})
    assert response.status_code == 200 and response.json()["topic"] == "New topic"


def test_only_the_owner_deletes_the_room(people):
    room_url = f"/api/v1/rooms/{people['room'].pk}/"
    assert client_for(people["admin"]).delete(room_url).status_code == 403
    assert client_for(people["owner"]).delete(room_url).status_code == 204
    assert not Room.objects.filter(pk=people["room"].pk).exists()


def test_join_works_for_public_rooms_only(people, make_user):
    lobby = room_create(creator=people["owner"], name="Lobby")
    outsider = client_for(people["outsider"])
    joined = outsider.post(f"/api/v1/rooms/{lobby.pk}/join/")
    assert joined.status_code == 200 and joined.json()["role"] == "member"
    assert outsider.post(f"/api/v1/rooms/{lobby.pk}/join/").status_code == 200  # idempotent
    assert Membership.objects.filter(room=lobby, user=people["outsider"]).count() == 1


def test_non_members_of_a_public_room_see_it_but_not_its_messages(people):
    lobby = room_create(creator=people["owner"], name="Lobby")
    outsider = client_for(people["outsider"])
    assert outsider.get(f"/api/v1/rooms/{lobby.pk}/").json()["role"] is None
    response = outsider.get(f"/api/v1/rooms/{lobby.pk}/messages/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_member"


def test_admins_add_members_by_username_or_id(people):
    members_url = f"/api/v1/rooms/{people['room'].pk}/members/"
    admin = client_for(people["admin"])
    response = admin.post(members_url, {"user": "out", "role": "viewer"})
    assert response.status_code == 201 and response.json()["role"] == "viewer"
    again = admin.post(members_url, {"user": str(people["outsider"].pk)})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
    unknown = admin.post(members_url, {"user": "nobody"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "user_not_found"


def test_members_and_viewers_cannot_manage_members(people):
    members_url = f"/api/v1/rooms/{people['room'].pk}/members/"
    for who in ("member", "viewer"):
        response = client_for(people[who]).post(members_url, {"user": "out"})
        assert response.status_code == 403
    assert not Membership.objects.filter(user=people["outsider"]).exists()


def test_admins_cannot_grant_admin_or_touch_owners(people):
    room = people["room"]
    admin = client_for(people["admin"])
    assert admin.post(f"/api/v1/rooms/{room.pk}/members/", {"user": "out", "role": "admin"}).status_code == 403
    assert admin.patch(f"/api/v1/rooms/{room.pk}/members/{people['owner'].pk}/", {"role": "member"}).status_code == 403
    assert admin.delete(f"/api/v1/rooms/{room.pk}/members/{people['owner'].pk}/").status_code == 403
    promoted = admin.patch(f"/api/v1/rooms/{room.pk}/members/{people['viewer'].pk}/", {"role": "member"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "member"


def test_the_last_owner_cannot_leave_or_step_down(people):
    owner = client_for(people["owner"])
    room = people["room"]
    leave = owner.post(f"/api/v1/rooms/{room.pk}/leave/")
    assert leave.status_code == 409 and leave.json()["error"]["code"] == "last_owner"
    demote = owner.patch(f"/api/v1/rooms/{room.pk}/members/{people['owner'].pk}/", {"role": "member"})
    assert demote.status_code == 409
    owner.patch(f"/api/v1/rooms/{room.pk}/members/{people['admin'].pk}/", {"role": "owner"})
    assert owner.post(f"/api/v1/rooms/{room.pk}/leave/").status_code == 204


def test_owner_removes_a_member_and_they_lose_access(people):
    room = people["room"]
    assert (
        client_for(people["owner"]).delete(f"/api/v1/rooms/{room.pk}/members/{people['member'].pk}/").status_code == 204
    )
    assert client_for(people["member"]).get(f"/api/v1/rooms/{room.pk}/").status_code == 404


def test_direct_rooms_are_found_again_not_duplicated(make_user):
    from rooms.services import direct_room_get_or_create

    ada, bob = make_user("ada"), make_user("bob")
    first, created = direct_room_get_or_create(user=ada, other=bob)
    second, created_again = direct_room_get_or_create(user=bob, other=ada)
    assert created and not created_again
    assert first.pk == second.pk and first.kind == "direct"
    assert set(Membership.objects.filter(room=first).values_list("user__username", flat=True)) == {"ada", "bob"}
    response = client_for(ada).post(f"/api/v1/rooms/{first.pk}/members/", {"user": "bob"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "direct_room"
