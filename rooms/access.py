"""Who may do what in a room: the one definition every path uses.

The rules are functions of plain facts (the room's kind, the user's role there or None, whether
the user account is active), so the same rule serves the selectors (rooms.selectors.membership_get
and friends), the services, and the one SQL statement that writes socket sends in batches
(messaging.services._SEND), which joins `send_rules_sql()`: a table of these very functions'
answers for every combination. A new rule (bans, read-only rooms) is added here, once.
"""

import itertools
from collections.abc import Callable

from core.errors import ApplicationError, Forbidden, NotFound
from rooms.models import Membership, Room

Role = Membership.Role

# Owners do everything; admins manage members and viewers and edit the room; members send;
# viewers read. Ranks order who may change whom.
RANK: dict[str, int] = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
SENDING_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
MANAGING_ROLES = frozenset({Role.OWNER, Role.ADMIN})


# -- Workspaces (workspaces/; docs/workspaces.md) -------------------------------------------------
# Every room belongs to a workspace. The services keep room memberships to members of the room's
# workspace (adding, joining and direct rooms check it; leaving a workspace ends one's rooms in it),
# so a membership of the room is enough. For everyone else the workspace decides what the room is to
# them, before every rule below: outside its workspace the room does not exist (not_found, like a
# missing one), and to a guest of it a public room is as private (guests see only the rooms they
# are added to: no preview, no joining, no boards).
WORKSPACE_GUEST = "guest"


def scoped_kind(*, kind: str | None, role: str | None, workspace_role: str | None) -> str | None:
    """The room's kind as this user may know it: `kind` for members of the room, None (a missing
    room) outside its workspace, private for its guests. Callers give it to every rule below."""
    if kind is None or role is not None:
        return kind
    if workspace_role is None:
        return None
    if workspace_role == WORKSPACE_GUEST and kind == Room.Kind.PUBLIC:
        return Room.Kind.PRIVATE
    return kind


def may_see(*, kind: str | None, role: str | None) -> bool:
    """Members see their rooms; anyone sees a public room (to preview and join it)."""
    return kind is not None and (role is not None or kind == Room.Kind.PUBLIC)


def see_refusal(*, kind: str | None, role: str | None) -> ApplicationError | None:
    # Missing and invisible rooms answer the same, so nobody learns that a private room exists.
    return None if may_see(kind=kind, role=role) else NotFound()


def member_refusal(*, kind: str | None, role: str | None, user_active: bool = True) -> ApplicationError | None:
    """Most actions need a membership; a visible room's non-member is told to join first. A
    deactivated account does nothing in its rooms, not even read: its sockets are being closed
    (4403), and a frame that comes first, on a socket of another process, must not get through."""
    refusal = see_refusal(kind=kind, role=role)
    if refusal is None and role is None:
        return Forbidden("Join the room first.", code="not_member")
    if refusal is None and not user_active:
        return Forbidden("This account is deactivated.", code="account_inactive")
    return refusal


def send_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not write to this room's history (send, edit, type), or None."""
    refusal = member_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None:
        return refusal
    if role not in SENDING_ROLES:
        return Forbidden("Viewers can read this room but not write to it.")
    return None


def require_send(membership: Membership) -> None:
    """`send_refusal` for a membership read by rooms.selectors.membership_get."""
    refusal = send_refusal(kind=membership.room.kind, role=membership.role, user_active=membership.user.is_active)
    if refusal is not None:
        raise refusal


# -- Threads and reactions (messaging.services; docs/protocol.md "Threads and reactions") ----------
# Replying is sending: owners, admins and members reply, viewers do not. Reacting is lighter than
# writing: every member reacts, viewers included (an announcement room's readers can acknowledge
# a post without being able to write in it). Outsiders get not_found like for the room itself.


def reply_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not reply in a thread of this room, or None."""
    refusal = send_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None and refusal.code == "forbidden":
        return Forbidden("Viewers can read threads but not reply in them.")
    return refusal


def react_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not add or remove their reactions in this room, or None."""
    return member_refusal(kind=kind, role=role, user_active=user_active)


def require_reply(membership: Membership) -> None:
    refusal = reply_refusal(kind=membership.room.kind, role=membership.role, user_active=membership.user.is_active)
    if refusal is not None:
        raise refusal


def require_react(membership: Membership) -> None:
    refusal = react_refusal(kind=membership.room.kind, role=membership.role, user_active=membership.user.is_active)
    if refusal is not None:
        raise refusal


# -- Attachments (attachments/; docs/attachments.md) ----------------------------------------------
# Uploading is sending (send_refusal). Fetching a file needs a membership: a public room's
# visitors read its messages but do not get its files, and, as for outsiders, they are not found.


def attachment_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not fetch the attachments of this room, or None."""
    refusal = member_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None and refusal.code == "not_member":
        return NotFound()
    return refusal


def may_manage(membership: Membership) -> bool:
    return membership.role in MANAGING_ROLES


# -- Mentions (messaging/mentions.py; docs/notifications.md) ----------------------------------------
# `@username` is anyone's; `@room` notifies every member, so only owners and admins may use it:
# from anyone else it is plain text (the message is still sent, nobody is notified by it).
ROOM_MENTION_ROLES = MANAGING_ROLES


def may_mention_room(role: str | None) -> bool:
    return role in ROOM_MENTION_ROLES


def room_mention_roles_sql() -> str:
    """ROOM_MENTION_ROLES as a SQL list, for the send statement (messaging.services._SEND)."""
    return ", ".join(f"'{role}'" for role in sorted(ROOM_MENTION_ROLES))


def role_abilities() -> dict[str, dict[str, bool | int]]:
    """What each role may do, for the web client (client-config): it greys out what the server
    would refuse, from this definition rather than a copy of it."""
    return {
        role: {
            "send": role in SENDING_ROLES,
            "manage": role in MANAGING_ROLES,
            "reply": reply_refusal(kind=Room.Kind.PRIVATE, role=role, user_active=True) is None,
            "react": react_refusal(kind=Room.Kind.PRIVATE, role=role, user_active=True) is None,
            "mention_room": may_mention_room(role),
            # Who may change whom (rooms.services: owners anyone, others only those ranked below them).
            "rank": RANK[role],
        }
        for role in Role.values
    }


def _rules_sql(refusal: Callable[..., ApplicationError | None], name: str) -> str:
    """A rule as a SQL table `name(kind, role, user_active, allowed)`: its answer for every
    combination, for the statements that check it for many rows at once. A NULL role (not a
    member) matches with IS NOT DISTINCT FROM."""
    rows = []
    for kind, role, active in itertools.product(Room.Kind.values, [*Role.values, None], [True, False]):
        allowed = refusal(kind=kind, role=role, user_active=active) is None
        role_sql = "NULL::text" if role is None else f"'{role}'"
        rows.append(f"('{kind}', {role_sql}, {str(active).lower()}, {str(allowed).lower()})")
    return f"(VALUES {', '.join(rows)}) AS {name}(kind, role, user_active, allowed)"


def send_rules_sql() -> str:
    """`send_refusal` as the table `send_rules` (messaging.services._SEND)."""
    return _rules_sql(send_refusal, "send_rules")


def react_rules_sql() -> str:
    """`react_refusal` as the table `rules` (messaging.services._REACT)."""
    return _rules_sql(react_refusal, "rules")


# -- Boards (boards/; docs/protocol.md "Boards") ---------------------------------------------------
# Members of the room see a board and take part (join, sync, awareness); those who may write to
# the room's history (owners, admins, members) edit it and create boards; owners and admins rename
# and delete any board of the room, members the boards they created; viewers only watch.


def board_see_refusal(*, kind: str | None, role: str | None, user_active: bool = True) -> ApplicationError | None:
    """Why this user may not open a board of this room (join, sync, read, awareness), or None.
    A board of a room one may not see is `not_found`, like the room; a deactivated account (whose
    sockets are being closed) opens nothing."""
    refusal = member_refusal(kind=kind, role=role)
    if refusal is None and not user_active:
        return Forbidden("This account is deactivated.", code="account_inactive")
    return refusal


def board_edit_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not change a board's document (or create a board), or None."""
    refusal = send_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None and refusal.code == "forbidden":
        return Forbidden("Viewers can watch this board but not change it.")
    return refusal


def board_manage_refusal(
    *, kind: str | None, role: str | None, user_active: bool, is_creator: bool
) -> ApplicationError | None:
    """Why this user may not rename or delete a board, or None."""
    refusal = board_edit_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None:
        return refusal
    if role not in MANAGING_ROLES and not is_creator:
        return Forbidden("Only the board's creator and the room's owners and admins can rename or delete it.")
    return None


# Comments on a board (boards/comments.py): everyone who may open the board reads them; those who
# may edit it write them (comment, reply, resolve, reopen); viewers only read. The author edits
# their text; the author or the room's owners and admins delete.


def board_comment_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not write comments on a board of this room, or None."""
    refusal = send_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None and refusal.code == "forbidden":
        return Forbidden("Viewers can read comments but not write them.")
    return refusal


def board_comment_delete_refusal(
    *, kind: str | None, role: str | None, user_active: bool, is_author: bool
) -> ApplicationError | None:
    """Why this user may not delete a comment, or None (authors may delete their own comments
    even after becoming viewers)."""
    refusal = member_refusal(kind=kind, role=role)
    if refusal is not None:
        return refusal
    if not user_active:
        return Forbidden("This account is deactivated.", code="account_inactive")
    if not is_author and role not in MANAGING_ROLES:
        return Forbidden("Only the author or a room admin can delete a comment.")
    return None


# Simulations of a board's design (simulator/; docs/protocol.md "Simulations"): everyone who may
# open the board watches its runs (list, progress, results, export, compare); those who may edit it
# start runs and inject faults into live ones; a run is cancelled by whoever started it or by the
# room's owners and admins. Viewers only watch.


def simulation_start_refusal(*, kind: str | None, role: str | None, user_active: bool) -> ApplicationError | None:
    """Why this user may not start a simulation of a board of this room (or inject a fault into
    a live run), or None."""
    refusal = send_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None and refusal.code == "forbidden":
        return Forbidden("Viewers can watch simulations but not start them or change them.")
    return refusal


def simulation_cancel_refusal(
    *, kind: str | None, role: str | None, user_active: bool, is_starter: bool
) -> ApplicationError | None:
    """Why this user may not cancel a run, or None."""
    refusal = simulation_start_refusal(kind=kind, role=role, user_active=user_active)
    if refusal is not None:
        return refusal
    if not is_starter and role not in MANAGING_ROLES:
        return Forbidden("Only whoever started a run and the room's owners and admins can cancel it.")
    return None
