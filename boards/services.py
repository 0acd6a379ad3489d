"""Every write to boards goes through here: REST views and the WebSocket consumer alike.

Updates are numbered like messages (messaging.services): in one transaction, the board's row is
locked by `UPDATE ... SET last_sequence = last_sequence + 1 RETURNING` (gapless: a rollback gives
the number back), the update is applied to this process's authoritative document (boards.documents,
brought up to the stored sequence first), the document's size is checked, the update is inserted;
the event goes out after commit (core.events). The consumer runs these through
core.events.call_service.
"""

import uuid

from django.db import IntegrityError, connection, transaction

from accounts.models import User
from boards import crdt, documents
from boards.models import Board, BoardUpdate
from boards.payloads import board_payload, update_frame
from boards.selectors import board_access
from core.errors import InvalidInput, NotFound
from core.events import dumps, room_group, send_event
from core.jsontext import storable_text
from rooms import access
from rooms.selectors import membership_get


def board_group(board_id: object) -> str:
    """The events of one board (updates, awareness, comments) go to the sockets that joined it."""
    return f"board.{board_id}"


def send_board_frame(board_id: object, frame: dict, *, session: str | None = None) -> None:
    """Send an unnumbered frame (e.g. `board.comment`) to the board's sockets after commit;
    the socket named by `session` (its socket_id) is left out."""
    send_event(
        [board_group(board_id)],
        {"type": "board.relay", "board": str(board_id), "text": dumps(frame), "session": session},
    )


def _clean_title(title: object) -> str:
    title = str(title or "").strip() if isinstance(title, str | int | float) or title is None else None
    if not title:
        raise InvalidInput("A board needs a title.", fields={"title": ["This field may not be blank."]})
    if len(title) > Board.TITLE_MAX_LENGTH:
        message = f"Board titles are at most {Board.TITLE_MAX_LENGTH} characters."
        raise InvalidInput(message, fields={"title": [message]})
    return storable_text(title, field="title")


def _clean_uuid(value: object, field: str) -> uuid.UUID:
    if value is None or value == "":
        raise InvalidInput(f"{field} is required.", fields={field: ["This field is required."]})
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} must be a UUID.", fields={field: ["Must be a UUID."]}) from None


def _announce(board: Board, frame_type: str) -> None:
    frame = {"type": frame_type, "room": str(board.room_id), "board": board_payload(board)}
    send_event([room_group(board.room_id)], {"type": "room.relay", "room": str(board.room_id), "text": dumps(frame)})


def board_create(*, user: User, room_id: object, title: object) -> Board:
    membership = membership_get(room_id=room_id, user=user)
    refusal = access.board_edit_refusal(kind=membership.room.kind, role=membership.role, user_active=user.is_active)
    if refusal is not None:
        raise refusal
    board = Board.objects.create(room_id=membership.room_id, title=_clean_title(title), created_by=user)
    _announce(board, "board.created")
    return board


def _managed_board(user: User, board_id: object) -> Board:
    found = board_access(user=user, board_id=board_id)
    board = found.board
    refusal = access.board_manage_refusal(
        kind=board.room.kind,
        role=found.role,
        user_active=found.user_active,
        is_creator=board.created_by_id is not None and board.created_by_id == user.pk,
    )
    if refusal is not None:
        raise refusal
    return board


def board_rename(*, user: User, board_id: object, title: object) -> Board:
    return board_staff_rename(board=_managed_board(user, board_id), title=title)


def board_delete(*, user: User, board_id: object) -> None:
    board_staff_delete(board=_managed_board(user, board_id))


def board_staff_rename(*, board: Board, title: object) -> Board:
    """Rename a board whoever may (site staff in Django admin: no membership needed)."""
    board.title = _clean_title(title)
    board.save(update_fields=["title"])
    _announce(board, "board.renamed")
    return board


def board_staff_delete(*, board: Board) -> None:
    """Delete a board with its log, snapshots and comments, whoever may (site staff in Django
    admin); its sockets leave it and the room hears of it."""
    board_pk = board.pk
    with transaction.atomic():
        board.delete()
        board.pk = board_pk
        _announce(board, "board.deleted")
        send_event([board_group(board_pk)], {"type": "board.gone", "board": str(board_pk)})


# Takes the board's next number, and so its row lock until commit, unless the update is a resend.
_NEXT = f"""
UPDATE {Board._meta.db_table} AS b SET last_sequence = b.last_sequence + 1
 WHERE b.id = %(board)s AND NOT EXISTS (
       SELECT 1 FROM {BoardUpdate._meta.db_table} WHERE board_id = %(board)s AND client_update_id = %(key)s)
 RETURNING b.last_sequence, b.size
"""
# Stores the update and the document's new size in one round trip.
_STORE = f"""
WITH sized AS (UPDATE {Board._meta.db_table} SET size = %(size)s WHERE id = %(board)s)
INSERT INTO {BoardUpdate._meta.db_table} (board_id, sequence, update, user_id, client_update_id, created_at)
VALUES (%(board)s, %(sequence)s, %(update)s, %(user)s, %(key)s, clock_timestamp())
RETURNING id, created_at
"""


def board_update_apply(
    *, user: User, board_id: object, update: object, client_update_id: object, session: str | None = None
) -> tuple[BoardUpdate, bool]:
    """Apply, store and announce one Yjs update (base64 text, or bytes). Returns (update, created):
    a resend of a `client_update_id` returns the stored one with created=False and announces
    nothing. The socket named by `session` (the sender's socket_id) does not get the event back."""
    key = _clean_uuid(client_update_id, "client_update_id")
    data = update if isinstance(update, bytes) else crdt.b64decode(update, field="update")
    assert data is not None
    crdt.check_update_size(data)
    found = board_access(user=user, board_id=board_id)
    board = found.board
    refusal = access.board_edit_refusal(kind=board.room.kind, role=found.role, user_active=found.user_active)
    if refusal is not None:
        raise refusal
    crdt.validate_update(data)  # on a scratch document: the live one never sees malformed bytes
    params = {"board": board.pk, "key": key}
    touched = False  # whether the live document was changed (then a failure throws it away)
    with documents.using(board.pk) as live, live.lock:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_NEXT, params)
                row = cursor.fetchone()
                if row is None:  # a resend, or the board was deleted meanwhile
                    return _stored(board, key), False
                sequence, size = row
                touched = True
                doc = documents.catch_up(live, sequence - 1)
                crdt.apply(doc, data)
                live.sequence = sequence
                size += len(data)  # an upper bound: merging never grows the encoding by more
                if size > crdt.MAX_DOCUMENT_BYTES:
                    size = crdt.size(doc)
                    if size > crdt.MAX_DOCUMENT_BYTES:
                        raise crdt.TooLarge(f"A board is at most {crdt.MAX_DOCUMENT_BYTES // 2**20} MB.")
                cursor.execute(_STORE, params | {"size": size, "sequence": sequence, "update": data, "user": user.pk})
                pk, created_at = cursor.fetchone()
                stored = BoardUpdate(
                    id=pk,
                    board=board,
                    sequence=sequence,
                    update=data,
                    user=user,
                    client_update_id=key,
                    created_at=created_at,
                )
                send_event(
                    [board_group(board.pk)],
                    {
                        "type": "board.sequenced",
                        "board": str(board.pk),
                        "seq": sequence,
                        "text": dumps(update_frame(stored)),
                        "session": session,
                    },
                )
        except IntegrityError:
            # The same update sent twice at once (another process): the other one committed first.
            documents.invalidate(live)
            return _stored(board, key), False
        except BaseException:
            if touched:
                documents.invalidate(live)  # it holds an update that is not stored
            raise
    return stored, True


def _stored(board: Board, key: uuid.UUID) -> BoardUpdate:
    """The update stored earlier under this client_update_id (a resend); NotFound if the board is gone."""
    existing = BoardUpdate.objects.filter(board=board, client_update_id=key).select_related("user").first()
    if existing is None:
        raise NotFound()
    return existing
