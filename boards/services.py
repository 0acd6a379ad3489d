"""Every write to boards goes through here: REST views and the WebSocket consumer alike.

Updates are numbered like messages (messaging.services), a batch at a time
(`board_update_apply_many`; one update is a batch of one): access for the whole batch in one
statement; then per board, in one transaction, the board's row is locked (`SELECT ... FOR UPDATE`,
held to commit), resends are found, the new updates take the next numbers (gapless: a rollback
gives them back), are applied in order to this process's authoritative document (boards.documents,
brought up to the stored sequence first), the document's size is checked, and they are inserted
with the board's new number and size in one statement; the events go out after commit
(core.events). The consumer queues its sockets' updates into batches (core.batches,
boards.consumers.update_batches) and runs them through core.events.call_service.
"""

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction

import audit
from accounts.models import User
from boards import crdt, documents
from boards.models import Board, BoardUpdate
from boards.payloads import board_payload, update_frame
from boards.selectors import board_access, forget_renderings, parse_board_id
from core.errors import ApplicationError, Internal, InvalidInput, NotFound, Unavailable, is_outage
from core.events import dumps, room_group, send_event
from core.jsontext import storable_text
from rooms import access
from rooms.models import Membership, Room
from rooms.payloads import user_payload
from rooms.selectors import membership_get
from workspaces import limits
from workspaces.models import WorkspaceMembership

logger = logging.getLogger(__name__)


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
    title = _clean_title(title)
    with transaction.atomic():
        limits.require_board_slot(workspace_id=membership.room.workspace_id)
        board = Board.objects.create(room_id=membership.room_id, title=title, created_by=user)
        _announce(board, "board.created")
        audit.record(
            action="board.create",
            actor=user,
            target=board,
            after=_audited_board(board),
            scope=audit.workspace_scope(membership.room.workspace_id),
        )
    return board


def _audited_board(board: Board) -> dict[str, object]:
    return {"room": str(board.room_id), "title": board.title}


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
    board_staff_delete(board=_managed_board(user, board_id), actor=user)


def board_staff_rename(*, board: Board, title: object) -> Board:
    """Rename a board whoever may (site staff in Django admin: no membership needed)."""
    board.title = _clean_title(title)
    board.save(update_fields=["title"])
    _announce(board, "board.renamed")
    return board


def board_staff_delete(*, board: Board, actor: User | None) -> None:
    """Delete a board with its log, snapshots and comments, whoever may (site staff in Django
    admin); its sockets leave it and the room hears of it."""
    board_pk = board.pk
    workspace_id = Room.objects.values_list("workspace_id", flat=True).get(pk=board.room_id)
    with transaction.atomic():
        board.delete()
        board.pk = board_pk
        _announce(board, "board.deleted")
        send_event([board_group(board_pk)], {"type": "board.gone", "board": str(board_pk)})
        audit.record(
            action="board.delete",
            actor=actor,
            target=("board", board_pk),
            before=_audited_board(board),
            scope=audit.workspace_scope(workspace_id),
        )
    documents.forget(board_pk)  # an idle cached document of it is of no more use
    forget_renderings(board_pk)  # and its renderings


# Awareness (cursor, selection, viewport, name, colour): ephemeral, never stored. The socket's
# board.awareness (boards.consumers) and REST's POST boards/{id}/awareness/ (SSE and long-poll
# clients) both check a state here and build the one event the board's group gets.
AWARENESS_MAX_BYTES = 4096
# A REST client names itself with a key of its own (e.g. a page's random id); its awareness
# `session` is `rest-<user id>-<key>`: unique per page, and no one can speak for another user's
# socket or page.
_SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def awareness_state_clean(state: object) -> dict | None:
    """The awareness state as given (an object, or null: gone), or `invalid` / `too_large`."""
    if state is not None and not isinstance(state, dict):
        raise InvalidInput('"state" must be an object or null.', fields={"state": ["Must be an object or null."]})
    if state is not None and len(dumps(state)) > AWARENESS_MAX_BYTES:
        raise ApplicationError(f"An awareness state is at most {AWARENESS_MAX_BYTES} bytes.", code="too_large")
    return state


def awareness_event(*, board_id: str, user: Mapping[str, object], session: str, state: dict | None) -> dict:
    """The board group's `board.awareness` event: its frame's text, and its entry in a
    board.awareness.batch (boards.consumers.LocalBoard)."""
    entry = {"user": user, "session": session, "state": state}
    return {
        "type": "board.awareness",
        "board": board_id,
        "user": user,
        "state": state,
        "session": session,
        "text": dumps({"type": "board.awareness", "board": board_id, **entry}),
        "entry": dumps(entry),
    }


def rest_awareness_session(*, user: User, key: object) -> str:
    """The awareness `session` of a REST client (docs/protocol.md, "Boards in a stream")."""
    if not isinstance(key, str) or not _SESSION_KEY.fullmatch(key):
        message = "A session is 1-64 letters, digits, '-' or '_'."
        raise InvalidInput(message, fields={"session": [message]})
    return f"rest-{user.pk}-{key}"


def board_awareness_publish(*, user: User, board_id: object, session_key: object, state: object) -> str:
    """Awareness over REST: whoever may open the board (viewers too: their cursors are shown, as
    on the socket) tells the board's sockets and streams where they are. Nothing is stored.
    Returns the awareness `session` the others see. The rate limit (20 a second per client, as
    the socket's) is the view's (boards.api.AwarenessThrottle)."""
    session = rest_awareness_session(user=user, key=session_key)
    clean = awareness_state_clean(state)
    found = board_access(user=user, board_id=board_id)  # not_found / not_member / account_inactive
    event = awareness_event(board_id=str(found.board.pk), user=user_payload(user), session=session, state=clean)
    send_event([board_group(found.board.pk)], event)
    return session


# Who may edit which board, for a whole batch in one statement: the board's room kind, the user's
# role there and whether the account is active (rooms.access.board_edit_refusal decides).
_ACCESS = f"""
SELECT v.idx, b.id IS NOT NULL AS found, r.kind, m.role, u.is_active, w.role
  FROM unnest(%(idx)s::int[], %(users)s::bigint[], %(boards)s::uuid[]) AS v(idx, user_id, board_id)
  LEFT JOIN {Board._meta.db_table} b ON b.id = v.board_id
  LEFT JOIN {Room._meta.db_table} r ON r.id = b.room_id
  LEFT JOIN {Membership._meta.db_table} m ON m.room_id = b.room_id AND m.user_id = v.user_id
  LEFT JOIN {User._meta.db_table} u ON u.id = v.user_id
  LEFT JOIN {WorkspaceMembership._meta.db_table} w ON w.workspace_id = r.workspace_id AND w.user_id = v.user_id
"""
# The board's row lock (held to commit) and its numbers so far.
_LOCK = f"SELECT last_sequence, size FROM {Board._meta.db_table} WHERE id = %(board)s FOR UPDATE"
# Which of the batch's client_update_ids the board has stored already (resends).
_KNOWN = f"""
SELECT u.id, u.sequence, u.update, u.user_id, u.client_update_id, u.created_at
  FROM {BoardUpdate._meta.db_table} u
 WHERE u.board_id = %(board)s AND u.client_update_id = ANY(%(keys)s::uuid[])
"""
# Stores the batch's updates, the board's last number and the document's new size in one round trip.
_STORE = f"""
WITH sized AS (UPDATE {Board._meta.db_table} SET last_sequence = %(last)s, size = %(size)s WHERE id = %(board)s)
INSERT INTO {BoardUpdate._meta.db_table} (board_id, sequence, update, user_id, client_update_id, created_at)
SELECT %(board)s, s.sequence, s.update, s.user_id, s.key, clock_timestamp()
  FROM unnest(%(sequences)s::bigint[], %(updates)s::bytea[], %(users)s::bigint[], %(keys)s::uuid[])
       AS s(sequence, update, user_id, key)
 ORDER BY s.sequence
RETURNING id, sequence, created_at
"""

UpdateResult = tuple[BoardUpdate, bool] | ApplicationError


@dataclass
class _Update:
    index: int
    user: User
    board_id: uuid.UUID
    key: uuid.UUID
    data: bytes
    session: str | None


def board_update_apply(
    *, user: User, board_id: object, update: object, client_update_id: object, session: str | None = None
) -> tuple[BoardUpdate, bool]:
    """Apply, store and announce one Yjs update (base64 text, or bytes). Returns (update, created):
    a resend of a `client_update_id` returns the stored one with created=False and announces
    nothing. The socket named by `session` (the sender's socket_id) does not get the event back."""
    request = {"user": user, "board_id": board_id, "update": update, "client_update_id": client_update_id}
    (result,) = board_update_apply_many(requests=[request | {"session": session}])
    if isinstance(result, ApplicationError):
        raise result
    return result


def board_update_apply_many(*, requests: list[dict]) -> list[UpdateResult]:
    """`board_update_apply` for a batch (the sockets' updates queued in this process,
    boards.consumers.update_batches): one result per request, in order, either (update, created)
    or the ApplicationError that refused it. Access is checked for the whole batch in one
    statement; each board's updates are numbered, applied to the live document in order, stored
    and committed in one transaction (one row lock, one insert). A transaction that fails keeps
    nothing; then each of its updates goes again alone, so that one bad update (e.g. one that
    makes the document too large) fails only itself. A database error that is not about one
    update (an outage) is raised: the caller answers every request of the batch."""
    results: list[Any] = [None] * len(requests)
    checked: list[tuple[_Update, Any]] = []
    for index, request in enumerate(requests):
        try:
            key = _clean_uuid(request.get("client_update_id"), "client_update_id")
            update = request.get("update")
            data = update if isinstance(update, bytes) else crdt.b64decode(update, field="update")
            assert data is not None
            crdt.check_update_size(data)
            board_id = parse_board_id(request.get("board_id"))
        except ApplicationError as error:
            results[index] = error
            continue
        checked.append((_Update(index, request["user"], board_id, key, data, request.get("session")), None))
    if not checked:
        return results
    with connection.cursor() as cursor:
        cursor.execute(
            _ACCESS,
            {
                "idx": [u.index for u, _ in checked],
                "users": [u.user.pk for u, _ in checked],
                "boards": [u.board_id for u, _ in checked],
            },
        )
        rights = {row[0]: row[1:] for row in cursor.fetchall()}
    boards: dict[uuid.UUID, list[_Update]] = {}
    for item, _ in checked:
        found, kind, role, active, workspace_role = rights[item.index]
        kind = access.scoped_kind(kind=kind, role=role, workspace_role=workspace_role)
        refusal: ApplicationError | None = NotFound() if not found else None
        refusal = refusal or access.board_see_refusal(kind=kind, role=role, user_active=bool(active))
        refusal = refusal or access.board_edit_refusal(kind=kind, role=role, user_active=bool(active))
        if refusal is None:
            try:
                crdt.validate_update(item.data)  # on a scratch document: the live one never sees it
            except ApplicationError as error:
                refusal = error
        if refusal is not None:
            results[item.index] = refusal
        else:
            boards.setdefault(item.board_id, []).append(item)
    for board_id, items in boards.items():
        try:
            _apply_batch(board_id, items, results)
            continue
        except (ApplicationError, DatabaseError) as error:
            if is_outage(error) or (len(items) == 1 and not isinstance(error, IntegrityError)):
                for item in items:
                    results[item.index] = _as_result(error)
                continue
            if len(items) > 1:
                logger.info("a batch of %s updates of board %s failed (%s); each alone", len(items), board_id, error)
        for item in items:
            # An IntegrityError is the same key claimed concurrently (another process): alone, the
            # next try finds it stored and replays it.
            for attempt in range(3):
                try:
                    _apply_batch(board_id, [item], results)
                    break
                except (ApplicationError, DatabaseError) as error:
                    if not isinstance(error, IntegrityError) or attempt == 2:
                        results[item.index] = _as_result(error)
                        break
    return results


def _as_result(error: Exception) -> ApplicationError:
    if isinstance(error, ApplicationError):
        return error
    if is_outage(error):
        logger.warning("board updates failed: the database is unavailable (%s)", error)
        return Unavailable()
    logger.error("a board update failed: %s", error)
    return Internal()


def _apply_batch(board_id: uuid.UUID, items: list[_Update], results: list) -> None:
    """Number, apply, store and announce one board's updates in one transaction; fill `results`.
    Raises (and keeps nothing, the live document thrown away) if any of them fails."""
    keys = [item.key for item in items]
    nested = connection.in_atomic_block  # an outer transaction may still roll our write back
    touched = False  # whether the live document was changed (then a failure throws it away)
    with documents.using(board_id) as live, live.lock:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_LOCK, {"board": board_id})
                row = cursor.fetchone()
                if row is None:  # deleted meanwhile
                    for item in items:
                        results[item.index] = NotFound()
                    return
                last, size = row
                cursor.execute(_KNOWN, {"board": board_id, "keys": keys})
                known: dict[uuid.UUID, BoardUpdate] = {
                    r[4]: BoardUpdate(
                        id=r[0],
                        board_id=board_id,
                        sequence=r[1],
                        update=r[2],
                        user_id=r[3],
                        client_update_id=r[4],
                        created_at=r[5],
                    )
                    for r in cursor.fetchall()
                }
                earlier = set(known)  # stored before this batch (the rest: repeated within it)
                fresh: list[tuple[_Update, BoardUpdate]] = []
                replays: list[_Update] = []
                for item in items:
                    if item.key in known:
                        replays.append(item)
                        continue
                    last += 1
                    stored = BoardUpdate(
                        board_id=board_id, sequence=last, update=item.data, user=item.user, client_update_id=item.key
                    )
                    known[item.key] = stored
                    fresh.append((item, stored))
                if fresh:
                    touched = True
                    doc = documents.catch_up(live, fresh[0][1].sequence - 1)
                    for item, stored in fresh:
                        crdt.apply(doc, item.data)
                        live.sequence = stored.sequence
                        size += len(item.data)  # an upper bound: merging never grows the encoding by more
                        if size > crdt.MAX_DOCUMENT_BYTES:
                            size = crdt.size(doc)
                            if size > crdt.MAX_DOCUMENT_BYTES:
                                raise crdt.TooLarge(f"A board is at most {crdt.MAX_DOCUMENT_BYTES // 2**20} MB.")
                    cursor.execute(
                        _STORE,
                        {
                            "board": board_id,
                            "last": last,
                            "size": size,
                            "sequences": [stored.sequence for _, stored in fresh],
                            "updates": [item.data for item, _ in fresh],
                            "users": [item.user.pk for item, _ in fresh],
                            "keys": [item.key for item, _ in fresh],
                        },
                    )
                    for (item, stored), (pk, sequence, created_at) in zip(fresh, cursor.fetchall(), strict=True):
                        assert sequence == stored.sequence
                        stored.id, stored.created_at = pk, created_at
                        send_event(
                            [board_group(board_id)],
                            {
                                "type": "board.sequenced",
                                "board": str(board_id),
                                "seq": sequence,
                                "text": dumps(update_frame(stored)),
                                "session": item.session,
                            },
                        )
                        results[item.index] = (stored, True)
                if replays:
                    users = User.objects.in_bulk({known[i.key].user_id for i in replays} - {None})
                    for item in replays:
                        stored = known[item.key]
                        if item.key in earlier and stored.user_id in users:
                            stored.user = users[stored.user_id]
                        results[item.index] = (stored, False)
        except BaseException:
            if touched:
                documents.invalidate(live)  # it holds updates that are not stored
            raise
        if touched and nested:
            documents.invalidate(live)  # the outer transaction may roll them back: reload next time
