"""The audit log (audit/, docs/audit.md): what is recorded and by whom, the hash chain and its
verification, PostgreSQL's refusal of UPDATE and DELETE, concurrent writers, exports."""

import io
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib import admin as django_admin
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client
from rest_framework.test import APIClient

from accounts.admin import ParleyUserAdmin
from accounts.models import User
from audit import chain
from audit import services as audit_services
from audit.models import AuditChain, AuditEntry
from boards.services import board_create, board_delete
from messaging.services import message_delete
from operations.services import job_start, task_run_finished
from rooms.models import Membership, Room
from rooms.selectors import membership_get
from rooms.services import (
    membership_add,
    membership_remove,
    membership_update,
    ownership_transfer,
    room_create,
    room_delete,
    room_update,
)
from tests.conftest import client_for, room_with, send_message, wait_until

PASSWORD = "correct-horse-battery"


def actions() -> list[str]:
    """Every entry's action in the order written, whatever its chain."""
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def scope_of(room: Room) -> str:
    """The chain of the room's workspace, where its entries go (docs/audit.md "Chains")."""
    return f"workspace:{room.workspace_id}"


def last(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).latest("position")


def verify() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_audit", stdout=out, stderr=err)
    return out.getvalue()


def verify_fails() -> str:
    err = io.StringIO()
    with pytest.raises(CommandError, match="failed verification"):
        call_command("verify_audit", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


# -- what is recorded ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_records_room_and_membership_changes_with_actor_target_and_summary(make_user):
    owner, member = make_user("owner"), make_user("member")
    room = room_create(creator=owner, name="Crew", kind=Room.Kind.PRIVATE)
    mine = membership_get(room_id=room.pk, user=owner)
    membership_add(actor=mine, user=member, role="member")
    membership_update(actor=mine, user=member, role="admin")
    room_update(actor=mine, name="Crew 2")
    membership_remove(actor=mine, user=member)
    room_delete(actor=membership_get(room_id=room.pk, user=owner))

    assert actions() == [
        "room.create",
        "membership.add",
        "membership.role",
        "room.update",
        "membership.remove",
        "room.delete",
    ]
    role = last("membership.role")
    assert (role.actor_id, role.actor_username, role.target_type, role.target_id) == (
        owner.pk,
        "owner",
        "user",
        str(member.pk),
    )
    assert (role.before["role"], role.after["role"], role.after["room"]) == ("member", "admin", str(room.pk))
    assert (last("room.update").before, last("room.update").after) == ({"name": "Crew"}, {"name": "Crew 2"})
    deleted = last("room.delete")
    assert (deleted.target_type, deleted.target_id, deleted.before["name"]) == ("room", str(room.pk), "Crew 2")
    assert f"{scope_of(room)}: ok, 6 entries" in verify()


@pytest.mark.django_db
def test_it_records_admin_deletes_of_others_messages_but_no_sends_and_no_texts(make_user):
    owner, member = make_user("owner"), make_user("member")
    room = room_create(creator=owner, name="Room")
    Membership.objects.create(room=room, user=member, role="member")
    theirs = send_message(room, member, "a secret plan")
    own = send_message(room, owner, "my own words")
    before = actions()

    message_delete(user=owner, room_id=room.pk, message_id=own.id)  # one's own: not audited
    message_delete(user=owner, room_id=room.pk, message_id=theirs.id)

    assert before == ["room.create"]  # sends are never audited
    assert actions() == ["room.create", "message.delete"]
    entry = last("message.delete")
    assert (entry.actor_id, entry.target_type, entry.target_id) == (owner.pk, "message", str(theirs.id))
    assert entry.before == {"room": str(room.pk), "sender": member.pk, "sequence": theirs.sequence}
    stored = json.dumps(list(AuditEntry.objects.values("before", "after")))
    assert "secret plan" not in stored and "own words" not in stored


@pytest.mark.django_db
def test_it_records_board_create_and_delete_and_operations_jobs(make_user, staff):
    owner = make_user("owner")
    room = room_create(creator=owner, name="Room")
    board = board_create(user=owner, room_id=room.pk, title="Plan")
    board_delete(user=owner, board_id=board.pk)
    run = job_start(user=staff, job="archive_now")
    task_run_finished(task_id=run.task_id, state="SUCCESS", result=None)

    assert actions() == [
        "room.create",
        "board.create",
        "board.delete",
        "operations.job_start",
        "operations.job_finished",
    ]
    assert last("board.delete").before == {"room": str(room.pk), "title": "Plan"}
    assert (last("operations.job_start").actor_id, last("operations.job_start").after["job"]) == (
        staff.pk,
        "archive_now",
    )
    finished = last("operations.job_finished")
    assert (finished.actor_id, finished.after["status"], finished.target_id) == (None, "succeeded", str(run.pk))


@pytest.mark.django_db
def test_it_records_sign_ins_sign_outs_and_failures_with_the_address_and_no_password(make_user):
    ada = make_user("ada")
    browser = Client(REMOTE_ADDR="203.0.113.7")
    browser.post("/login/", {"username": "ada", "password": "not-the-password"})
    browser.post("/login/", {"username": "nobody", "password": "not-the-password"})
    assert browser.post("/login/", {"username": "ADA", "password": PASSWORD}).status_code == 302
    browser.post("/logout/")

    api = APIClient(REMOTE_ADDR="198.51.100.9")
    assert api.post("/api/v1/auth/token/", {"username": "ada", "password": "wrong-again"}).status_code == 401
    assert api.post("/api/v1/auth/token/", {"username": "ada", "password": PASSWORD}).status_code == 200

    entries = list(AuditEntry.objects.order_by("position").values("action", "actor_id", "target_id", "ip", "after"))
    assert [(e["action"], e["actor_id"], e["target_id"], e["ip"], e["after"]["via"]) for e in entries] == [
        ("auth.sign_in_failed", None, str(ada.pk), "203.0.113.7", "session"),
        ("auth.sign_in_failed", None, "", "203.0.113.7", "session"),
        ("auth.sign_in", ada.pk, str(ada.pk), "203.0.113.7", "session"),
        ("auth.sign_out", ada.pk, str(ada.pk), "203.0.113.7", "session"),
        ("auth.sign_in_failed", None, str(ada.pk), "198.51.100.9", "token"),
        ("auth.sign_in", ada.pk, str(ada.pk), "198.51.100.9", "token"),
    ]
    assert entries[1]["after"]["username"] == "nobody"
    stored = json.dumps(entries)
    assert "not-the-password" not in stored and "wrong-again" not in stored and PASSWORD not in stored


# -- the chain -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_entry_carries_the_previous_hash_and_its_own_over_canonical_json(make_user):
    owner = make_user("owner")
    rooms = [room_create(creator=owner, name=name) for name in ("One", "Two", "Three")]
    rows = list(AuditEntry.objects.order_by("position").values())
    assert [row["position"] for row in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == "0" * 64
    assert [row["prev_hash"] for row in rows[1:]] == [row["hash"] for row in rows[:-1]]
    assert all(chain.entry_hash(row) == row["hash"] for row in rows)
    head = AuditChain.objects.get(scope=scope_of(rooms[0]))
    assert (head.length, head.head_hash) == (3, rows[-1]["hash"])


@pytest.mark.django_db
def test_postgresql_refuses_update_and_delete_of_entries_and_rewinding_the_head(make_user):
    room = room_create(creator=make_user("owner"), name="Room")
    statements = [
        "UPDATE audit_auditentry SET action = 'nothing'",
        "DELETE FROM audit_auditentry",
        "UPDATE audit_auditchain SET length = length - 1",
        "DELETE FROM audit_auditchain",
    ]
    for statement in statements:
        with pytest.raises(DatabaseError, match="audit"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert actions() == ["room.create"]
    assert AuditChain.objects.get(scope=scope_of(room)).length == 1


def _tamper(statement: str) -> None:
    """What someone who can switch the triggers off (the tables' owner) might do."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only")
        cursor.execute("ALTER TABLE audit_auditchain DISABLE TRIGGER audit_chain_forward_only")
        for one in statement.split(";"):
            cursor.execute(one)
        cursor.execute("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only")
        cursor.execute("ALTER TABLE audit_auditchain ENABLE TRIGGER audit_chain_forward_only")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            'UPDATE audit_auditentry SET after = \'{"name": "Innocent", "kind": "public"}\' WHERE position = 2',
            "entry #2 (id {ids[2]}): its contents do not match its hash",
        ),
        ("DELETE FROM audit_auditentry WHERE position = 2", "entry #3 (id {ids[3]}): entry #2 is missing before it"),
        ("DELETE FROM audit_auditentry WHERE position = 4", "entry #4: the chain's head says 4 entries"),
        (
            "DELETE FROM audit_auditentry WHERE position = 4; UPDATE audit_auditchain SET length = 3",
            "entry #3: the chain's head (length 3",
        ),
    ],
    ids=["changed", "removed", "tail-cut", "tail-cut-head-rewound-but-not-rehashed"],
)
def test_verify_audit_names_the_first_broken_entry(make_user, statement, named):
    owner = make_user("owner")
    room = [room_create(creator=owner, name=name) for name in ("One", "Two", "Three", "Four")][0]
    ids = dict(AuditEntry.objects.values_list("position", "id"))
    assert f"{scope_of(room)}: ok, 4 entries" in verify()

    _tamper(statement)

    assert named.format(ids=ids) in verify_fails()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain(make_user):
    people = [make_user(f"user{i}") for i in range(6)]
    start = threading.Barrier(len(people))

    def create_rooms(user):
        try:
            start.wait()
            for i in range(4):
                room_create(creator=user, name=f"{user.username} {i}")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(create_rooms, people))

    rows = list(AuditEntry.objects.order_by("position").values())
    assert [row["position"] for row in rows] == list(range(1, 25))
    assert f"{scope_of(Room.objects.first())}: ok, 24 entries" in verify()


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_an_ownership_hand_over_racing_a_role_change_of_the_old_owner_does_not_deadlock(make_user, monkeypatch):
    """ada hands Crew to bob while cyd, another owner, demotes ada. The demotion holds ada's
    membership and is about to lock the chain's head; the hand-over then runs until it waits for
    ada's membership. Had the hand-over recorded its first role change before that wait (holding
    the head), the two would wait for each other and PostgreSQL would abort one (a deadlock)."""
    ada, bob, cyd = make_user("ada"), make_user("bob"), make_user("cyd")
    room = room_with(ada, "Crew", members={bob: "member", cyd: "owner"})
    ada_owner, cyd_owner = membership_get(room_id=room.pk, user=ada), membership_get(room_id=room.pk, user=cyd)
    demoter = threading.local()
    demoter_at_head, go = threading.Event(), threading.Event()
    real_head = audit_services._head

    def head(scope: str) -> AuditChain:
        if getattr(demoter, "active", False):
            demoter_at_head.set()  # holding ada's membership, about to lock the chain's head
            assert go.wait(10), "the hand-over never started waiting"
        return real_head(scope)

    monkeypatch.setattr(audit_services, "_head", head)
    errors: list[BaseException] = []
    hand_over_pid: list[int] = []

    def demote() -> None:
        demoter.active = True
        try:
            membership_update(actor=cyd_owner, user=ada, role="admin")
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def hand_over() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                hand_over_pid.append(cursor.fetchone()[0])
            ownership_transfer(actor=ada_owner, user=bob)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=demote), threading.Thread(target=hand_over)]
    threads[0].start()
    assert demoter_at_head.wait(10)
    threads[1].start()
    wait_until(lambda: hand_over_pid and _waits_for_a_lock(hand_over_pid[0]), what="the hand-over waiting for a lock")
    go.set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    roles = dict(Membership.objects.filter(room=room).values_list("user__username", "role"))
    assert roles == {"ada": "admin", "bob": "owner", "cyd": "owner"}
    assert actions()[-2:] == ["membership.role", "membership.role"]
    assert f"{scope_of(room)}: ok" in verify()


@pytest.mark.django_db
def test_deferred_entries_are_written_at_the_end_and_none_when_the_block_raises(make_user):
    owner = make_user("owner")
    with transaction.atomic():
        with audit_services.deferred():
            room_create(creator=owner, name="One")
            assert not AuditEntry.objects.exists()  # nothing written, the head not locked yet
        assert actions() == ["room.create"]
    with pytest.raises(RuntimeError), transaction.atomic(), audit_services.deferred():
        room_create(creator=owner, name="Two")
        raise RuntimeError
    assert actions() == ["room.create"]


# -- browsing and exporting ------------------------------------------------------------------------


def _lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines()]


@pytest.mark.django_db
def test_staff_export_json_lines_over_rest_and_the_export_is_recorded(make_user, staff):
    owner = make_user("owner")
    room_create(creator=owner, name="One")
    scope = scope_of(room_create(creator=owner, name="Two"))
    room_create(creator=owner, name="Three")

    response = client_for(staff).get("/api/v1/audit/export/", {"scope": scope, "after_position": 1, "limit": 5})

    assert response.status_code == 200 and response["Content-Type"].startswith("application/x-ndjson")
    lines = _lines(response.content)
    assert [(line["position"], line["action"]) for line in lines] == [(2, "room.create"), (3, "room.create")]
    assert last("audit.export").after == {"via": "api", "scope": scope, "after_position": 1, "limit": 5}
    assert all(chain.entry_hash(line) == line["hash"] for line in lines)  # checkable outside Parley
    assert lines[1]["prev_hash"] == lines[0]["hash"]


@pytest.mark.django_db
def test_the_export_endpoint_is_not_found_for_non_staff_and_refuses_bad_input(make_user, staff):
    member = make_user("member")
    room_create(creator=member, name="One")
    refused = client_for(member).get("/api/v1/audit/export/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    bad = client_for(staff).get("/api/v1/audit/export/", {"limit": 0, "since": "yesterday"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid")
    assert set(bad.json()["error"]["fields"]) == {"limit", "since"}
    assert actions() == ["room.create"]  # neither was an export


@pytest.fixture
def acme(db, make_user):
    """Acme, owned by ana, with an admin (ada) and a member (bob); Globex, owned by cid."""
    from workspaces.models import WorkspaceMembership
    from workspaces.services import member_role_change, workspace_create

    ana, ada, bob, cid = (make_user(name) for name in ("ana", "ada", "bob", "cid"))
    owner = workspace_create(creator=ana, name="Acme")
    for user in (ada, bob):
        WorkspaceMembership.objects.create(workspace=owner.workspace, user=user, role="member")
    member_role_change(actor=owner, user=ada, role="admin")  # an entry in Acme's chain
    globex = workspace_create(creator=cid, name="Globex").workspace
    return {"ana": ana, "ada": ada, "bob": bob, "cid": cid, "acme": owner.workspace, "globex": globex}


@pytest.mark.django_db
def test_a_workspaces_owners_and_admins_export_its_chain_and_nothing_else(acme):
    """docs/audit.md "Who reads the log": a workspace's owners and admins read its own chain over
    REST; its members, and everyone for another workspace's chain or the global one, get 404."""
    acme_scope, globex_scope = f"workspace:{acme['acme'].pk}", f"workspace:{acme['globex'].pk}"
    for reader in ("ana", "ada"):
        response = client_for(acme[reader]).get("/api/v1/audit/export/", {"scope": acme_scope})
        assert response.status_code == 200, reader
        lines = _lines(response.content)
        assert "workspace.member.role" in [line["action"] for line in lines]
        assert all(chain.entry_hash(line) == line["hash"] for line in lines)
        assert last("audit.export").actor_id == acme[reader].pk
    exports = AuditEntry.objects.filter(action="audit.export").count()
    for reader, scope in (("bob", acme_scope), ("ada", globex_scope), ("ada", "global"), ("ada", "workspace:x")):
        refused = client_for(acme[reader]).get("/api/v1/audit/export/", {"scope": scope})
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found"), (reader, scope)
    assert AuditEntry.objects.filter(action="audit.export").count() == exports  # a refusal exports nothing


@pytest.mark.django_db
def test_a_workspace_admin_browses_its_audit_log_newest_first_and_downloads_it(acme, monkeypatch):
    from audit import views as audit_views

    monkeypatch.setattr(audit_views, "PAGE_SIZE", 2)
    slug = acme["acme"].slug
    ada = Client()
    ada.force_login(acme["ada"])
    for name in ("One", "Two"):
        room_create(creator=acme["ana"], name=name, workspace=acme["acme"])
    entries = AuditEntry.objects.filter(scope=f"workspace:{acme['acme'].pk}").order_by("-position")
    positions = list(entries.values_list("position", flat=True))
    assert b'id="audit-link"' in ada.get(f"/workspaces/{slug}/members/").content

    first = ada.get(f"/workspaces/{slug}/audit/")
    assert first.status_code == 200
    shown = [int(p) for p in re.findall(rb'data-position="(\d+)"', first.content)]
    assert shown == positions[:2]
    older = ada.get(f"/workspaces/{slug}/audit/", {"before": shown[-1]})
    assert [int(p) for p in re.findall(rb'data-position="(\d+)"', older.content)] == positions[2:4]
    only = ada.get(f"/workspaces/{slug}/audit/", {"action": "workspace.member.role"})
    assert re.findall(rb"<code>([\w.]+)</code>", only.content) == [b"workspace.member.role"]

    download = ada.get(f"/workspaces/{slug}/audit/download/")
    assert download.status_code == 200 and download["Content-Type"].startswith("application/x-ndjson")
    lines = _lines(b"".join(download.streaming_content))
    assert [line["position"] for line in lines] == sorted(positions)
    assert last("audit.export").after == {"via": "page", "scope": f"workspace:{acme['acme'].pk}"}

    bob, cid = Client(), Client()
    bob.force_login(acme["bob"])
    cid.force_login(acme["cid"])
    for client, path in (
        (bob, f"/workspaces/{slug}/audit/"),
        (bob, f"/workspaces/{slug}/audit/download/"),
        (cid, f"/workspaces/{slug}/audit/"),
        (ada, f"/workspaces/{acme['globex'].slug}/audit/"),
    ):
        assert client.get(path).status_code == 404, path
    assert b'id="audit-link"' not in bob.get(f"/workspaces/{slug}/members/").content


@pytest.mark.django_db
def test_admin_browses_read_only_and_exports_selected_entries(make_user, staff):
    owner = make_user("owner")
    scope = scope_of(room_create(creator=owner, name="One"))
    room_create(creator=owner, name="Two")
    admin = Client()
    admin.force_login(staff)  # itself an auth.sign_in entry (the global chain's #1)
    entry = AuditEntry.objects.get(scope=scope, position=1)

    page = admin.get("/admin/audit/auditentry/", {"action__exact": "room.create"})
    assert page.status_code == 200 and b"room.create" in page.content
    assert admin.get(f"/admin/audit/auditentry/{entry.pk}/change/").status_code == 200
    assert admin.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403

    exported = admin.post("/admin/audit/auditentry/", {"action": "export_json_lines", "_selected_action": [entry.pk]})

    assert exported.status_code == 200 and exported["Content-Type"].startswith("application/x-ndjson")
    assert [line["position"] for line in _lines(exported.content)] == [1]
    assert last("audit.export").after == {"via": "admin", "scope": scope, "selected": 1}
    assert last("audit.export").actor_id == staff.pk
    assert "global: ok, 2 entries" in verify() and f"{scope}: ok, 2 entries" in verify()


@pytest.mark.django_db
def test_the_export_command_writes_json_lines_and_is_recorded(make_user, tmp_path):
    scope = scope_of(room_create(creator=make_user("owner"), name="One"))
    out = io.StringIO()
    call_command("export_audit", "--scope", scope, "--action", "room.create", stdout=out)
    assert [line["action"] for line in _lines(out.getvalue().encode())] == ["room.create"]
    target = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    call_command("export_audit", "--output", str(target), stderr=io.StringIO())  # the global chain
    assert [line["action"] for line in _lines(target.read_bytes())] == ["audit.export", "audit.export"]
    assert last("audit.export").after == {"via": "command", "scope": "global"}


@pytest.mark.django_db
def test_admin_user_changes_are_recorded_with_what_changed_and_never_the_password(make_user, staff):
    ada = make_user("ada")
    admin = Client(REMOTE_ADDR="192.0.2.1")
    admin.force_login(staff)
    new_password = "a-brand-new-passphrase"

    response = admin.post(
        f"/admin/accounts/user/{ada.pk}/password/",
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert response.status_code == 302
    form = type("Form", (), {"changed_data": ["is_staff", "email"], "initial": {"is_staff": False}})()
    form.cleaned_data = {"is_staff": True}  # type: ignore[attr-defined]
    ada.is_staff = True
    request = type("Request", (), {"user": staff})()
    ParleyUserAdmin(User, django_admin.site).save_model(request, ada, form, change=True)

    password_set, update = last("user.password_set"), last("user.update")
    assert (password_set.actor_id, password_set.target_id, password_set.ip) == (staff.pk, str(ada.pk), "192.0.2.1")
    assert (update.actor_id, update.before, update.after) == (staff.pk, {"is_staff": False}, {"is_staff": True})
    assert new_password not in json.dumps(list(AuditEntry.objects.values("before", "after")))
