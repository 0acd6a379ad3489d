"""Comments on a board: threads anchored on an element or a point, with one level of replies.

Who may do what (rooms.access.board_comment_refusal; docs/protocol.md "Boards"):

- everyone who may open the board reads the comments, viewers included;
- owners, admins and members comment and reply, and resolve or reopen any thread; viewers cannot
  write comments (they only watch the board);
- the author edits their comment's text;
- the author, or an owner or admin of the room, deletes a comment: it becomes a tombstone
  (`deleted`, empty body) so the thread around it stays readable.

Every change is announced after commit to the board's sockets as `board.comment` `{board,
comment}` (the comment in its new state), through boards.services.send_board_frame.
"""

import math
import uuid
from typing import Annotated, TypedDict

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from boards.models import Board, BoardComment
from boards.selectors import board_get_for
from boards.services import send_board_frame
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.jsontext import storable_text
from rooms import access
from rooms.models import Membership
from rooms.payloads import DateTimeStr, UserPayload, UUIDStr, user_payload

# --- Payloads -------------------------------------------------------------------------------------


class CommentPayload(TypedDict):
    id: UUIDStr
    board: UUIDStr
    parent: Annotated[str | None, uuid.UUID, "The thread's first comment, for a reply; null for a thread"]
    author: Annotated[UserPayload | None, "Null once the author's account is gone"]
    element_id: Annotated[str | None, "The element a thread is anchored on (null for replies and point threads)"]
    x: Annotated[float | None, "The point a thread is anchored on, in board coordinates (or null)"]
    y: float | None
    body: Annotated[str, "Empty once deleted"]
    resolved: Annotated[bool, "Threads only: resolved threads are hidden by default in the web client"]
    created_at: DateTimeStr
    updated_at: Annotated[str, "The last change (text, resolved or deletion)"]
    deleted: bool


class CommentFrame(TypedDict):
    """`board.comment`, to the board's sockets on every change of a comment."""

    type: str
    board: UUIDStr
    comment: CommentPayload


def comment_payload(comment: BoardComment) -> CommentPayload:
    deleted = comment.deleted_at is not None
    return {
        "id": str(comment.id),
        "board": str(comment.board_id),
        "parent": str(comment.parent_id) if comment.parent_id else None,
        "author": user_payload(comment.author),
        "element_id": comment.element_id,
        "x": comment.x,
        "y": comment.y,
        "body": "" if deleted else comment.body,
        "resolved": comment.resolved,
        "created_at": comment.created_at.isoformat(),
        "updated_at": comment.updated_at.isoformat(),
        "deleted": deleted,
    }


# --- Selectors ------------------------------------------------------------------------------------


def comment_list(*, user: User, board_id: object) -> list[BoardComment]:
    """Every comment of the board (deleted ones as tombstones), oldest first: threads and their
    replies; clients group replies under `parent`."""
    board, _ = board_get_for(user=user, board_id=board_id)
    return list(BoardComment.objects.filter(board=board).select_related("author").order_by("created_at", "id"))


def _comment_in(board: Board, comment_id: object, *, lock: bool = False) -> BoardComment:
    try:
        key = comment_id if isinstance(comment_id, uuid.UUID) else uuid.UUID(str(comment_id))
    except ValueError:
        raise NotFound("No such comment.") from None
    comments = BoardComment.objects.filter(board=board, id=key).select_related("author")
    comment = (comments.select_for_update(of=("self",)) if lock else comments).first()
    if comment is None:
        raise NotFound("No such comment.")
    return comment


# --- Services -------------------------------------------------------------------------------------


def _board_for_writing(user: User, board_id: object) -> tuple[Board, Membership | None]:
    board, membership = board_get_for(user=user, board_id=board_id)
    refusal = access.board_comment_refusal(
        kind=board.room.kind, role=membership.role if membership else None, user_active=user.is_active
    )
    if refusal is not None:
        raise refusal
    return board, membership


def _clean_body(body: object) -> str:
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("A comment needs some text.", fields={"body": ["This field may not be blank."]})
    if len(body) > BoardComment.BODY_MAX_LENGTH:
        message = f"Comments are at most {BoardComment.BODY_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"body": [message]})
    return storable_text(body, field="body")


def _clean_coordinate(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a number.", fields={field: ["Must be a finite number."]})
    return float(value)


def _clean_anchor(element_id: object, x: object, y: object) -> tuple[str | None, float | None, float | None]:
    if element_id is not None and element_id != "":
        if not isinstance(element_id, str) or len(element_id) > 200:
            raise InvalidInput(
                "element_id must be an element's id.", fields={"element_id": ["At most 200 characters."]}
            )
        element = storable_text(element_id, field="element_id")
    else:
        element = None
    px, py = _clean_coordinate(x, "x"), _clean_coordinate(y, "y")
    if (px is None) != (py is None):
        raise InvalidInput(
            "A point needs both x and y.", fields={"x" if px is None else "y": ["Required with the other."]}
        )
    if element is None and px is None:
        message = "A thread is anchored on an element (element_id) or a point (x and y)."
        raise InvalidInput(message, fields={"element_id": [message]})
    return element, px, py


def _announce(comment: BoardComment) -> None:
    frame: CommentFrame = {"type": "board.comment", "board": str(comment.board_id), "comment": comment_payload(comment)}
    send_board_frame(comment.board_id, dict(frame))


def comment_create(
    *,
    user: User,
    board_id: object,
    body: object,
    element_id: object = None,
    x: object = None,
    y: object = None,
    parent_id: object = None,
) -> BoardComment:
    """Start a thread anchored on an element or a point, or (`parent_id`) reply to one: a reply
    to a reply joins that reply's thread (threads are one level)."""
    text = _clean_body(body)
    board, _ = _board_for_writing(user, board_id)
    parent = None
    anchor: tuple[str | None, float | None, float | None] = (None, None, None)
    if parent_id is not None and parent_id != "":
        parent = _comment_in(board, parent_id)
        if parent.parent_id is not None:
            parent = _comment_in(board, parent.parent_id)
        if parent.deleted_at is not None:
            raise Conflict("This thread was deleted.", code="deleted")
    else:
        anchor = _clean_anchor(element_id, x, y)
    now = timezone.now()
    with transaction.atomic():
        comment = BoardComment.objects.create(
            board=board,
            author=user,
            parent=parent,
            element_id=anchor[0],
            x=anchor[1],
            y=anchor[2],
            body=text,
            created_at=now,
            updated_at=now,
        )
        _announce(comment)
    return comment


_UNSET = object()


def comment_update(
    *, user: User, board_id: object, comment_id: object, body: object = _UNSET, resolved: object = _UNSET
) -> BoardComment:
    """Edit the text (the author) and/or resolve or reopen a thread (anyone who may comment).
    A change that changes nothing announces nothing."""
    if body is _UNSET and resolved is _UNSET:
        message = "Send body, resolved or both."
        raise InvalidInput(message, fields={"non_field_errors": [message]})
    text = None if body is _UNSET else _clean_body(body)
    if resolved is not _UNSET and not isinstance(resolved, bool):
        raise InvalidInput("resolved must be true or false.", fields={"resolved": ["Must be a boolean."]})
    board, _ = _board_for_writing(user, board_id)
    with transaction.atomic():
        comment = _comment_in(board, comment_id, lock=True)
        if comment.deleted_at is not None:
            raise Conflict("This comment was deleted.", code="deleted")
        changed = []
        if text is not None and text != comment.body:
            if comment.author_id != user.pk:
                raise Forbidden("Only the author can edit a comment.")
            comment.body = text
            changed.append("body")
        if resolved is not _UNSET and resolved != comment.resolved:
            if comment.parent_id is not None:
                message = "Only a thread (its first comment) is resolved, not a reply."
                raise InvalidInput(message, fields={"resolved": [message]})
            comment.resolved = bool(resolved)
            changed.append("resolved")
        if changed:
            comment.updated_at = timezone.now()
            comment.save(update_fields=[*changed, "updated_at"])
            _announce(comment)
    return comment


def comment_delete(*, user: User, board_id: object, comment_id: object) -> BoardComment:
    """Delete a comment (its author, or the room's owners and admins): a tombstone stays, so the
    thread around it stays readable. Deleting it again changes nothing."""
    board, membership = board_get_for(user=user, board_id=board_id)
    with transaction.atomic():
        comment = _comment_in(board, comment_id, lock=True)
        if comment.deleted_at is not None:
            return comment
        is_author = comment.author_id is not None and comment.author_id == user.pk
        refusal = access.board_comment_delete_refusal(
            kind=board.room.kind,
            role=membership.role if membership else None,
            user_active=user.is_active,
            is_author=is_author,
        )
        if refusal is not None:
            raise refusal
        comment.deleted_at = comment.updated_at = timezone.now()
        comment.body = ""
        comment.save(update_fields=["deleted_at", "updated_at", "body"])
        _announce(comment)
    return comment


def comments_erase(*, user_id: int, mode: str) -> int:
    """An erased account's comments (accounts.erasure; ERASURE_MESSAGES, as for its messages):
    `delete` makes each a tombstone (no text), `anonymise` keeps the text; either way they lose
    their author ("Deleted user"). Each change is announced on its board after commit, as a
    deletion is. Returns how many changed."""
    changed = 0
    with transaction.atomic():
        for comment in BoardComment.objects.select_for_update().filter(author_id=user_id).order_by("created_at"):
            comment.author = None
            if mode == "delete" and comment.deleted_at is None:
                comment.deleted_at = timezone.now()
                comment.body = ""
            comment.updated_at = timezone.now()
            comment.save(update_fields=["author", "deleted_at", "body", "updated_at"])
            _announce(comment)
            changed += 1
    return changed
