"""Workspaces (issue 18; docs/workspaces.md): membership and roles, invitations (a link, and an
email through a real SMTP server: aiosmtpd), guests, the current workspace (switching, REST's
`?workspace=` and header), per-workspace limits, direct rooms, and the data migration that put the
rooms of before into the default workspace.

The isolation matrix across two workspaces (every REST endpoint and socket frame) is in
tests/test_workspaces_isolation.py."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from accounts.models import User
from attachments.services import attachment_start
from audit.models import AuditEntry
from boards.models import Board
from boards.services import board_create
from core.errors import ApplicationError
from rooms.models import Membership, Room
from rooms.services import direct_room_get_or_create, room_create
from tests.conftest import client_for, room_with
from workspaces import services
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership

V1 = "/api/v1"


@pytest.fixture
def two(db, make_user):
    """Two workspaces besides the default one: Acme (ana owns it; bob a member, gus a guest) and
    Globex (cid owns it). Everyone is also in the default workspace (every account joins it)."""
    ana, bob, gus, cid = (make_user(name) for name in ("ana", "bob", "gus", "cid"))
    acme = services.workspace_create(creator=ana, name="Acme").workspace
    globex = services.workspace_create(creator=cid, name="Globex").workspace
    WorkspaceMembership.objects.create(workspace=acme, user=bob, role="member")
    WorkspaceMembership.objects.create(workspace=acme, user=gus, role="guest")
    lobby = room_create(creator=ana, name="Lobby", kind="public", workspace=acme)
    return {"ana": ana, "bob": bob, "gus": gus, "cid": cid, "acme": acme, "globex": globex, "lobby": lobby}


def code_of(response) -> tuple[int, str | None]:
    body = response.json() if response.get("Content-Type") == "application/json" else None
    return response.status_code, body["error"]["code"] if body and "error" in body else None


# -- every account is somewhere ------------------------------------------------------------------


def test_it_puts_new_accounts_in_the_default_workspace(db, make_user):
    signed_up = Client().post(
        f"{V1}/auth/signup/",
        {"username": "newcomer", "email": "newcomer@example.com", "password": "correct-horse-battery"},
        content_type="application/json",
    )
    assert signed_up.status_code == 201
    default = Workspace.objects.get(is_default=True)
    assert list(WorkspaceMembership.objects.filter(user__username="newcomer").values_list("workspace", "role")) == [
        (default.pk, "member")
    ]
    ada = make_user("ada")
    assert client_for(ada).get(f"{V1}/workspaces/").json()["results"] == [
        {
            "id": default.pk,
            "name": default.name,
            "slug": "default",
            "role": "member",
            "is_default": True,
            "limits": {"rooms": 10**6, "boards": 10**6, "storage_bytes": 2**40, "concurrent_simulations": 100},
        }
    ]


def test_it_makes_the_creator_the_owner_and_refuses_a_taken_slug(db, make_user):
    ada = make_user("ada")
    created = client_for(ada).post(f"{V1}/workspaces/", {"name": "Research Lab"}, format="json")
    assert created.status_code == 201
    assert (created.json()["slug"], created.json()["role"]) == ("research-lab", "owner")
    again = client_for(make_user("bo")).post(f"{V1}/workspaces/", {"name": "Research Lab"}, format="json")
    assert code_of(again) == (409, "slug_taken")
    assert code_of(client_for(ada).post(f"{V1}/workspaces/", {"name": "  "}, format="json"))[0] == 400
    assert AuditEntry.objects.filter(action="workspace.create").count() == 1


# -- rooms live in a workspace -------------------------------------------------------------------


def test_rooms_are_created_in_the_current_workspace(two):
    ana, acme = two["ana"], two["acme"]
    api = client_for(ana)
    default_room = api.post(f"{V1}/rooms/", {"name": "Plain"}, format="json").json()  # my first: the default
    acme_room = api.post(f"{V1}/rooms/?workspace=acme", {"name": "Plans"}, format="json").json()
    header_room = api.post(f"{V1}/rooms/", {"name": "Ops"}, format="json", HTTP_X_PARLEY_WORKSPACE=str(acme.pk))
    assert default_room["workspace"] == Workspace.objects.get(is_default=True).pk
    assert acme_room["workspace"] == header_room.json()["workspace"] == acme.pk
    listed = {room["name"] for room in api.get(f"{V1}/rooms/?workspace=acme").json()["results"]}
    assert listed == {"Lobby", "Plans", "Ops"}
    assert {room["name"] for room in api.get(f"{V1}/rooms/").json()["results"]} == {"Plain"}
    # A workspace I am not in is not found, whether it exists or not.
    assert code_of(api.get(f"{V1}/rooms/?workspace=globex")) == (404, "not_found")
    assert code_of(api.get(f"{V1}/rooms/?workspace=nowhere")) == (404, "not_found")


def test_discover_lists_only_the_current_workspaces_public_rooms(two):
    cid, bob, lobby = two["cid"], two["bob"], two["lobby"]
    room_create(creator=cid, name="Globex square", kind="public", workspace=two["globex"])
    bob_sees = client_for(bob).get(f"{V1}/rooms/?discover=1&workspace=acme").json()["results"]
    cid_sees = client_for(cid).get(f"{V1}/rooms/?discover=1&workspace=globex").json()["results"]
    assert [room["id"] for room in bob_sees] == [str(lobby.pk)]
    assert [room["name"] for room in cid_sees] == []  # cid owns Globex square already
    assert client_for(cid).get(f"{V1}/rooms/?discover=1").json()["results"] == []  # the default has none


def test_a_public_room_is_seen_and_joined_only_from_its_workspace(two):
    lobby, bob, cid = two["lobby"], two["bob"], two["cid"]
    assert client_for(bob).get(f"{V1}/rooms/{lobby.pk}/").status_code == 200
    assert client_for(bob).post(f"{V1}/rooms/{lobby.pk}/join/").status_code == 200
    assert code_of(client_for(cid).get(f"{V1}/rooms/{lobby.pk}/")) == (404, "not_found")
    assert code_of(client_for(cid).post(f"{V1}/rooms/{lobby.pk}/join/")) == (404, "not_found")
    assert not Membership.objects.filter(room=lobby, user=cid).exists()


def test_rooms_take_members_only_from_their_workspace(two):
    ana, cid, bob, acme = two["ana"], two["cid"], two["bob"], two["acme"]
    room = room_create(creator=ana, name="Plans", kind="private", workspace=acme)
    api = client_for(ana)
    assert code_of(api.post(f"{V1}/rooms/{room.pk}/members/", {"user": "cid"}, format="json")) == (
        404,
        "user_not_found",
    )
    assert api.post(f"{V1}/rooms/{room.pk}/members/", {"user": "bob"}, format="json").status_code == 201
    # Direct rooms: between members of one workspace, one per pair and workspace.
    assert code_of(api.post(f"{V1}/rooms/direct/?workspace=acme", {"user": "cid"}, format="json")) == (
        404,
        "user_not_found",
    )
    in_acme = api.post(f"{V1}/rooms/direct/?workspace=acme", {"user": "bob"}, format="json").json()
    in_default = api.post(f"{V1}/rooms/direct/", {"user": "bob"}, format="json").json()
    assert in_acme["workspace"] == acme.pk and in_default["workspace"] != acme.pk
    assert in_acme["id"] != in_default["id"]
    assert direct_room_get_or_create(user=bob, other=ana, workspace=acme)[0].pk == uuid.UUID(in_acme["id"])
    assert client_for(cid).post(f"{V1}/rooms/direct/", {"user": "bob"}, format="json").status_code == 201


# -- guests ----------------------------------------------------------------------------------------


def test_guests_see_only_the_rooms_they_are_added_to(two):
    gus, ana, lobby, acme = two["gus"], two["ana"], two["lobby"], two["acme"]
    back_room = room_with(ana, "Back room", "private", members={gus: "member"})
    back_room.workspace = acme
    back_room.save(update_fields=["workspace"])  # room_with makes it in ana's first workspace
    api = client_for(gus)
    assert code_of(api.get(f"{V1}/rooms/{lobby.pk}/")) == (404, "not_found")
    assert code_of(api.post(f"{V1}/rooms/{lobby.pk}/join/")) == (404, "not_found")
    assert code_of(api.get(f"{V1}/rooms/{lobby.pk}/boards/")) == (404, "not_found")
    assert api.get(f"{V1}/rooms/?discover=1&workspace=acme").json()["results"] == []
    assert [r["name"] for r in api.get(f"{V1}/rooms/?workspace=acme").json()["results"]] == ["Back room"]
    assert api.get(f"{V1}/rooms/{back_room.pk}/messages/").status_code == 200
    assert code_of(api.post(f"{V1}/rooms/?workspace=acme", {"name": "Mine"}, format="json")) == (403, "guest")
    # Once in the public room (an admin added them), they see it like any member.
    Membership.objects.create(room=lobby, user=gus, role="member")
    assert api.get(f"{V1}/rooms/{lobby.pk}/").status_code == 200


# -- members and roles -----------------------------------------------------------------------------


def test_owners_and_admins_manage_members_and_removal_ends_their_rooms(two, django_capture_on_commit_callbacks):
    ana, bob, gus, acme = two["ana"], two["bob"], two["gus"], two["acme"]
    plans = room_create(creator=bob, name="Plans", kind="private", workspace=acme)  # bob its only owner
    Membership.objects.create(room=plans, user=ana, role="member")
    solo = room_create(creator=bob, name="Solo", kind="private", workspace=acme)
    bob_api, ana_api = client_for(bob), client_for(ana)
    members = ana_api.get(f"{V1}/workspaces/acme/members/").json()["results"]
    assert [(m["user"]["username"], m["role"]) for m in members] == [
        ("ana", "owner"),
        ("bob", "member"),
        ("gus", "guest"),
    ]
    # A member manages nobody; an admin manages those below them, an owner everyone.
    assert code_of(bob_api.patch(f"{V1}/workspaces/acme/members/gus/", {"role": "member"}, format="json")) == (
        403,
        "forbidden",
    )
    assert (
        ana_api.patch(f"{V1}/workspaces/acme/members/bob/", {"role": "admin"}, format="json").json()["role"] == "admin"
    )
    assert code_of(bob_api.patch(f"{V1}/workspaces/acme/members/ana/", {"role": "member"}, format="json")) == (
        403,
        "forbidden",
    )
    assert code_of(ana_api.patch(f"{V1}/workspaces/acme/members/ana/", {"role": "member"}, format="json")) == (
        409,
        "last_owner",
    )
    assert code_of(ana_api.delete(f"{V1}/workspaces/acme/members/cid/")) == (404, "user_not_found")
    # Removing bob ends his rooms here: Solo (he was its last member) goes, Plans passes to ana.
    with django_capture_on_commit_callbacks(execute=True):
        assert ana_api.delete(f"{V1}/workspaces/acme/members/bob/").status_code == 204
    assert not WorkspaceMembership.objects.filter(workspace=acme, user=bob).exists()
    assert not Room.objects.filter(pk=solo.pk).exists()
    assert list(Membership.objects.filter(room=plans).values_list("user__username", "role")) == [("ana", "owner")]
    assert code_of(client_for(bob).get(f"{V1}/rooms/{plans.pk}/")) == (404, "not_found")
    removal = AuditEntry.objects.filter(action="workspace.member.remove").get()
    assert (removal.actor_username, removal.target_id, removal.before["role"]) == ("ana", str(bob.pk), "admin")
    assert removal.scope == f"workspace:{acme.pk}"  # the workspace's own chain, with its rooms' entries
    rooms = set(AuditEntry.objects.filter(scope=removal.scope).values_list("action", flat=True))
    assert {"room.delete", "membership.role", "membership.remove"} <= rooms  # Solo, Plans' heir, bob's seat
    assert client_for(gus).delete(f"{V1}/workspaces/acme/members/gus/").status_code == 204  # leaving


# -- invitations -----------------------------------------------------------------------------------


def test_an_invitation_link_admits_whoever_has_it_until_it_expires(two, make_user):
    ana, cid, acme, lobby = two["ana"], two["cid"], two["acme"], two["lobby"]
    made = client_for(ana).post(f"{V1}/workspaces/acme/invitations/", {"role": "member"}, format="json")
    assert made.status_code == 201 and made.json()["email"] == ""
    token = made.json()["token"]
    assert made.json()["url"] == f"http://testserver/invitations/{token}/"
    assert code_of(client_for(two["bob"]).post(f"{V1}/workspaces/acme/invitations/", {}, format="json")) == (
        403,
        "forbidden",
    )
    accept = f"{V1}/workspaces/invitations/accept/"
    assert code_of(client_for(cid).post(accept, {"token": token[:-2] + "xx"}, format="json")) == (
        404,
        "invitation_invalid",
    )
    joined = client_for(cid).post(accept, {"token": token}, format="json")
    assert (joined.status_code, joined.json()["slug"], joined.json()["role"]) == (200, "acme", "member")
    assert client_for(cid).get(f"{V1}/rooms/{lobby.pk}/").status_code == 200  # Acme's rooms are his to see now
    # Links are for many: another person uses it too, until it expires.
    assert client_for(make_user("dan")).post(accept, {"token": token}, format="json").status_code == 200
    WorkspaceInvitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert code_of(client_for(cid).post(accept, {"token": token}, format="json")) == (410, "invitation_expired")
    assert WorkspaceMembership.objects.filter(workspace=acme).count() == 5  # ana, bob, gus, cid, dan


def test_an_email_invitation_is_mailed_and_used_once_by_its_address(
    two, make_user, smtp, django_capture_on_commit_callbacks
):
    ana, acme = two["ana"], two["acme"]
    dora, eve = make_user("dora"), make_user("eve")
    with django_capture_on_commit_callbacks(execute=True):
        made = client_for(ana).post(
            f"{V1}/workspaces/acme/invitations/", {"email": "Dora@Example.com", "role": "guest"}, format="json"
        )
    assert made.status_code == 201
    assert len(smtp.messages) == 1  # the SMTP server accepted it before the answer
    message = smtp.messages[0]
    assert message["To"] == "Dora@Example.com" and message["Subject"] == "ana invited you to Acme on Parley"
    link = re.search(r"http://testserver(/invitations/[^/\s]+/)", message.get_payload(decode=True).decode()).group(1)

    browser = Client()
    assert browser.get(link)["Location"].startswith("/login/")  # signed in first
    browser.force_login(eve)
    assert browser.post(link).status_code == 403  # another account's address
    browser.force_login(dora)
    page = browser.get(link)
    assert page.status_code == 200 and "Join Acme" in page.content.decode()
    joined = browser.post(link)
    assert joined.status_code == 302 and joined["Location"] == "/"
    assert WorkspaceMembership.objects.get(workspace=acme, user=dora).role == "guest"
    assert browser.session["workspace_id"] == acme.pk  # the workspace joined is the current one
    assert browser.post(link).status_code == 410  # used
    assert not WorkspaceMembership.objects.filter(workspace=acme, user=eve).exists()


def test_email_invitations_are_limited_per_inviter_and_per_address(
    two, smtp, monkeypatch, django_capture_on_commit_callbacks
):
    from rest_framework.throttling import SimpleRateThrottle

    rates = dict(SimpleRateThrottle.THROTTLE_RATES, invitation_user="3/hour", invitation_address="1/hour")
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    ana, acme = two["ana"], two["acme"]

    def invite(email: str):
        return client_for(ana).post(f"{V1}/workspaces/acme/invitations/", {"email": email}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        assert invite("dora@example.com").status_code == 201
        refused = invite("Dora@Example.com")  # that address had its one this hour
        assert code_of(refused) == (429, "email_rate_limited") and refused.json()["error"]["retry_after_ms"] > 0
        assert invite("eve@example.com").status_code == invite("fay@example.com").status_code == 201
        assert code_of(invite("gus@example.com")) == (429, "email_rate_limited")  # Ana's 3 an hour
        assert invite("").status_code == 201  # a link, mailed to nobody, is not limited
    mailed = sorted(message["To"] for message in smtp.messages)
    assert mailed == ["dora@example.com", "eve@example.com", "fay@example.com"]
    assert WorkspaceInvitation.objects.filter(workspace=acme).exclude(email="").count() == 3  # refusals made none


# -- the current workspace in the web UI ---------------------------------------------------------


def test_the_sidebar_switcher_changes_the_current_workspace(two):
    ana, acme = two["ana"], two["acme"]
    room_create(creator=ana, name="Default square", kind="private")
    browser = Client()
    browser.force_login(ana)
    home = browser.get("/").content.decode()
    assert "Default square" in home and "Lobby" not in home
    assert 'data-testid="workspace-switcher"' in home and ">Acme</option>" in home

    assert browser.post("/workspaces/switch/", {"workspace": str(acme.pk)})["Location"] == "/"
    home = browser.get("/").content.decode()
    assert "Lobby" in home and "Default square" not in home
    # The web client's REST calls follow the session's workspace.
    assert [r["name"] for r in browser.get(f"{V1}/rooms/").json()["results"]] == ["Lobby"]

    browser.post("/workspaces/switch/", {"workspace": str(two["globex"].pk)})  # not mine: refused
    assert browser.session["workspace_id"] == acme.pk
    # Opening a room of another of my workspaces makes that one current (its rooms beside it).
    plain = room_create(creator=ana, name="Plain", kind="private", workspace=Workspace.objects.get(is_default=True))
    page = browser.get(f"/rooms/{plain.pk}/").content.decode()
    assert browser.session["workspace_id"] == plain.workspace_id
    assert "Default square" in page and "Lobby" not in page


# -- limits ----------------------------------------------------------------------------------------


def test_limits_refuse_rooms_boards_files_and_runs_with_limit_reached(two):
    ana, acme, lobby = two["ana"], two["acme"], two["lobby"]
    Workspace.objects.filter(pk=acme.pk).update(
        max_rooms=1, max_boards=1, max_storage_bytes=100, max_concurrent_simulations=0
    )
    refused = client_for(ana).post(f"{V1}/rooms/?workspace=acme", {"name": "Second"}, format="json")
    assert code_of(refused) == (409, "limit_reached") and "limit of 1 rooms" in refused.json()["error"]["message"]
    assert Room.objects.filter(workspace=acme).count() == 1
    # Direct rooms do not count.
    assert direct_room_get_or_create(user=ana, other=two["bob"], workspace=acme)[1] is True

    board_create(user=ana, room_id=lobby.pk, title="One")
    with pytest.raises(ApplicationError) as board_error:
        board_create(user=ana, room_id=lobby.pk, title="Two")
    assert board_error.value.code == "limit_reached" and Board.objects.filter(room=lobby).count() == 1

    with pytest.raises(ApplicationError) as file_error:
        attachment_start(user=ana, room_id=lobby.pk, name="big.pdf", size=101, content_type="application/pdf")
    assert file_error.value.code == "limit_reached"

    template = client_for(ana).post(
        f"{V1}/rooms/{lobby.pk}/boards/from-template/", {"template": "url-shortener"}, format="json"
    )
    assert code_of(template) == (409, "limit_reached")  # boards again: the template makes one
    Workspace.objects.filter(pk=acme.pk).update(max_boards=5)
    board = client_for(ana).post(
        f"{V1}/rooms/{lobby.pk}/boards/from-template/", {"template": "url-shortener"}, format="json"
    )
    started = client_for(ana).post(
        f"{V1}/boards/{board.json()['id']}/simulations/", {"duration_s": 3, "speed": None}, format="json"
    )
    assert code_of(started) == (409, "limit_reached")
    # The default workspace keeps its own limits.
    assert client_for(ana).post(f"{V1}/rooms/", {"name": "Elsewhere"}, format="json").status_code == 201


# -- the data migration ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_existing_rooms_and_people_in_a_default_workspace():
    executor = MigrationExecutor(connection)
    before, after = [("rooms", "0002_receipts")], [("rooms", "0003_room_workspace")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before[0]).apps
        Room_ = old.get_model("rooms", "Room")
        with connection.cursor() as cursor:  # today's Workspace model would look for rooms' new column
            cursor.execute("TRUNCATE workspaces_workspace CASCADE")  # and what refers to it (memberships, SSO)
        # Accounts as they were: made before workspaces existed (bulk: no default-workspace hook).
        first, boss, other = User.objects.bulk_create(
            [
                User(username="first", password="!", date_joined=timezone.now() - timedelta(days=2)),
                User(username="boss", password="!", is_superuser=True, date_joined=timezone.now()),
                User(username="other", password="!", date_joined=timezone.now() - timedelta(days=1)),
            ]
        )
        public = Room_.objects.create(name="Old square", kind="public")
        direct = Room_.objects.create(name="first, other", kind="direct", direct_key=f"{first.pk}:{other.pk}")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    default = Workspace.objects.get()
    assert (default.is_default, default.slug) == (True, "default")
    assert set(Room.objects.values_list("pk", "workspace_id")) == {(public.pk, default.pk), (direct.pk, default.pk)}
    assert Room.objects.get(pk=direct.pk).direct_key == f"{default.pk}:{first.pk}:{other.pk}"
    roles = dict(WorkspaceMembership.objects.values_list("user__username", "role"))
    assert roles == {"first": "member", "boss": "owner", "other": "member"}
    # The pair's direct room is found again, not made twice.
    pair = User.objects.get(pk=first.pk), User.objects.get(pk=other.pk)
    assert direct_room_get_or_create(user=pair[0], other=pair[1]) == (Room.objects.get(pk=direct.pk), False)
    assert boss.pk in dict(WorkspaceMembership.objects.values_list("user_id", "role"))
