"""One access policy (rooms.access) for every path; a room never loses its last owner; one name
per person whatever its case."""

import importlib
import itertools
import uuid

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from core.errors import ApplicationError
from messaging.services import message_edit, message_send, message_send_many
from presence.services import typing_notify
from rooms import access, services
from rooms.models import Membership, Room
from rooms.selectors import user_find

pytestmark = pytest.mark.django_db


def test_the_send_statements_rule_table_is_the_policy_itself():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kind, role, user_active, allowed FROM {access.send_rules_sql()}")
        table = {(kind, role, active): allowed for kind, role, active, allowed in cursor.fetchall()}

    combinations = list(itertools.product(Room.Kind.values, [*Membership.Role.values, None], [True, False]))
    assert set(table) == set(combinations)
    for kind, role, active in combinations:
        assert table[kind, role, active] == (access.send_refusal(kind=kind, role=role, user_active=active) is None)


@pytest.fixture
def roles(make_user):
    owner = make_user("owner")
    room = services.room_create(creator=owner, name="Roles", kind=Room.Kind.PUBLIC)
    people = {"owner": owner}
    for role in ("admin", "member", "viewer"):
        people[role] = make_user(role)
        Membership.objects.create(room=room, user=people[role], role=role)
    people["outsider"] = make_user("outsider")
    return room, people


@pytest.mark.django_db(transaction=True)
def test_every_write_path_refuses_the_same_people_with_the_same_code(roles):
    """The batch statement (socket and REST sends) and the selector path (edits) agree."""
    room, people = roles
    mine = message_send(user=people["owner"], room_id=room.pk, content="first", client_msg_id=uuid.uuid4())[0]
    expected = {"owner": None, "admin": None, "member": None, "viewer": "forbidden", "outsider": "not_member"}
    for name, code in expected.items():
        user = people[name]
        (sent,) = message_send_many(
            requests=[{"user": user, "room_id": room.pk, "content": "hi", "client_msg_id": uuid.uuid4()}]
        )
        try:
            message_edit(user=user, room_id=room.pk, message_id=mine.id, content=f"edit by {name}")
            edit_code = None
        except ApplicationError as error:
            edit_code = error.code
        send_code = sent.code if isinstance(sent, ApplicationError) else None
        assert send_code == code, name
        # Edits also need authorship: everyone but the author who may write gets "forbidden".
        assert edit_code == (None if name == "owner" else code or "forbidden"), name


def test_an_owner_who_is_the_last_member_leaving_deletes_the_room(
    make_user, events, django_capture_on_commit_callbacks
):
    owner = make_user("owner")
    room = services.room_create(creator=owner, name="Solo", kind=Room.Kind.PUBLIC)
    membership = Membership.objects.get(room=room, user=owner)

    with django_capture_on_commit_callbacks(execute=True):
        services.room_leave(membership=membership)

    assert not Room.objects.filter(pk=room.pk).exists()
    assert events.frames("room.removed") == [{"type": "room.removed", "room": str(room.pk)}]


def test_the_last_owner_cannot_leave_others_behind_until_someone_else_owns_it(roles):
    room, people = roles
    owner_membership = Membership.objects.get(room=room, user=people["owner"])

    with pytest.raises(ApplicationError) as refused:
        services.room_leave(membership=owner_membership)
    assert refused.value.code == "last_owner"

    services.membership_update(actor=owner_membership, user=people["admin"], role="owner")
    services.room_leave(membership=owner_membership)
    assert list(Membership.objects.filter(room=room, role="owner").values_list("user__username", flat=True)) == [
        "admin"
    ]


def test_the_last_member_who_is_not_an_owner_deletes_the_room_too(make_user):
    """A room whose owners are all gone cannot exist, but a room left with one viewer is deleted
    when that viewer leaves, not left to whoever joins it next."""
    owner, viewer = make_user("owner"), make_user("viewer")
    room = services.room_create(creator=owner, name="Handover")
    Membership.objects.create(room=room, user=viewer, role="viewer")
    Membership.objects.filter(room=room, user=owner).delete()  # as if the owner's account were gone

    services.room_leave(membership=Membership.objects.get(room=room, user=viewer))

    assert not Room.objects.filter(pk=room.pk).exists()


def test_usernames_are_unique_whatever_their_case(make_user):
    make_user("ana")

    response = Client().post(
        "/api/v1/auth/signup/",
        {"username": "ANA", "email": "impostor@example.com", "password": "correct-horse-battery"},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"username": ["A user with that username already exists."]}
    assert User.objects.count() == 1


def test_sign_in_accepts_any_case(make_user):
    ana = make_user("ana")

    tokens = Client().post(
        "/api/v1/auth/token/", {"username": "AnA", "password": "correct-horse-battery"}, content_type="application/json"
    )
    browser = Client()

    assert tokens.status_code == 200 and "access" in tokens.json()
    assert browser.login(username="ANA", password="correct-horse-battery")
    assert user_find(user_ref="ANA") == ana


def test_the_migration_refuses_names_that_clash_by_case(make_user):
    make_user("Bob")
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX user_username_lower_unique")  # rolled back with the test
    make_user("bob")
    migration = importlib.import_module("accounts.migrations.0003_username_case_insensitive")

    with pytest.raises(RuntimeError, match=r"Bob \(id \d+\), bob \(id \d+\)"):
        migration.refuse_clashing_usernames(None, connection.schema_editor())


def test_typing_follows_the_same_policy(roles):
    room, people = roles
    private = services.room_create(creator=people["owner"], name="Hidden", kind=Room.Kind.PRIVATE)
    codes = {}
    for name, room_id in (("viewer", room.pk), ("outsider", room.pk), ("outsider-private", private.pk)):
        try:
            typing_notify(user=people[name.split("-")[0]], room_id=room_id)
        except ApplicationError as error:
            codes[name] = error.code

    assert typing_notify(user=people["member"], room_id=room.pk) is True
    assert codes == {"viewer": "forbidden", "outsider": "not_member", "outsider-private": "not_found"}
