"""Reads of boards: who may see them, their list, their document and their log."""

import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import User
from boards import crdt, documents, rendering
from boards.models import Board, BoardUpdate
from core.errors import ApplicationError, NotFound
from rooms import access
from rooms.models import Membership
from rooms.selectors import membership_get
from workspaces.selectors import workspace_role_of


class Compacted(ApplicationError):
    """The log before the asked number was compacted into a snapshot: fetch the whole state."""

    code = "compacted"
    status = 409
    message = "The updates before this number were compacted: fetch the whole state and continue from its sequence."


def parse_board_id(board_id: object) -> uuid.UUID:
    try:
        return board_id if isinstance(board_id, uuid.UUID) else uuid.UUID(str(board_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound() from None


@dataclass(frozen=True)
class BoardAccess:
    """A board and what its reader is in its room, read in one query."""

    board: Board
    role: str | None  # the user's role in the board's room; None: not a member
    user_active: bool  # the account's state as stored now (a socket's user object is from connect)


def board_access(*, user: User, board_id: object) -> BoardAccess:
    """The board, if the user may open it (rooms.access.board_see_refusal): unknown boards and
    boards of rooms one may not see are `not_found`, a public room's non-member gets `not_member`.
    One round trip: it is on the path of every update."""
    board = (
        Board.objects.select_related("room", "created_by")
        .annotate(
            reader_role=Subquery(
                Membership.objects.filter(room_id=OuterRef("room_id"), user_id=user.pk).values("role")[:1]
            ),
            reader_active=Subquery(User.objects.filter(pk=user.pk).values("is_active")[:1]),
            reader_workspace_role=workspace_role_of(user.pk, OuterRef("room__workspace_id")),
        )
        .filter(pk=parse_board_id(board_id))
        .first()
    )
    if board is None:
        raise NotFound()
    role, active = board.reader_role, bool(board.reader_active)
    kind = access.scoped_kind(kind=board.room.kind, role=role, workspace_role=board.reader_workspace_role)
    refusal = access.board_see_refusal(kind=kind, role=role, user_active=active)
    if refusal is not None:
        raise refusal
    return BoardAccess(board=board, role=role, user_active=active)


def board_get_for(*, user: User, board_id: object) -> tuple[Board, Membership | None]:
    """`board_access` as the board and the user's membership of its room (unsaved: its role)."""
    found = board_access(user=user, board_id=board_id)
    board = found.board
    return board, Membership(room=board.room, user=user, role=found.role) if found.role else None


def board_list(*, user: User, room_id: object) -> QuerySet[Board]:
    membership = membership_get(room_id=room_id, user=user)
    return Board.objects.filter(room_id=membership.room_id).select_related("created_by").order_by("-created_at", "id")


# Renderings already made, by (board, number): the JSON text of the elements of the document at
# that number. A document at a number never changes (numbers commit in order), so neither does its
# rendering: `GET /boards/{id}/` and the export of a board that has not changed since are served
# from here (a 10,000-element board's rendering is ~0.3 s of CPU; docs/performance.md); at a new
# number boards.rendering re-renders only the elements changed since. Per process, bounded in
# entries and bytes, least recently used out first.
_RENDERINGS: "OrderedDict[tuple[str, int], str]" = OrderedDict()
_RENDERINGS_LOCK = threading.Lock()
RENDERING_CACHE_ENTRIES = 16
RENDERING_CACHE_BYTES = 64 * 2**20


def board_rendering(*, board: Board) -> tuple[int, str]:
    """(sequence, the JSON text of the board's elements at it): `{"elements": [...]}`'s list, as
    `crdt.render` makes it, at the board's last number (read with `board`) or later."""
    key = (str(board.pk), board.last_sequence)
    with _RENDERINGS_LOCK:
        kept = _RENDERINGS.get(key)
        if kept is not None:
            _RENDERINGS.move_to_end(key)
            return key[1], kept
    mirror = rendering.mirror(board.pk)
    raw: str | None = None
    diff: bytes | None = None
    with mirror.lock:  # one reader of the board at a time brings its mirror forward
        with documents.using(board.pk) as live, live.lock:  # the process's live document
            doc = documents.catch_up(live, board.last_sequence)
            sequence = live.sequence
            if sequence < mirror.sequence:  # a reader with an older number reloaded it: not the mirror's
                raw = crdt.elements_json(doc)
            elif sequence > mirror.sequence:  # what the mirror lacks (all of it the first time)
                diff = doc.get_update(mirror.state_vector())
        if raw is None:  # the live document's lock is free again: writers go on meanwhile
            text = mirror.advance(diff, sequence)
    if raw is not None:
        text = json.dumps(crdt.render_json(raw)["elements"], separators=(",", ":"), ensure_ascii=False)
    with _RENDERINGS_LOCK:
        _RENDERINGS[(key[0], sequence)] = text
        while len(_RENDERINGS) > RENDERING_CACHE_ENTRIES or (
            len(_RENDERINGS) > 1 and sum(len(t) for t in _RENDERINGS.values()) > RENDERING_CACHE_BYTES
        ):
            _RENDERINGS.popitem(last=False)
    return sequence, text


def forget_renderings(board_id: object) -> None:
    """Drop a deleted board's renderings."""
    rendering.forget(board_id)
    key = str(board_id)
    with _RENDERINGS_LOCK:
        for stale in [k for k in _RENDERINGS if k[0] == key]:
            del _RENDERINGS[stale]


def board_document(*, board: Board) -> tuple[int, dict[str, Any]]:
    """(sequence, JSON rendering) of the board's document now (the process's live document)."""
    sequence, text = board_rendering(board=board)
    return sequence, {"elements": json.loads(text)}


def board_state(*, board: Board, state_vector: bytes | None) -> tuple[int, bytes]:
    """(sequence, what a client with `state_vector` lacks): the answer to board.join."""
    with documents.using(board.pk) as live, live.lock:
        doc = documents.catch_up(live, board_last_sequence(board_id=board.pk, fallback=board.last_sequence))
        return live.sequence, crdt.encode_diff(doc, state_vector)


def board_join(*, user: User, board_id: object, state_vector: object) -> tuple[Board, int, bytes]:
    """board.join: access, then the state the client lacks."""
    vector = crdt.b64decode(state_vector, field="state_vector", required=False)
    board, _ = board_get_for(user=user, board_id=board_id)
    sequence, update = board_state(board=board, state_vector=vector)
    return board, sequence, update


def board_last_sequence(*, board_id: uuid.UUID | str, fallback: int = 0) -> int:
    """The board's latest number as stored now (`fallback` if the board is gone)."""
    value = Board.objects.filter(pk=board_id).values_list("last_sequence", flat=True).first()
    return fallback if value is None else value


def board_updates(
    *, board_id: uuid.UUID, after_sequence: int, until_sequence: int | None, limit: int
) -> list[BoardUpdate]:
    """Stored updates after a number (up to `until_sequence`), oldest first; `Compacted` if the
    first one is not the next number (the log there went into a snapshot)."""
    updates = BoardUpdate.objects.filter(board_id=board_id, sequence__gt=after_sequence).select_related("user")
    if until_sequence is not None:
        updates = updates.filter(sequence__lte=until_sequence)
    page = list(updates.order_by("sequence")[:limit])
    if page and page[0].sequence != after_sequence + 1:
        raise Compacted()
    if not page and until_sequence is None and board_last_sequence(board_id=board_id) > after_sequence:
        raise Compacted()
    return page


def board_updates_page(
    *, user: User, board_id: object, after_sequence: int, limit: int
) -> tuple[Board, list[BoardUpdate], bool, int]:
    """board.sync and GET updates/: (board, updates, has_more, last_sequence)."""
    board, _ = board_get_for(user=user, board_id=board_id)
    page = board_updates(board_id=board.pk, after_sequence=after_sequence, until_sequence=None, limit=limit + 1)
    has_more = len(page) > limit
    page = page[:limit]
    return board, page, has_more, page[-1].sequence if page else after_sequence
