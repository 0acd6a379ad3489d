"""The authorisation matrix: every REST endpoint and every client→server socket frame, for every
kind of person (issue 12), against rooms.access and docs/protocol.md.

Actors (ACTORS): a private room's owner, admin, member and viewer; an outsider (in the private
room: 404, never 403, for what they may not see; in a public room: `not_member`), a member who was
removed (like an outsider), anonymous (401 / socket 4401) and a deactivated user (401 / 4401; and
on sockets also one whose socket is still open because the revocation has not reached it yet:
`account_inactive`, nothing written).

Each cell asserts the status (or the socket's answer) and the error code; for every refusal, that
the database is exactly as before and that nothing was broadcast (the `events` fixture).

The tables below are the specification: REST_ROWS (one row per method and path, or several, for
"my message/board/comment" and "someone else's") and FRAME_ROWS (one or more per frame type),
boards included. A new
endpoint or frame type without a row fails test_every_endpoint_has_a_row /
test_every_frame_type_has_a_row, which name what to add.

The world (users, rooms, messages, boards, comments) is built once for the module and committed, so that the
socket's database threads see it; REST cells run inside a transaction that is rolled back after
each; socket cells add only fresh messages and board updates of their own. The module empties the database when it
is done, as transactional tests do.
"""

import asyncio
import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.services import user_set_active
from attachments.models import Attachment
from audit.models import DataExport
from boards import comments
from boards.models import Board, BoardComment, BoardUpdate
from boards.services import board_create
from core import events as core_events
from e2ee.models import Device
from messaging.consumers import CLOSE_UNAUTHENTICATED, ChatConsumer
from messaging.models import Message, MessageRevision, SentMessageKey
from messaging.services import message_edit, message_send
from notifications import services as notification_services
from notifications.models import Notification, RoomSetting
from rooms.models import Membership, Room
from rooms.services import membership_remove, membership_update, room_create, staff_actor
from simulator.engine.templates import template as sim_template
from simulator.models import SimulationCommand, SimulationRun
from simulator.services import board_from_template
from tests.boards_helpers import Client as BoardClient
from tests.boards_helpers import b64
from tests.conftest import frames_before_marker
from tests.sockets import TIMEOUT, receive_close
from workspaces.models import WorkspaceInvitation

# Each test runs in a transaction rolled back afterwards (REST cells change nothing that lasts);
# the sockets' database threads see only the world, which is committed, and their own writes.
pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"

# Who acts, and in which room (ROOM_OF): the private room unless named.
ACTORS = [
    "owner",
    "admin",
    "member",
    "viewer",
    "outsider",
    "outsider@public",
    "removed",
    "anonymous",
    "deactivated",
]
# Sockets have one more: a deactivated user whose socket is still open (the revocation event that
# closes it with 4403 has not arrived yet, e.g. from another server process).
SOCKET_ACTORS = [*ACTORS, "deactivated-open"]
USER_OF = {actor: actor.split("@")[0].removesuffix("-open") for actor in SOCKET_ACTORS}
USER_OF["anonymous"] = ""
ROOM_OF = {actor: "public" if actor.endswith("@public") else "private" for actor in SOCKET_ACTORS}
SENDERS = {"owner", "admin", "member"}

Outcome = tuple[int, str | None]  # (status, error code or None for a success)
OK, CREATED, NO_CONTENT = (200, None), (201, None), (204, None)
NOT_FOUND = (404, "not_found")
FORBIDDEN = (403, "forbidden")
NOT_MEMBER = (403, "not_member")
UNAUTHENTICATED = (401, "not_authenticated")
INACTIVE = (401, "authentication_failed")  # "User is inactive"


def everyone(outcome: Outcome, **overrides: Outcome) -> dict[str, Outcome]:
    """The same outcome for every actor (overrides by actor name; `outsider_public` for
    outsider@public)."""
    table = dict.fromkeys(ACTORS, outcome)
    table.update({name.replace("_public", "@public"): value for name, value in overrides.items()})
    return table


def signed_in(outcome: Outcome, **overrides: Outcome) -> dict[str, Outcome]:
    """`outcome` for everyone signed in; 401 without credentials and for a deactivated account."""
    return everyone(outcome, anonymous=UNAUTHENTICATED, deactivated=INACTIVE, **overrides)


def in_room(
    owner: Outcome, admin: Outcome, member: Outcome, viewer: Outcome, *, outsider_public: Outcome = NOT_MEMBER
) -> dict[str, Outcome]:
    """A room's endpoint: what each role gets; people who may not see the private room get 404
    (`not_found`); an outsider of a public room sees it but gets `not_member` unless told."""
    return signed_in(NOT_FOUND, owner=owner, admin=admin, member=member, viewer=viewer, outsider_public=outsider_public)


# -- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    rooms: dict[str, Room]
    # Messages, boards and comments (on the target's board) made by people who can no longer
    # make them now (viewer, removed, deactivated), and the target's, by (room, name).
    old_messages: dict[tuple[str, str], Message]
    boards: dict[tuple[str, str], Board]
    comments: dict[tuple[str, str], BoardComment]
    stranger: User


def build_world() -> World:
    names = ["owner", "admin", "member", "viewer", "target", "outsider", "removed", "deactivated", "stranger"]
    users = {
        name: User.objects.create_user(username=name, email=f"{name}@example.com", password=PASSWORD) for name in names
    }
    rooms, old_messages, boards, board_comments = {}, {}, {}, {}
    for key, kind in (("private", Room.Kind.PRIVATE), ("public", Room.Kind.PUBLIC)):
        room = rooms[key] = room_create(creator=users["owner"], name=f"The {key} room", kind=kind)
        for name, role in (
            ("admin", "admin"),
            ("member", "member"),
            ("viewer", "member"),  # sends a message first, then becomes a viewer
            ("target", "member"),
            ("removed", "member"),
            ("deactivated", "member"),
        ):
            Membership.objects.create(room=room, user=users[name], role=role)
        for name in ("viewer", "removed", "deactivated"):
            message = message_send(
                user=users[name], room_id=room.pk, content=f"{name} wrote this", client_msg_id=uuid.uuid4()
            )[0]
            old_messages[key, name] = message_edit(  # so that it has a revision
                user=users[name], room_id=room.pk, message_id=message.id, content=f"{name} edited this"
            )
        for name in ("target", "viewer", "removed", "deactivated"):
            boards[key, name] = board_create(user=users[name], room_id=room.pk, title=f"{name}'s board")
            board_comments[key, name] = comments.comment_create(
                user=users[name], board_id=boards[key, "target"].pk, body=f"{name} says", x=1.0, y=2.0
            )
        staff = staff_actor(room=room, user=users["owner"])
        membership_update(actor=staff, user=users["viewer"], role="viewer")
        membership_remove(actor=staff, user=users["removed"])
    user_set_active(user=users["deactivated"], active=False)
    return World(
        users=users,
        rooms=rooms,
        old_messages=old_messages,
        boards=boards,
        comments=board_comments,
        stranger=users["stranger"],
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built and committed once for the module; the database is emptied afterwards (as after a
    transactional test)."""
    with django_db_blocker.unblock():
        try:
            yield build_world()
        finally:
            call_command("flush", interactive=False, verbosity=0)


def fingerprint() -> dict[str, Any]:
    """Everything a refused request could have changed."""
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "username", "is_active", "send_read_receipts")),
        "rooms": list(Room.objects.order_by("pk").values_list("pk", "name", "topic", "kind", "last_sequence")),
        "memberships": list(
            Membership.objects.order_by("pk").values_list(
                "pk", "room_id", "user_id", "role", "delivered_sequence", "read_sequence"
            )
        ),
        "messages": list(
            Message.objects.order_by("id").values_list("id", "content", "edited_at", "deleted_at", "changed_sequence")
        ),
        "revisions": list(MessageRevision.objects.order_by("pk").values_list("pk", flat=True)),
        "keys": SentMessageKey.objects.count(),
        "boards": list(Board.objects.order_by("pk").values_list("pk", "title", "last_sequence")),
        "board_updates": BoardUpdate.objects.count(),
        "board_comments": list(BoardComment.objects.order_by("pk").values_list("pk", "body", "resolved", "deleted_at")),
        "tokens": (OutstandingToken.objects.count(), BlacklistedToken.objects.count()),
        "simulation_runs": list(
            SimulationRun.objects.order_by("pk").values_list("pk", "status", "cancel_requested_at", "faults")
        ),
        "simulation_commands": SimulationCommand.objects.count(),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", "read_at")),
        "notification_levels": list(RoomSetting.objects.order_by("pk").values_list("pk", "level")),
    }


@dataclass
class Cell:
    """One actor in one world: the values a row's URL and body are made of."""

    world: World
    actor: str
    made: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> User | None:
        return self.world.users.get(USER_OF[self.actor])

    @property
    def room(self) -> Room:
        return self.world.rooms[ROOM_OF[self.actor]]

    def message(self, whose: str) -> Message:
        """ "own": a message of the actor's (a fresh one if they may send, else one they sent
        while they could; someone else's if they never could); "other": someone else's (fresh:
        a cell that deletes it leaves the others theirs)."""
        if whose not in self.made:
            old = self.world.old_messages.get((ROOM_OF[self.actor], USER_OF[self.actor]))
            if whose == "own" and old is not None:
                self.made[whose] = old
            else:
                author = self.user if whose == "own" and self.actor in SENDERS else self.world.users["target"]
                self.made[whose] = message_send(
                    user=author, room_id=self.room.pk, content=f"by {author.username}", client_msg_id=uuid.uuid4()
                )[0]
        return self.made[whose]

    def _old(self, things: dict[tuple[str, str], Any], whose: str) -> Any:
        """ "own": the actor's (made fresh if they may make one, else one they made while they
        could; the target's if they never could); "other": the target's."""
        if whose == "own" and self.actor in SENDERS:
            return None
        name = USER_OF[self.actor] if whose == "own" else "target"
        return things.get((ROOM_OF[self.actor], name)) or things[ROOM_OF[self.actor], "target"]

    def board(self, whose: str) -> Board:
        key = f"board:{whose}"
        if whose == "sim" and key not in self.made:  # the target's board made from a simulator template
            self.made[key] = board_from_template(
                user=self.world.users["target"], room_id=self.room.pk, template_id="url-shortener"
            )
        if key not in self.made:
            old = self._old(self.world.boards, whose)
            self.made[key] = old or board_create(user=self.user, room_id=self.room.pk, title="mine")
        return self.made[key]

    def comment(self, whose: str) -> BoardComment:
        """A comment on the target's board ("own": see `_old`)."""
        key = f"comment:{whose}"
        if key not in self.made:
            old = self._old(self.world.comments, whose)
            self.made[key] = old or comments.comment_create(
                user=self.user, board_id=self.board("other").pk, body="mine", x=0.0, y=0.0
            )
        return self.made[key]

    def attachment(self, whose: str) -> Attachment:
        """ "own": the actor's upload, not completed (if they may upload; else as "other"); "other":
        the target's, sent with a message of theirs. Rows only: the store holds no bytes for them
        (tests/test_attachments.py uploads for real)."""
        key = f"attachment:{whose}"
        if key not in self.made:
            if whose == "own" and self.actor in SENDERS:
                self.made[key] = Attachment.objects.create(
                    room=self.room, uploader=self.user, name="mine.txt", declared_type="text/plain", declared_size=5
                )
            else:
                self.made[key] = Attachment.objects.create(
                    room=self.room,
                    uploader=self.world.users["target"],
                    name="theirs.txt",
                    declared_type="text/plain",
                    declared_size=5,
                    status=Attachment.Status.READY,
                    size=5,
                    content_type="text/plain",
                    message_id=self.message("other").id,
                )
        return self.made[key]

    def run(self, whose: str) -> SimulationRun:
        """A queued simulation of the target's template board, started by the target ("other") or
        the actor ("own")."""
        key = f"run:{whose}"
        if key not in self.made:
            starter = self.user if whose == "own" and self.user else self.world.users["target"]
            self.made[key] = SimulationRun.objects.create(
                board=self.board("sim"),
                started_by=starter,
                seed=1,
                duration_s=2,
                parameters={"speed": None, "max_requests": 1000, "label": ""},
                design=sim_template("url-shortener")["design"],
            )
        return self.made[key]

    def notification(self, whose: str) -> Notification:
        """ "own": an inbox item of the actor's (the target's for anonymous), about a message of the
        actor's room; "other": the target's item about it."""
        key = f"notification:{whose}"
        if key not in self.made:
            message = self.message("other")
            user = self.user if whose == "own" and self.user else self.world.users["target"]
            self.made[key] = Notification.objects.create(
                user=user,
                kind=Notification.Kind.MENTION,
                room=self.room,
                message_id=message.id,
                message_created_at=message.created_at,
                actor=message.sender,
            )
        return self.made[key]

    def data_export(self, whose: str) -> DataExport:
        """A queued "download all my data" export: the actor's ("own"; the target's for anonymous)
        or the target's ("other")."""
        key = f"data_export:{whose}"
        if key not in self.made:
            user = self.user if whose == "own" and self.user else self.world.users["target"]
            self.made[key] = DataExport.objects.create(user=user)
        return self.made[key]

    def param(self, name: str, whose: str) -> object:
        """The value of a path parameter (or frame field) `name`. A new kind of parameter needs
        a line here."""
        if name == "invitation_id":  # a pending invitation to the world's rooms' workspace
            workspace = Room.objects.get(pk=self.room.pk).workspace
            return WorkspaceInvitation.objects.create(
                workspace=workspace, expires_at=timezone.now() + timedelta(days=1)
            ).pk
        if name == "room_id":
            return self.room.pk
        if name == "message_id":
            return self.message(whose).id
        if name == "user_id":
            return self.world.users["target"].pk
        if name == "board_id":
            return self.board("other" if whose == "other-board" else whose).pk
        if name == "comment_id":
            return self.comment(whose).id
        if name == "run_id":
            return self.run(whose).pk
        if name == "attachment_id":
            return self.attachment(whose).id
        if name == "notification_id":
            return self.notification(whose).pk
        if name == "export_id":
            return self.data_export(whose).pk
        if name == "device_id":  # the target's device key (e2ee): only its owner may revoke it
            key = base64.b64encode(bytes.fromhex(SPKI_P256_HEADER) + b"\x04" + bytes(64)).decode()
            return Device.objects.get_or_create(user=self.world.users["target"], public_key=key)[0].pk
        if name == "workspace_ref":  # the world's rooms' workspace (tests/test_workspaces.py moves them)
            return Room.objects.get(pk=self.room.pk).workspace.slug
        raise AssertionError(f"tests/test_authz_matrix.py: Cell.param has no value for {{{name}}}")

    def refresh_token(self) -> str:
        return str(RefreshToken.for_user(self.user)) if self.user else "not-a-token"


# -- REST -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as in the URL conf, parameters as {name}
    expect: dict[str, Outcome]
    body: Callable[[Cell], Any] | None = None
    query: str = ""
    whose: str = "other"  # whose message, board or comment the path names: "own" or "other"
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}{self.query}" + (f" ({self.variant})" if self.variant else "")

    def url(self, cell: Cell) -> str:
        # A comment's path names the target's board (the comment is on it).
        whose = "other-board" if "{comment_id}" in self.path else self.whose
        path = re.sub(r"{board_id}", lambda m: str(cell.param("board_id", whose)), self.path)
        return re.sub(r"{(\w+)}", lambda m: str(cell.param(m.group(1), self.whose)), path + self.query)


V1 = "/api/v1"
ROOM = f"{V1}/rooms/{{room_id}}"
MESSAGE = f"{ROOM}/messages/{{message_id}}"
BOARD = f"{V1}/boards/{{board_id}}"
COMMENT = f"{BOARD}/comments/{{comment_id}}"
SIMULATION = f"{V1}/simulations/{{run_id}}"
MEMBERS = in_room(OK, OK, OK, OK)
SPKI_P256_HEADER = "3059301306072a8648ce3d020106082a8648ce3d030107034200"  # a P-256 key's SPKI prefix
MANAGERS = in_room(OK, OK, FORBIDDEN, FORBIDDEN)

REST_ROWS = [
    # Accounts. Sign-up and sign-in take no credentials (a token sent along is ignored).
    Row(
        "POST",
        f"{V1}/auth/signup/",
        everyone(CREATED),
        body=lambda c: {"username": f"new{uuid.uuid4().hex[:8]}", "email": "new@example.com", "password": PASSWORD},
    ),
    Row(
        "POST",
        f"{V1}/auth/token/",
        everyone(OK, anonymous=(401, "no_active_account"), deactivated=(401, "no_active_account")),
        body=lambda c: {"username": c.user.username if c.user else "nobody", "password": PASSWORD},
    ),
    Row(
        "POST",
        f"{V1}/auth/token/refresh/",
        everyone(OK, anonymous=(401, "token_not_valid"), deactivated=(401, "no_active_account")),
        body=lambda c: {"refresh": c.refresh_token()},
    ),
    Row("POST", f"{V1}/auth/logout/", signed_in((205, None)), body=lambda c: {"refresh": c.refresh_token()}),
    Row("POST", f"{V1}/auth/ws-ticket/", signed_in(OK)),
    # A mobile app's single sign-on (docs/sso.md): the one-time code is the credential.
    Row(
        "POST",
        f"{V1}/auth/sso/token/",
        everyone((400, "sso_code_invalid")),
        body=lambda c: {"code": "not-a-code", "code_verifier": "v" * 43},
    ),
    Row("GET", f"{V1}/me/", signed_in(OK)),
    Row("PATCH", f"{V1}/me/", signed_in(OK), body=lambda c: {"send_read_receipts": False}),
    # A new email address needs the password (then a link mailed to it confirms it: docs/accounts.md).
    Row(
        "PATCH",
        f"{V1}/me/",
        signed_in((400, "wrong_password")),
        body=lambda c: {"email": "new@example.com", "current_password": "not the password"},
        variant="email",
    ),
    # The link's token is the credential: the same answer for everyone.
    Row("POST", f"{V1}/me/email/confirm/", everyone((400, "email_link_invalid")), body=lambda c: {"token": "x:y:z"}),
    # Profiles (docs/accounts.md): one's own picture and password only; a JSON body is not an upload.
    Row("POST", f"{V1}/me/avatar/", signed_in((415, "unsupported_media_type")), body=lambda c: {"avatar": "x"}),
    Row("DELETE", f"{V1}/me/avatar/", signed_in(OK)),
    Row(
        "POST",
        f"{V1}/me/password/",
        signed_in((400, "wrong_password")),
        body=lambda c: {"current_password": "not the password", "new_password": "a new password, long enough"},
    ),
    # Erasing an account: one's own, confirmed by the password (docs/accounts.md; a success in tests/test_gdpr.py).
    Row("DELETE", f"{V1}/me/", signed_in((400, "wrong_password")), body=lambda c: {"password": "not the password"}),
    # The audit log's export is site staff's only: nobody here is staff (docs/audit.md).
    Row("GET", f"{V1}/audit/export/", signed_in(NOT_FOUND)),
    # "Download all my data": everyone signed in asks for theirs and sees only their own export.
    Row("POST", f"{V1}/me/data-export/", signed_in((202, None))),
    Row("GET", f"{V1}/me/data-export/{{export_id}}/", signed_in(OK), whose="own", variant="own"),
    Row("GET", f"{V1}/me/data-export/{{export_id}}/", signed_in(NOT_FOUND)),
    Row(
        "GET",
        f"{V1}/me/data-export/{{export_id}}/download/",
        signed_in((409, "not_ready")),
        whose="own",
        variant="own",
    ),
    Row("GET", f"{V1}/me/data-export/{{export_id}}/download/", signed_in(NOT_FOUND)),
    Row("GET", f"{V1}/schema/", everyone(OK, deactivated=INACTIVE)),
    # Workspaces (docs/workspaces.md): everyone here is a plain member of the default workspace
    # (tests/test_workspaces.py covers owners, admins, guests and other workspaces).
    Row("GET", f"{V1}/workspaces/", signed_in(OK)),
    Row("POST", f"{V1}/workspaces/", signed_in(CREATED), body=lambda c: {"name": f"Team {uuid.uuid4().hex[:8]}"}),
    Row("GET", f"{V1}/workspaces/{{workspace_ref}}/members/", signed_in(OK)),
    Row(
        "PATCH",
        f"{V1}/workspaces/{{workspace_ref}}/members/{{user_id}}/",
        signed_in(FORBIDDEN),
        body=lambda c: {"role": "guest"},
    ),
    Row("DELETE", f"{V1}/workspaces/{{workspace_ref}}/members/{{user_id}}/", signed_in(FORBIDDEN)),
    Row("GET", f"{V1}/workspaces/{{workspace_ref}}/", signed_in(OK)),
    Row("PATCH", f"{V1}/workspaces/{{workspace_ref}}/", signed_in(FORBIDDEN), body=lambda c: {"name": "Ours"}),
    Row("DELETE", f"{V1}/workspaces/{{workspace_ref}}/", signed_in(FORBIDDEN), body=lambda c: {"confirm": "x"}),
    Row("GET", f"{V1}/workspaces/{{workspace_ref}}/invitations/", signed_in(FORBIDDEN)),
    Row("DELETE", f"{V1}/workspaces/{{workspace_ref}}/invitations/{{invitation_id}}/", signed_in(FORBIDDEN)),
    Row("POST", f"{V1}/workspaces/{{workspace_ref}}/invitations/", signed_in(FORBIDDEN), body=lambda c: {}),
    Row(
        "POST",
        f"{V1}/workspaces/invitations/accept/",
        signed_in((404, "invitation_invalid")),
        body=lambda c: {"token": "not-a-token"},
    ),
    # End-to-end encryption (docs/e2ee.md): my devices; a person's I share a workspace with (all
    # here do); only direct rooms are encrypted (the matrix's are not), by those who may send.
    Row("GET", f"{V1}/e2ee/devices/", signed_in(OK)),
    Row(
        "POST",
        f"{V1}/e2ee/devices/",
        signed_in(CREATED),
        body=lambda c: {
            "public_key": base64.b64encode(bytes.fromhex(SPKI_P256_HEADER) + b"\x04" + os.urandom(64)).decode()
        },
    ),
    Row("DELETE", f"{V1}/e2ee/devices/{{device_id}}/", signed_in((404, "device_not_found"))),
    Row("GET", f"{V1}/e2ee/users/{{user_id}}/devices/", signed_in(OK)),
    Row("POST", f"{ROOM}/encryption/", in_room(*[(400, "not_direct")] * 3, FORBIDDEN)),
    # Rooms.
    Row("GET", f"{V1}/rooms/", signed_in(OK)),
    Row("POST", f"{V1}/rooms/", signed_in(CREATED), body=lambda c: {"name": "Mine", "kind": "private"}),
    Row("POST", f"{V1}/rooms/direct/", signed_in(CREATED), body=lambda c: {"user": c.world.stranger.pk}),
    Row("GET", f"{ROOM}/", in_room(OK, OK, OK, OK, outsider_public=OK)),
    Row("PATCH", f"{ROOM}/", MANAGERS, body=lambda c: {"topic": "changed"}),
    Row("DELETE", f"{ROOM}/", in_room(NO_CONTENT, FORBIDDEN, FORBIDDEN, FORBIDDEN)),
    # Only public rooms can be joined: a private room's members too are told so.
    Row("POST", f"{ROOM}/join/", in_room(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, outsider_public=OK)),
    Row("POST", f"{ROOM}/leave/", in_room((409, "last_owner"), NO_CONTENT, NO_CONTENT, NO_CONTENT)),
    # Only the owner hands the room over (rooms.services.ownership_transfer).
    Row(
        "POST",
        f"{ROOM}/owner/",
        in_room(OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
        body=lambda c: {"user": c.world.users["target"].pk},
    ),
    # Members ({user_id} is a member who is none of the actors).
    Row("GET", f"{ROOM}/members/", MEMBERS),
    Row(
        "POST",
        f"{ROOM}/members/",
        in_room(CREATED, CREATED, FORBIDDEN, FORBIDDEN),
        body=lambda c: {"user": c.world.stranger.pk, "role": "member"},
    ),
    Row("PATCH", f"{ROOM}/members/{{user_id}}/", MANAGERS, body=lambda c: {"role": "viewer"}),
    Row("DELETE", f"{ROOM}/members/{{user_id}}/", in_room(NO_CONTENT, NO_CONTENT, FORBIDDEN, FORBIDDEN)),
    # Messages.
    Row("GET", f"{ROOM}/messages/", MEMBERS),
    Row(
        "POST",
        f"{ROOM}/messages/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"content": "hello", "client_msg_id": str(uuid.uuid4())},
    ),
    Row("GET", f"{ROOM}/changes/", MEMBERS, query="?after_sequence=0"),
    Row("POST", f"{ROOM}/receipts/", MEMBERS, body=lambda c: {"read_sequence": 1}),
    Row("GET", f"{ROOM}/presence/", MEMBERS),
    Row("POST", f"{ROOM}/typing/", in_room(NO_CONTENT, NO_CONTENT, NO_CONTENT, FORBIDDEN)),
    # Authors edit their messages while they may send; nobody edits someone else's.
    Row(
        "PATCH",
        f"{MESSAGE}/",
        in_room(OK, OK, OK, FORBIDDEN),
        whose="own",
        variant="own",
        body=lambda c: {"content": "new"},
    ),
    Row("PATCH", f"{MESSAGE}/", in_room(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN), body=lambda c: {"content": "new"}),
    # Authors delete theirs (a viewer's old message too); owners and admins anyone's.
    Row("DELETE", f"{MESSAGE}/", in_room(OK, OK, OK, OK), whose="own", variant="own"),
    Row("DELETE", f"{MESSAGE}/", MANAGERS),
    # Earlier texts: owners, admins and the author; receipts: the author only.
    Row("GET", f"{MESSAGE}/revisions/", MEMBERS, whose="own", variant="own"),
    Row("GET", f"{MESSAGE}/revisions/", MANAGERS),
    Row("GET", f"{MESSAGE}/receipts/", MEMBERS, whose="own", variant="own"),
    Row("GET", f"{MESSAGE}/receipts/", in_room(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)),
    # Threads and reactions: members read threads and reply (not viewers); every member reacts.
    Row(
        "POST",
        f"{ROOM}/messages/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"content": "re", "client_msg_id": str(uuid.uuid4()), "reply_to": str(c.message("other").id)},
        variant="reply",
    ),
    Row("GET", f"{MESSAGE}/thread/", MEMBERS),
    # Attachments (docs/attachments.md): those who may send upload; only the uploader completes or
    # abandons an upload; members fetch what was sent, and a public room's visitors, like
    # outsiders, are told it does not exist. {attachment_id} is the target's, sent, unless "own".
    Row(
        "POST",
        f"{ROOM}/attachments/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"name": "a.txt", "size": 5, "content_type": "text/plain"},
    ),
    Row(
        "POST",
        f"{ROOM}/attachments/{{attachment_id}}/complete/",
        in_room(*[(409, "upload_missing")] * 3, NOT_FOUND),
        whose="own",
        variant="own",
    ),
    Row("POST", f"{ROOM}/attachments/{{attachment_id}}/complete/", in_room(*[NOT_FOUND] * 4)),
    Row("GET", f"{ROOM}/attachments/{{attachment_id}}/", in_room(OK, OK, OK, OK, outsider_public=NOT_FOUND)),
    Row(
        "GET",
        f"{ROOM}/attachments/{{attachment_id}}/download/",
        in_room(*[(302, None)] * 4, outsider_public=NOT_FOUND),
    ),
    Row(
        "DELETE",
        f"{ROOM}/attachments/{{attachment_id}}/",
        in_room(NO_CONTENT, NO_CONTENT, NO_CONTENT, NOT_FOUND),
        whose="own",
        variant="own",
    ),
    Row("DELETE", f"{ROOM}/attachments/{{attachment_id}}/", in_room(*[NOT_FOUND] * 4)),
    Row("POST", f"{MESSAGE}/reactions/", MEMBERS, body=lambda c: {"emoji": "👍"}),
    Row("DELETE", f"{MESSAGE}/reactions/", MEMBERS, query="?emoji=%F0%9F%91%8D"),
    # Search (search/): everyone signed in searches the rooms they may read; a room filter is
    # refused like the room's history.
    Row("GET", f"{V1}/search/", signed_in(OK), query="?q=edited"),
    Row("GET", f"{V1}/search/", MEMBERS, query="?q=edited&room={room_id}", variant="room"),
    # Notifications (docs/notifications.md): everyone signed in has an inbox; an item is its user's
    # while they are in its room (someone else's, or one of a room left, is not found); levels are
    # a member's, per room, refused like the room.
    Row("GET", f"{V1}/notifications/", signed_in(OK)),
    Row("POST", f"{V1}/notifications/read/", signed_in(OK), body=lambda c: {}),
    Row("POST", f"{V1}/notifications/read/", MEMBERS, body=lambda c: {"room": str(c.room.pk)}, variant="room"),
    Row(
        "POST",
        f"{V1}/notifications/{{notification_id}}/read/",
        in_room(OK, OK, OK, OK, outsider_public=NOT_FOUND),
        whose="own",
        variant="own",
    ),
    Row("POST", f"{V1}/notifications/{{notification_id}}/read/", signed_in(NOT_FOUND)),
    Row("GET", f"{V1}/notifications/rooms/", signed_in(OK)),
    Row("PUT", f"{V1}/notifications/rooms/{{room_id}}/", MEMBERS, body=lambda c: {"level": "mute"}),
    # Boards (docs/protocol.md "Boards"): members watch, those who may send edit and create, owners
    # and admins rename and delete any board, members their own; {board_id} is the target's board
    # unless "own".
    Row("GET", f"{ROOM}/boards/", MEMBERS),
    Row("POST", f"{ROOM}/boards/", in_room(CREATED, CREATED, CREATED, FORBIDDEN), body=lambda c: {"title": "New"}),
    Row("GET", f"{BOARD}/", MEMBERS),
    Row(
        "PATCH", f"{BOARD}/", in_room(OK, OK, OK, FORBIDDEN), whose="own", variant="own", body=lambda c: {"title": "T"}
    ),
    Row("PATCH", f"{BOARD}/", MANAGERS, body=lambda c: {"title": "T"}),
    Row("DELETE", f"{BOARD}/", in_room(NO_CONTENT, NO_CONTENT, NO_CONTENT, FORBIDDEN), whose="own", variant="own"),
    Row("DELETE", f"{BOARD}/", in_room(NO_CONTENT, NO_CONTENT, FORBIDDEN, FORBIDDEN)),
    Row("GET", f"{BOARD}/updates/", MEMBERS, query="?after_sequence=0"),
    Row(
        "POST",
        f"{BOARD}/updates/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"update": b64(BoardClient().edit("e1", x=1)), "client_update_id": str(uuid.uuid4())},
    ),
    # Awareness over REST (SSE / long-poll clients): everyone who may open the board, viewers too.
    Row("POST", f"{BOARD}/awareness/", MEMBERS, body=lambda c: {"session": "tab", "state": {"cursor": None}}),
    Row("GET", f"{BOARD}/history/", MEMBERS),
    Row("GET", f"{BOARD}/state/", MEMBERS),
    Row("GET", f"{BOARD}/export/", MEMBERS),
    # Comments: everyone who may open the board reads them, those who may edit it write them;
    # authors edit their text; authors (viewers too) and owners and admins delete.
    Row("GET", f"{BOARD}/comments/", MEMBERS),
    Row(
        "POST",
        f"{BOARD}/comments/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"body": "Hm", "x": 1.0, "y": 1.0},
    ),
    Row(
        "PATCH",
        f"{COMMENT}/",
        in_room(OK, OK, OK, FORBIDDEN),
        whose="own",
        variant="own",
        body=lambda c: {"body": "new"},
    ),
    Row("PATCH", f"{COMMENT}/", in_room(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN), body=lambda c: {"body": "new"}),
    Row("DELETE", f"{COMMENT}/", MEMBERS, whose="own", variant="own"),
    Row("DELETE", f"{COMMENT}/", MANAGERS),
    # Simulations (docs/protocol.md "Simulations"): everyone who may open the board watches its runs,
    # those who may edit it start runs and inject faults, the starter and owners/admins cancel;
    # {board_id} is the target's template board, {run_id} a queued run of it (the target's unless "own").
    Row("GET", f"{V1}/simulator/palette/", signed_in(OK)),
    Row("GET", f"{V1}/simulator/templates/", signed_in(OK)),
    Row(
        "POST",
        f"{ROOM}/boards/from-template/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"template": "chat"},
    ),
    Row("GET", f"{BOARD}/design/", MEMBERS, whose="sim"),
    Row("GET", f"{BOARD}/simulations/", MEMBERS, whose="sim"),
    Row(
        "POST",
        f"{BOARD}/simulations/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        whose="sim",
        body=lambda c: {"duration_s": 2, "speed": None},
    ),
    Row("GET", f"{SIMULATION}/", MEMBERS),
    Row("POST", f"{SIMULATION}/cancel/", MANAGERS),
    Row("POST", f"{SIMULATION}/cancel/", in_room(OK, OK, OK, FORBIDDEN), whose="own", variant="own"),
    Row(
        "POST",
        f"{SIMULATION}/faults/",
        in_room(CREATED, CREATED, CREATED, FORBIDDEN),
        body=lambda c: {"kind": "kill", "component_id": "api"},
    ),
    Row("GET", f"{SIMULATION}/export/", MEMBERS),
    Row("GET", f"{SIMULATION}/export/csv/", MEMBERS),
    Row("GET", f"{V1}/simulations/compare/", MEMBERS, query="?a={run_id}&b={run_id}"),
    # Server-Sent Events and long-polling (transports/): everyone signed in follows their own
    # rooms (an outsider's stream simply has no room of others; tests/test_transports.py). The
    # stream is not read here; a poll without a cursor answers at once with session.ready.
    Row("GET", f"{V1}/events/", signed_in(OK)),
    Row("GET", f"{V1}/poll/", signed_in(OK)),
]


def api_endpoints() -> set[tuple[str, str]]:
    """(method, path) of every route under /api/ in the URL conf, parameters as {name}."""
    found: set[tuple[str, str]] = set()

    def walk(patterns: list, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                view = getattr(pattern.callback, "view_class", None)
                if view is None:
                    found.add(("(a function view: list its methods)", path))
                    continue
                for method in view.http_method_names:
                    if method not in ("head", "options") and hasattr(view, method):
                        found.add((method.upper(), path))

    walk(get_resolver().url_patterns, "")
    return found


def test_every_endpoint_has_a_row():
    rows = {(row.method, row.path) for row in REST_ROWS}
    missing = sorted(api_endpoints() - rows)
    stale = sorted(rows - api_endpoints())
    assert not missing, (
        "endpoints without a row in tests/test_authz_matrix.py REST_ROWS (add one per method, with the "
        f'outcome for each of {ACTORS}, e.g. Row("POST", "/api/v1/...", in_room(OK, OK, OK, FORBIDDEN), '
        f"body=lambda c: {{...}}); a new path parameter needs a value in Cell.param): {missing}"
    )
    assert not stale, f"REST_ROWS rows for endpoints that no longer exist: {stale}"


def test_every_row_says_what_every_actor_gets():
    incomplete = {
        row.name: sorted(set(ACTORS) - set(row.expect)) for row in REST_ROWS if set(row.expect) != set(ACTORS)
    }
    incomplete |= {
        f"{row.frame} ({row.variant})": sorted(set(SOCKET_ACTORS) - set(row.expect))
        for row in FRAME_ROWS
        if set(row.expect) != set(SOCKET_ACTORS)
    }
    assert not incomplete


@pytest.fixture(scope="module")
def api() -> APIClient:
    """One client for the module: a new one loads the middleware again, and WhiteNoise's scan of
    the static files then cost more than the request."""
    return APIClient()


def _client(api: APIClient, cell: Cell) -> APIClient:
    api.cookies.clear()
    if cell.user is None:
        api.credentials()
    else:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(cell.user)}")
    return api


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("row", REST_ROWS, ids=lambda row: row.name)
def test_rest(row, actor, world, api, events, django_capture_on_commit_callbacks):
    cell = Cell(world, actor)
    url = row.url(cell)
    body = row.body(cell) if row.body else None
    client = _client(api, cell)
    expected = row.expect[actor]
    before = fingerprint() if expected[1] is not None else None

    with django_capture_on_commit_callbacks(execute=True):
        response = client.generic(
            row.method, url, data=None if body is None else json.dumps(body), content_type="application/json"
        )

    payload = response.json() if response.get("Content-Type") == "application/json" else None
    if expected[1] is None:
        assert response.status_code == expected[0], payload
        return
    assert (response.status_code, payload["error"]["code"]) == expected, payload
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    assert fingerprint() == before, "a refused request changed the database"
    assert not events.recorded, "a refused request broadcast something"


# -- sockets --------------------------------------------------------------------------------------

ACK = {"message.send": "message.ack", "message.edit": "message.edit.ack", "message.delete": "message.delete.ack"}
# What a socket answers a frame with (the first of these among the frames it sends back).
ANSWERS = {
    *("error", "message.ack", "message.edit.ack", "message.delete.ack", "sync.batch", "history.page"),
    "reaction.ack",
    *("board.state", "board.update.ack", "board.updates"),
    *("simulation.start.ack", "simulation.cancel.ack", "simulation.inject.ack"),
    "pong",
}
CLOSED = "close:4401"  # refused at connect: the frame is ignored
IGNORED = "ignored"


def on_socket(owner: str, admin: str, member: str, viewer: str, *, outsider_public: str = "error:not_member"):
    """A room frame's answers: like `in_room`, plus `account_inactive` for a socket that outlived
    its account, and 4401 for sockets that never authenticated."""
    return {
        "owner": owner,
        "admin": admin,
        "member": member,
        "viewer": viewer,
        "outsider": "error:not_found",
        "outsider@public": outsider_public,
        "removed": "error:not_found",
        "anonymous": CLOSED,
        "deactivated": CLOSED,
        "deactivated-open": "error:account_inactive",
    }


@dataclass(frozen=True)
class FrameRow:
    frame: str
    # actor -> the answer's type ("error:<code>"); "none" (done, no answer); IGNORED (no answer,
    # nothing done: nothing changes, nothing is broadcast); or CLOSED
    expect: dict[str, str]
    fields: Callable[[Cell], dict] = lambda c: {"room": str(c.room.pk)}
    variant: str = ""
    # For answers of "none": an event that shows the frame did its work (a typing frame to the room).
    broadcasts: str | None = None
    # Frames sent first (their answers are not looked at), e.g. board.join before board.awareness.
    setup: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.frame + (f" ({self.variant})" if self.variant else "")


def _board(cell: Cell) -> dict:
    return {"board": str(cell.board("other").pk)}


def _message_fields(whose: str, **extra: Any) -> Callable[[Cell], dict]:
    return lambda c: {"room": str(c.room.pk), "id": str(c.message(whose).id), **extra}


FRAME_ROWS = [
    FrameRow(
        "message.send",
        on_socket("message.ack", "message.ack", "message.ack", "error:forbidden"),
        fields=lambda c: {"room": str(c.room.pk), "content": "hello", "client_msg_id": str(uuid.uuid4())},
    ),
    FrameRow(
        "message.edit",
        on_socket("message.edit.ack", "message.edit.ack", "message.edit.ack", "error:forbidden"),
        fields=_message_fields("own", content="changed"),
        variant="own",
    ),
    FrameRow(
        "message.edit",
        on_socket("error:forbidden", "error:forbidden", "error:forbidden", "error:forbidden"),
        fields=_message_fields("other", content="changed"),
    ),
    FrameRow(
        "message.delete",
        on_socket("message.delete.ack", "message.delete.ack", "message.delete.ack", "message.delete.ack"),
        fields=_message_fields("own"),
        variant="own",
    ),
    FrameRow(
        "message.delete",
        on_socket("message.delete.ack", "message.delete.ack", "error:forbidden", "error:forbidden"),
        fields=_message_fields("other"),
    ),
    # Threads and reactions: a reply is a message.send with reply_to (not for viewers); every
    # member reacts, and removing a reaction one has not is acked too.
    FrameRow(
        "message.send",
        on_socket("message.ack", "message.ack", "message.ack", "error:forbidden"),
        fields=lambda c: {
            "room": str(c.room.pk),
            "content": "re",
            "client_msg_id": str(uuid.uuid4()),
            "reply_to": str(c.message("other").id),
        },
        variant="reply",
    ),
    FrameRow(
        "reaction.add",
        on_socket("reaction.ack", "reaction.ack", "reaction.ack", "reaction.ack"),
        fields=_message_fields("other", emoji="👍"),
    ),
    FrameRow(
        "reaction.remove",
        on_socket("reaction.ack", "reaction.ack", "reaction.ack", "reaction.ack"),
        fields=_message_fields("other", emoji="👍"),
    ),
    FrameRow(
        "sync",
        on_socket("sync.batch", "sync.batch", "sync.batch", "sync.batch"),
        fields=lambda c: {"room": str(c.room.pk), "after_sequence": 0},
    ),
    FrameRow("history", on_socket("history.page", "history.page", "history.page", "history.page")),
    FrameRow(
        "receipt",
        on_socket("none", "none", "none", "none"),
        fields=lambda c: {"room": str(c.room.pk), "read_sequence": 1},
    ),
    FrameRow("typing", on_socket("none", "none", "none", "error:forbidden"), broadcasts="typing"),
    # Boards: members watch (join, sync, awareness), those who may send edit; the target's board.
    FrameRow("board.join", on_socket("board.state", "board.state", "board.state", "board.state"), fields=_board),
    FrameRow(
        "board.update",
        on_socket("board.update.ack", "board.update.ack", "board.update.ack", "error:forbidden"),
        fields=lambda c: {
            **_board(c),
            "update": b64(BoardClient().edit("e1", x=1)),
            "client_update_id": str(uuid.uuid4()),
        },
    ),
    FrameRow(
        "board.sync",
        on_socket("board.updates", "board.updates", "board.updates", "board.updates"),
        fields=lambda c: {**_board(c), "after_sequence": 0},
    ),
    # Only on a board the socket joined (setup): those who could not join it get not_found.
    FrameRow(
        "board.awareness",
        {
            **on_socket("none", "none", "none", "none", outsider_public="error:not_found"),
            "deactivated-open": "error:not_found",
        },
        fields=lambda c: {**_board(c), "state": {"cursor": {"x": 1, "y": 2}}},
        setup=("board.join",),
        broadcasts="board.awareness",
    ),
    FrameRow(
        "board.leave",
        {
            **on_socket("none", "none", "none", "none", outsider_public=IGNORED),
            **dict.fromkeys(["outsider", "removed", "deactivated-open"], IGNORED),
        },
        fields=_board,
        setup=("board.join",),
        broadcasts="board.awareness",
    ),
    # Simulations: on the target's template board; a queued run of it that the target started.
    FrameRow(
        "simulation.start",
        on_socket("simulation.start.ack", "simulation.start.ack", "simulation.start.ack", "error:forbidden"),
        fields=lambda c: {"board": str(c.board("sim").pk), "duration_s": 2, "speed": None},
    ),
    FrameRow(
        "simulation.cancel",
        on_socket("simulation.cancel.ack", "simulation.cancel.ack", "error:forbidden", "error:forbidden"),
        fields=lambda c: {"run": str(c.run("other").pk)},
    ),
    FrameRow(
        "simulation.inject",
        on_socket("simulation.inject.ack", "simulation.inject.ack", "simulation.inject.ack", "error:forbidden"),
        fields=lambda c: {"run": str(c.run("other").pk), "fault": {"kind": "kill", "component_id": "api"}},
    ),
    FrameRow(
        "heartbeat",
        {**dict.fromkeys(SOCKET_ACTORS, "none"), "anonymous": CLOSED, "deactivated": CLOSED},
        fields=lambda c: {"active": True},
    ),
    # Liveness only: every open socket gets its pong, whoever it is (it names no room).
    FrameRow(
        "ping",
        {**dict.fromkeys(SOCKET_ACTORS, "pong"), "anonymous": CLOSED, "deactivated": CLOSED},
        fields=lambda c: {},
    ),
]


def test_every_frame_type_has_a_row():
    missing = sorted(set(ChatConsumer.handlers) - {row.frame for row in FRAME_ROWS})
    assert not missing, (
        "frame types without a row in tests/test_authz_matrix.py FRAME_ROWS (add one per type, with the "
        f'answer for each of {SOCKET_ACTORS}, e.g. FrameRow("board.x", on_socket("board.x.ack", ...), '
        f"fields=lambda c: {{...}})): {missing}"
    )


def _socket_user(cell: Cell) -> User | AnonymousUser:
    if cell.user is None:
        return AnonymousUser()
    user = User.objects.get(pk=cell.user.pk)
    if cell.actor == "deactivated-open":
        user.is_active = True  # as it was when the socket connected
    return user


def _answer(frames: list[dict]) -> str:
    answers = [frame for frame in frames if frame["type"] in ANSWERS]
    if not answers:
        return "none"
    first = answers[0]
    return f"error:{first['code']}" if first["type"] == "error" else first["type"]


@pytest.mark.asyncio
@pytest.mark.parametrize("actor", SOCKET_ACTORS)
@pytest.mark.parametrize("row", FRAME_ROWS, ids=lambda row: row.name)
async def test_socket(row, actor, world, events):
    cell = Cell(world, actor)
    frame = {"type": row.frame, **(await database_sync_to_async(row.fields)(cell))}
    setup = [{**frame, "type": kind} for kind in row.setup]
    user = await database_sync_to_async(_socket_user)(cell)
    expected = row.expect[actor]
    refused = expected.startswith("error:") or expected in (CLOSED, IGNORED)
    before = await database_sync_to_async(fingerprint)() if refused else None
    events.clear()  # the messages made for the cell

    socket = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/")
    socket.scope["user"] = user
    assert (await socket.connect(timeout=TIMEOUT))[0]
    if expected == CLOSED:
        await socket.send_json_to(frame)
        code, frames = await receive_close(socket)
        await socket.disconnect()  # returns once the consumer is done, the frame handled
        assert (code, frames) == (CLOSE_UNAUTHENTICATED, [])
    else:
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "session.ready"
        for before_frame in setup:
            await socket.send_json_to(before_frame)
        if setup:
            await frames_before_marker(socket)
            events.clear()
        await socket.send_json_to(frame)
        frames = await frames_before_marker(socket)
        done = list(events.recorded)  # what the frame did (leaving the socket announces more)
        await socket.disconnect()
        # What an accepted frame set going after its answer (a reply's notices, call_service's
        # later work) finishes in this test: left running, it landed inside the next test's
        # before/after fingerprints (a flaky "a refused frame changed the database").
        await asyncio.gather(*notification_services._running, *core_events._later_tasks)
        assert _answer(frames) == ("none" if expected == IGNORED else expected), frames

    broadcast = [e for e in events.recorded if e.type != "user.presence"]
    if refused:
        assert await database_sync_to_async(fingerprint)() == before, "a refused frame changed the database"
        assert not broadcast, f"a refused frame broadcast {[e.event for e in broadcast]}"
        if expected.startswith("error:"):
            error = next(f for f in frames if f["type"] == "error")
            assert error["ref"] == frame.get("client_msg_id", frame.get("id", frame.get("client_update_id")))
    elif row.broadcasts:
        assert [e.frame["type"] for e in done if e.type != "user.presence" and e.frame] == [row.broadcasts]
