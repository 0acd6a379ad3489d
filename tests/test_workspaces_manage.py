"""Workspaces, the second slice (issue 18; docs/workspaces.md): an account in no workspace,
managing a workspace (rename, address, withdrawing invitations, deleting, leaving), the members
page, and what a removal does to the removed person's open sockets."""

import io
import re
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from core.errors import ApplicationError
from rooms.models import Membership, Room
from rooms.services import room_create
from tests.conftest import client_for, nothing_but_presence
from tests.sockets import TIMEOUT, connect, receive_type
from workspaces import services
from workspaces.models import Workspace, WorkspaceInvitation, WorkspaceMembership

V1 = "/api/v1"


def code_of(response) -> tuple[int, str | None]:
    body = response.json() if response.get("Content-Type") == "application/json" else None
    return response.status_code, body["error"]["code"] if body and "error" in body else None


@pytest.fixture
def acme(db, make_user):
    """Acme: ana owns it, bob is a member. Both are in the default workspace too."""
    ana, bob = make_user("ana"), make_user("bob")
    workspace = services.workspace_create(creator=ana, name="Acme").workspace
    WorkspaceMembership.objects.create(workspace=workspace, user=bob, role="member")
    return {"ana": ana, "bob": bob, "acme": workspace}


# -- an account in no workspace --------------------------------------------------------------------


def test_an_account_in_no_workspace_gets_a_page_and_a_clear_api_error(acme, make_user):
    ana = acme["ana"]
    dora = make_user("dora")
    # Leaving one's last workspace is allowed now that an account in none is handled.
    assert client_for(dora).delete(f"{V1}/workspaces/default/members/dora/").status_code == 204
    assert not WorkspaceMembership.objects.filter(user=dora).exists()
    invitation, _ = services.invitation_create(
        actor=WorkspaceMembership.objects.get(user=ana, workspace=acme["acme"]),
        email="DORA@example.com",
        base_url="http://testserver/",
    )

    api = client_for(dora)
    for method, path, body in (
        ("get", f"{V1}/rooms/", None),
        ("get", f"{V1}/rooms/?discover=1", None),
        ("post", f"{V1}/rooms/", {"name": "Mine"}),
        ("post", f"{V1}/rooms/direct/", {"user": "ana"}),
        ("get", f"{V1}/search/?q=hello", None),
    ):
        answer = getattr(api, method)(path, body, format="json") if body else getattr(api, method)(path)
        assert code_of(answer) == (409, "no_workspace"), path
        assert "create one" in answer.json()["error"]["message"]
    assert api.get(f"{V1}/workspaces/").json()["results"] == []

    browser = Client()
    browser.force_login(dora)
    home = browser.get("/")
    page = home.content.decode()
    assert home.status_code == 200 and 'data-testid="no-workspace"' in page
    assert "Acme" in page
    # The invitation's page (its token is signed at render time: compared by what it names).
    [shown] = re.findall(r'href="/invitations/([^/"]+)/"', page)
    assert services.invitation_from_token(shown).pk == invitation.pk
    assert '<label for="workspace-name">Name</label>' in page
    # The page's forms that need a workspace refuse with a message, not a 500.
    refused = browser.post("/rooms/new/", {"name": "Mine", "kind": "public"}, follow=True)
    assert refused.status_code == 200 and "not a member of any workspace" in refused.content.decode()
    # Creating one makes it current; the home page is the usual one again.
    made = browser.post("/workspaces/new/", {"name": "Dora's place"})
    assert made.status_code == 302 and made["Location"] == "/"
    created = Workspace.objects.get(slug="doras-place")
    assert browser.session["workspace_id"] == created.pk
    assert WorkspaceMembership.objects.get(user=dora).role == "owner"
    home = browser.get("/").content.decode()
    assert 'data-testid="my-rooms"' in home and "Dora&#x27;s place" in home


# -- managing a workspace: one service per write, REST and admin ----------------------------------


def test_owners_rename_and_readdress_a_workspace_and_the_old_slug_names_nothing(acme, make_user):
    ana, bob, acme_ws = acme["ana"], acme["bob"], acme["acme"]
    WorkspaceMembership.objects.filter(workspace=acme_ws, user=bob).update(role="admin")
    bob_api, ana_api = client_for(bob), client_for(ana)
    renamed = bob_api.patch(f"{V1}/workspaces/acme/", {"name": "Acme Corp"}, format="json")
    assert (renamed.status_code, renamed.json()["name"], renamed.json()["slug"]) == (200, "Acme Corp", "acme")
    # The address is the owners' to change.
    assert code_of(bob_api.patch(f"{V1}/workspaces/acme/", {"slug": "acme-corp"}, format="json")) == (403, "forbidden")
    assert code_of(ana_api.patch(f"{V1}/workspaces/acme/", {"slug": "default"}, format="json")) == (409, "slug_taken")
    assert code_of(ana_api.patch(f"{V1}/workspaces/acme/", {"slug": "1234"}, format="json"))[0] == 400
    moved = ana_api.patch(f"{V1}/workspaces/acme/", {"slug": "Acme Corp"}, format="json")
    assert (moved.status_code, moved.json()["slug"]) == (200, "acme-corp")
    assert code_of(ana_api.get(f"{V1}/rooms/?workspace=acme")) == (404, "not_found")  # the old one names nothing
    assert ana_api.get(f"{V1}/rooms/?workspace=acme-corp").status_code == 200
    assert ana_api.get(f"{V1}/rooms/?workspace={acme_ws.pk}").status_code == 200  # ids never change
    # ... and is free for another workspace to take.
    assert client_for(make_user("cid")).post(f"{V1}/workspaces/", {"name": "Acme"}, format="json").status_code == 201
    entries = AuditEntry.objects.filter(action="workspace.settings", target_id=str(acme_ws.pk)).order_by("position")
    assert [(e.actor_username, e.before, e.after) for e in entries] == [
        ("bob", {"name": "Acme"}, {"name": "Acme Corp"}),
        ("ana", {"slug": "acme"}, {"slug": "acme-corp"}),
    ]


def test_pending_invitations_are_listed_and_withdrawn_by_managers(acme, make_user):
    ana, bob, acme_ws = acme["ana"], acme["bob"], acme["acme"]
    owner = WorkspaceMembership.objects.get(workspace=acme_ws, user=ana)
    link, link_token = services.invitation_create(actor=owner, base_url="http://testserver/")
    mailed, _ = services.invitation_create(actor=owner, email="dora@example.com", base_url="http://testserver/")
    used, used_token = services.invitation_create(actor=owner, email="eve@example.com", base_url="http://testserver/")
    services.invitation_accept(user=make_user("eve"), token=used_token)
    old, _ = services.invitation_create(actor=owner, base_url="http://testserver/")
    WorkspaceInvitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    ana_api = client_for(ana)
    listed = ana_api.get(f"{V1}/workspaces/acme/invitations/").json()["results"]
    assert [(i["id"], i["email"], i["created_by"]) for i in listed] == [
        (mailed.pk, "dora@example.com", "ana"),
        (link.pk, "", "ana"),
    ]
    assert listed[0]["url"] == ""  # an email invitation's link is for its address only
    # A link's URL again (signed anew: its timestamp may differ from link_token's), naming the same invitation.
    shown = listed[1]["url"].removeprefix("http://testserver/invitations/").rstrip("/")
    assert services.invitation_from_token(shown).pk == link.pk
    assert code_of(client_for(bob).get(f"{V1}/workspaces/acme/invitations/")) == (403, "forbidden")
    assert code_of(client_for(bob).delete(f"{V1}/workspaces/acme/invitations/{link.pk}/")) == (403, "forbidden")

    assert ana_api.delete(f"{V1}/workspaces/acme/invitations/{link.pk}/").status_code == 204
    assert ana_api.delete(f"{V1}/workspaces/acme/invitations/{link.pk}/").status_code == 204  # again: no change
    accept = f"{V1}/workspaces/invitations/accept/"
    assert code_of(client_for(make_user("fay")).post(accept, {"token": link_token}, format="json")) == (
        410,
        "invitation_expired",
    )
    assert code_of(ana_api.delete(f"{V1}/workspaces/acme/invitations/{used.pk}/")) == (409, "invitation_used")
    other = services.workspace_create(creator=make_user("cid"), name="Globex")
    theirs, _ = services.invitation_create(actor=other, base_url="http://testserver/")
    for ref in (theirs.pk, 10**9, "x"):
        assert code_of(ana_api.delete(f"{V1}/workspaces/acme/invitations/{ref}/")) == (404, "invitation_not_found")
    assert WorkspaceInvitation.objects.get(pk=theirs.pk).revoked_at is None
    assert [i["id"] for i in ana_api.get(f"{V1}/workspaces/acme/invitations/").json()["results"]] == [mailed.pk]
    assert AuditEntry.objects.filter(action="workspace.invite.revoke").count() == 1


def test_owners_delete_a_workspace_with_its_rooms_after_typing_its_slug(
    acme, make_user, events, django_capture_on_commit_callbacks
):
    ana, bob, acme_ws = acme["ana"], acme["bob"], acme["acme"]
    lobby = room_create(creator=ana, name="Lobby", kind="public", workspace=acme_ws)
    plans = room_create(creator=bob, name="Plans", kind="private", workspace=acme_ws)
    kept = room_create(creator=ana, name="Elsewhere", kind="public")  # the default workspace's
    assert code_of(client_for(bob).delete(f"{V1}/workspaces/acme/", {"confirm": "acme"}, format="json")) == (
        403,
        "forbidden",
    )
    ana_api = client_for(ana)
    assert code_of(ana_api.delete(f"{V1}/workspaces/acme/", {"confirm": "Acme"}, format="json")) == (
        400,
        "confirmation_required",
    )
    assert code_of(ana_api.delete(f"{V1}/workspaces/default/", {"confirm": "default"}, format="json")) == (
        403,
        "forbidden",
    )
    assert Workspace.objects.filter(pk=acme_ws.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert ana_api.delete(f"{V1}/workspaces/acme/", {"confirm": "acme"}, format="json").status_code == 204
    assert not Workspace.objects.filter(pk=acme_ws.pk).exists()
    assert set(Room.objects.values_list("pk", flat=True)) == {kept.pk}
    assert not WorkspaceMembership.objects.filter(workspace_id=acme_ws.pk).exists()
    # Each member's sockets learn it: the rooms first, then the workspace.
    bob_frames = [f["type"] for f in events.frames(group=f"user.{bob.pk}") if f["type"] != "room.added"]
    assert bob_frames == ["room.removed", "workspace.left"]  # Plans; he was not in the Lobby
    assert events.frames("workspace.left", group=f"user.{ana.pk}") == [
        {"type": "workspace.left", "workspace": acme_ws.pk, "reason": "deleted"}
    ]
    deleted = AuditEntry.objects.get(action="workspace.delete")
    assert deleted.before == {"name": "Acme", "slug": "acme", "rooms": 2, "members": 2}
    assert set(
        # in the workspace's own chain, which stays (append-only) when the workspace is gone
        AuditEntry.objects.filter(action="room.delete", scope=f"workspace:{acme_ws.pk}").values_list(
            "target_id", flat=True
        )
    ) == {str(lobby.pk), str(plans.pk)}
    # The default workspace is never deleted, even by staff.
    staff = make_user("root", is_staff=True, is_superuser=True)
    with pytest.raises(ApplicationError) as refused:
        services.workspace_delete(
            actor=staff, workspace=Workspace.objects.get(is_default=True), confirm="default", as_staff=True
        )
    assert refused.value.code == "default_workspace"


def test_a_member_leaves_but_the_last_owner_cannot(acme, events, django_capture_on_commit_callbacks):
    ana, bob = acme["ana"], acme["bob"]
    assert code_of(client_for(ana).delete(f"{V1}/workspaces/acme/members/ana/")) == (409, "last_owner")
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(bob).delete(f"{V1}/workspaces/acme/members/bob/").status_code == 204
    assert events.frames("workspace.left") == [
        {"type": "workspace.left", "workspace": acme["acme"].pk, "reason": "left"}
    ]
    assert AuditEntry.objects.filter(action="workspace.member.leave", actor_username="bob").count() == 1


def test_staff_readdress_delete_and_withdraw_from_django_admin(acme, make_user):
    acme_ws = acme["acme"]
    staff = make_user("root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    change = f"/admin/workspaces/workspace/{acme_ws.pk}/change/"
    form = {
        "name": "Acme",
        "slug": "acme-labs",
        "max_rooms": 500,
        "max_boards": 1000,
        "max_storage_bytes": 10 * 2**30,
        "max_concurrent_simulations": 10,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    assert browser.post(change, form).status_code == 302
    assert Workspace.objects.get(pk=acme_ws.pk).slug == "acme-labs"
    owner = WorkspaceMembership.objects.get(workspace=acme_ws, user=acme["ana"])
    invitation, _ = services.invitation_create(actor=owner, base_url="http://testserver/")
    browser.post(
        "/admin/workspaces/workspaceinvitation/",
        {"action": "withdraw", "_selected_action": [invitation.pk]},
    )
    assert WorkspaceInvitation.objects.get(pk=invitation.pk).revoked_at is not None
    revoked = AuditEntry.objects.get(action="workspace.invite.revoke")
    assert (revoked.actor_username, revoked.after) == ("root", {"as_staff": True})
    default = Workspace.objects.get(is_default=True)
    assert browser.get(f"/admin/workspaces/workspace/{default.pk}/delete/").status_code == 403
    assert browser.post(f"/admin/workspaces/workspace/{acme_ws.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Workspace.objects.filter(pk=acme_ws.pk).exists()
    assert AuditEntry.objects.get(action="workspace.delete").after == {"as_staff": True}


# -- live effects: a removed member's socket ------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_removed_members_socket_stops_receiving_the_workspaces_rooms_at_once(make_user):
    def build():
        ana, bob = make_user("ana"), make_user("bob")
        acme = services.workspace_create(creator=ana, name="Acme")
        WorkspaceMembership.objects.create(workspace=acme.workspace, user=bob, role="member")
        plans = room_create(creator=ana, name="Plans", kind="private", workspace=acme.workspace)
        Membership.objects.create(room=plans, user=bob, role="member")
        return ana, bob, acme, plans

    ana, bob, acme, plans = await database_sync_to_async(build)()
    bobs, ready = await connect(bob)
    assert str(plans.pk) in ready["rooms"]
    anas, _ = await connect(ana)
    await database_sync_to_async(services.member_remove)(actor=acme, user=bob)
    assert (await receive_type(bobs, "room.removed"))["room"] == str(plans.pk)
    left = await receive_type(bobs, "workspace.left")
    assert left == {"type": "workspace.left", "workspace": acme.workspace_id, "reason": "removed"}
    await anas.send_json_to(
        {"type": "message.send", "room": str(plans.pk), "content": "after", "client_msg_id": str(uuid.uuid4())}
    )
    await receive_type(anas, "message.ack")
    assert await nothing_but_presence(bobs)  # the message was published before the ack
    await bobs.send_json_to(
        {"type": "message.send", "room": str(plans.pk), "content": "me?", "client_msg_id": str(uuid.uuid4())}
    )
    assert (await receive_type(bobs, "error"))["code"] == "not_found"
    await bobs.disconnect(timeout=TIMEOUT)
    await anas.disconnect(timeout=TIMEOUT)


# -- the members page ------------------------------------------------------------------------------


def test_the_members_page_lets_owners_manage_and_members_only_look(
    acme, make_user, smtp, django_capture_on_commit_callbacks
):
    ana, bob, acme_ws = acme["ana"], acme["bob"], acme["acme"]
    gus = make_user("gus")
    WorkspaceMembership.objects.create(workspace=acme_ws, user=gus, role="guest")
    owner = Client()
    owner.force_login(ana)
    page = owner.get("/workspaces/acme/members/").content.decode()
    assert '<label class="visually-hidden" for="role-%d">Role of bob</label>' % bob.pk in page
    assert 'id="invite-form"' in page and 'id="delete-form"' in page and 'id="workspace-slug"' in page
    assert '<label for="delete-confirm">' in page
    manage = "/workspaces/acme/manage/"
    owner.post(manage, {"action": "role", "user": str(gus.pk), "role": "member"})
    assert WorkspaceMembership.objects.get(workspace=acme_ws, user=gus).role == "member"
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(manage, {"action": "invite", "email": "dora@example.com", "role": "guest"})
    link = owner.post(manage, {"action": "invite", "email": "", "role": "member"}, follow=True).content.decode()
    assert "Invitation link (works for 7 days): http://testserver/invitations/" in link
    invitations = list(WorkspaceInvitation.objects.filter(workspace=acme_ws).order_by("pk"))
    assert [(i.email, i.role) for i in invitations] == [("dora@example.com", "guest"), ("", "member")]
    assert [m["To"] for m in smtp.messages] == ["dora@example.com"]
    page = owner.get("/workspaces/acme/members/").content.decode()
    assert f'data-invitation="{invitations[0].pk}"' in page and "/invitations/" in page  # the link's URL
    owner.post(manage, {"action": "withdraw", "invitation": str(invitations[0].pk)})
    assert WorkspaceInvitation.objects.get(pk=invitations[0].pk).revoked_at is not None
    owner.post(manage, {"action": "remove", "user": str(gus.pk)})
    assert not WorkspaceMembership.objects.filter(workspace=acme_ws, user=gus).exists()
    moved = owner.post(manage, {"action": "rename", "name": "Acme Corp", "slug": "acme-corp"})
    assert moved["Location"] == "/workspaces/acme-corp/members/"
    refused = owner.post("/workspaces/acme-corp/manage/", {"action": "leave"}, follow=True)
    assert "at least one owner" in refused.content.decode()  # the last owner stays

    member = Client()
    member.force_login(bob)
    page = member.get("/workspaces/acme-corp/members/").content.decode()
    assert "Acme Corp" in page and 'id="invite-form"' not in page and "Change role" not in page
    member.post("/workspaces/acme-corp/manage/", {"action": "remove", "user": str(ana.pk)})
    assert WorkspaceMembership.objects.filter(workspace=acme_ws, user=ana).exists()  # refused
    assert member.get("/workspaces/acme/members/").status_code == 404  # the old address
    outsider = Client()
    outsider.force_login(gus)
    assert outsider.get("/workspaces/acme-corp/members/").status_code == 404
    assert outsider.post("/workspaces/acme-corp/manage/", {"action": "leave"}).status_code == 404
    # Leaving, then deleting: back to the home page.
    assert member.post("/workspaces/acme-corp/manage/", {"action": "leave"})["Location"] == "/"
    gone = owner.post("/workspaces/acme-corp/manage/", {"action": "delete", "confirm": "acme-corp"})
    assert gone["Location"] == "/" and not Workspace.objects.filter(pk=acme_ws.pk).exists()


# -- one audit chain per workspace ------------------------------------------------------------------


def test_each_workspace_has_its_own_audit_chain_and_verify_audit_checks_each(acme, make_user):
    ana, bob, acme_ws = acme["ana"], acme["bob"], acme["acme"]
    globex = services.workspace_create(creator=make_user("cid"), name="Globex")
    owner = WorkspaceMembership.objects.get(workspace=acme_ws, user=ana)
    services.member_role_change(actor=owner, user=bob, role="admin")
    invitation, _ = services.invitation_create(actor=owner, base_url="http://testserver/")
    services.invitation_revoke(actor=owner, invitation_id=invitation.pk)
    room_create(creator=bob, name="Solo", kind="private", workspace=acme_ws)
    services.member_remove(actor=owner, user=bob)  # Solo goes, then bob: all in Acme's chain
    chain = AuditEntry.objects.filter(scope=f"workspace:{acme_ws.pk}").order_by("position")
    assert [(e.position, e.action) for e in chain] == [
        (1, "workspace.create"),
        (2, "workspace.member.role"),
        (3, "workspace.invite"),
        (4, "workspace.invite.revoke"),
        (5, "room.create"),
        (6, "room.delete"),
        (7, "workspace.member.remove"),
    ]
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:6]]
    actions = AuditEntry.objects.values_list("action", flat=True)
    assert list(actions.filter(scope=f"workspace:{globex.workspace_id}")) == ["workspace.create"]
    assert not {"room.create", "room.delete"} & set(actions.filter(scope="global"))  # rooms are their workspace's

    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert f"workspace:{acme_ws.pk}: ok, 7 entries" in out.getvalue()
    assert f"workspace:{globex.workspace_id}: ok, 1 entries" in out.getvalue()
    # A row changed behind the trigger's back breaks its own chain only.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only")
        cursor.execute("UPDATE audit_auditentry SET ip = '10.9.9.9' WHERE id = %s", [chain[1].pk])
        cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")
    with pytest.raises(CommandError):
        call_command("verify_audit", stdout=io.StringIO(), stderr=(errors := io.StringIO()))
    assert f"workspace:{acme_ws.pk}: BROKEN at entry #2" in errors.getvalue()
    assert "global: BROKEN" not in errors.getvalue()
