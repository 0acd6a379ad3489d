"""Every write to messages goes through here: REST views and the WebSocket consumer alike."""

import datetime as dt
import json
import logging
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Jsonb

import audit
from accounts.models import User
from attachments import binding as attachment_binding
from core import asyncdb, sql
from core.errors import (
    ApplicationError,
    Conflict,
    Forbidden,
    Internal,
    InvalidInput,
    NotFound,
    Unavailable,
    is_outage,
)
from core.events import dumps, publishing, room_group, send_event, send_events, user_group
from core.jsontext import storable_text
from core.threads import database_sync_to_async
from e2ee import envelope
from messaging import mentions, partitions
from messaging.archive import hot_cutoff
from messaging.emoji import clean_emoji
from messaging.erasure import erase_in_message
from messaging.models import Message, MessageRevision, SentMessageKey
from messaging.payloads import change_frame
from messaging.selectors import Archived, message_in_room, missing_message
from notifications import services as notifications
from notifications.models import PendingNotification
from rooms import access
from rooms.models import Membership, Room
from rooms.payloads import user_payload, user_ref
from rooms.selectors import membership_get, parse_room_id
from workspaces.models import WorkspaceMembership


def _clean_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("A message needs some text.", fields={"content": ["This field may not be blank."]})
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        raise ApplicationError(
            f"Messages are at most {settings.MESSAGE_MAX_LENGTH} characters.", code="too_large", status=400
        )
    if envelope.is_marked(content):  # stored texts starting so are envelopes (e2ee/envelope.py)
        raise InvalidInput(
            "Text cannot start with U+0001 followed by 'e2ee:' (it marks encrypted messages).",
            code="reserved_text",
            fields={"content": ["Cannot start with U+0001 'e2ee:'."]},
        )
    return storable_text(content, field="content")


def _clean_sent(content: object) -> tuple[str, bool]:
    """A sent message's stored text, and whether it is sealed: an end-to-end encryption envelope
    (an object as `content`, checked by e2ee.envelope) rather than text. Which of the two a room
    takes is `_sealing_refusal`'s rule."""
    if not isinstance(content, dict):
        return _clean_content(content), False
    try:
        return envelope.encode(envelope.clean(content)), True
    except envelope.EnvelopeError as error:
        raise ApplicationError(
            error.message, code=error.code, status=400, fields={"content": [error.message]}
        ) from None


def _sealing_refusal(*, encrypted: bool, sealed: bool) -> ApplicationError | None:
    """An end-to-end encrypted room takes only envelopes, any other room only text (docs/e2ee.md)."""
    if encrypted and not sealed:
        return Conflict(
            "This conversation is end-to-end encrypted: the server takes only encrypted messages.",
            code="encrypted_room",
        )
    if sealed and not encrypted:
        return Conflict("This conversation is not end-to-end encrypted.", code="not_encrypted")
    return None


def _clean_client_msg_id(client_msg_id: object) -> uuid.UUID:
    if client_msg_id is None or client_msg_id == "":
        raise InvalidInput("client_msg_id is required.", fields={"client_msg_id": ["This field is required."]})
    try:
        return uuid.UUID(str(client_msg_id))
    except ValueError:
        raise InvalidInput("client_msg_id must be a UUID.", fields={"client_msg_id": ["Must be a UUID."]}) from None


@dataclass
class _Send:
    index: int
    user: User
    room_id: uuid.UUID
    content: str
    key: uuid.UUID
    message_id: uuid.UUID
    # @mentions (messaging.mentions): the names, resolved to members by _SEND, and `@room`.
    mention_names: list[str]
    mention_room: bool
    sealed: bool  # an end-to-end encryption envelope (_clean_sent)
    # A reply (`thread_reply`): the message it answers (the thread's root is found by _SEND).
    reply_to: uuid.UUID | None = None


_KEY_CONSTRAINT = "sentmessagekey_sender_client_msg_id"
SendResult = tuple[Message, bool] | ApplicationError
ReactionResult = Message | ApplicationError
# What one run of _SEND gave: its rows, or the database error that failed it (and all of it).
Outcome = list[dict[str, Any]] | DatabaseError | psycopg.Error

logger = logging.getLogger(__name__)


def _key_taken(error: Exception) -> bool:
    """A concurrent claim of a batch's key fails the whole statement on the unique constraint
    (after waiting for the other transaction to commit)."""
    return isinstance(error, psycopg.errors.UniqueViolation) and error.diag.constraint_name == _KEY_CONSTRAINT


def message_send(
    *,
    user: User,
    room_id: object,
    content: object,
    client_msg_id: object,
    reply_to: object = None,
    attachments: object = None,
) -> tuple[Message, bool]:
    """Persist a message and announce it to the room after commit.

    Returns (message, created). Resending the same client_msg_id returns the original message
    with created=False and announces nothing. With `reply_to`, a reply in that message's thread
    (`thread_reply`); with `attachments` (ids of completed uploads, docs/attachments.md), a message
    carrying them (`_send_one`, through the ORM); the others, replies included, take the batched
    statement (_SEND), which never looks at attachments.
    """
    if attachments not in (None, []):
        return _send_one(
            user=user,
            room_id=room_id,
            content=content,
            client_msg_id=client_msg_id,
            reply_to=reply_to,
            attachments=attachments,
        )
    request = {"user": user, "room_id": room_id, "content": content, "client_msg_id": client_msg_id}
    result = message_send_many(requests=[request | ({"reply_to": reply_to} if reply_to is not None else {})])[0]
    if isinstance(result, ApplicationError):
        raise result
    return result


def message_send_many(*, requests: list[dict]) -> list[SendResult]:
    """Send several messages (each `{user, room_id, content, client_msg_id}`, and `reply_to` for a
    reply), each with its own result: (message, created), or the ApplicationError it would have
    raised alone.

    The rules live in `_send_batches`; this driver runs its statements through Django's
    connection (REST, pages, tasks). `amessage_send_many` is the event loop's driver.
    """
    results: list = [None] * len(requests)
    notify: list[Message] = []
    batches = _send_batches(requests, results, notify)
    sends = next(batches, None)
    while sends is not None:
        outcome: Outcome
        try:
            partitions.ensure_for(timezone.now())
            with transaction.atomic():
                outcome = sql.fetchall(_SEND, _send_params(sends))
        except (DatabaseError, psycopg.Error) as error:
            outcome = error
        sends = _advance(batches, outcome)
    if notify:  # committed: the inbox items of the mentioned and of direct rooms' other member
        notifications.notify_committed(messages=notify)
    _explain_missing(results)
    return results


async def amessage_send_many(*, requests: list[dict]) -> list[SendResult]:
    """`message_send_many` for the event loop: the same statements on this process's own asyncio
    connection (core.asyncdb), so a busy server's sends never queue behind the database thread
    (or fight it for the GIL); the events go out right after each commit."""
    sent, _ = await awrite_many(sends=requests, reactions=[])
    return sent


async def awrite_many(*, sends: list[dict], reactions: list[dict]) -> tuple[list[SendResult], list[ReactionResult]]:
    """A batch of the sockets' writes (messaging.consumers.write_batches): sends as
    `amessage_send_many` takes them and reactions as `areaction_set_many` does, each with its own
    result. Sends alone are one statement (_SEND) in autocommit. Reactions that come with sends
    ride in the same transaction, in one round trip: the rooms' locks in id order, _SEND, then
    each reaction's statement (_REACT), so that the process's writers never wait for each other's
    room locks and pay one commit between them. If that transaction fails, the sends go on as
    `_send_batches` decides and the reactions as `areaction_set_many` does, on their own."""
    results: list = [None] * len(sends)
    reacted: list[Any] = [None] * len(reactions)
    riding = _reaction_batch(reactions, reacted)
    rows: list[list[dict[str, Any]]] | None = None  # the riding reactions' rows, once committed
    failure: DatabaseError | psycopg.Error | None = None  # why they did not commit with the sends
    notify: list[Message] = []
    batches = _send_batches(sends, results, notify)
    round_ = next(batches, None)
    while round_ is not None:
        async with publishing():
            outcome: Outcome
            try:
                if partitions.missing_for(timezone.now()):  # once a day: a thread hop to create it
                    await database_sync_to_async(partitions.ensure_for)(timezone.now())
                together: list[list[dict[str, Any]]] | None = None
                if riding and rows is None and failure is None:
                    try:
                        together = (await asyncdb.transaction(_send_and_react(round_, riding)))[1:]
                    except (DatabaseError, psycopg.Error) as error:
                        if is_outage(error):
                            raise
                        # Not the sends' failure as such: they go again by themselves, at once.
                        logger.info("a batch of sends and reactions failed (%s); each kind goes alone", error)
                        failure = error
                if together is not None:
                    outcome, *rows = together
                else:
                    # _SEND is one statement: in autocommit it is its own transaction, committed
                    # when it returns (one round trip, no BEGIN and COMMIT of their own).
                    outcome = await asyncdb.fetchall(_SEND, _send_params(round_))
            except (DatabaseError, psycopg.Error) as error:
                outcome = error
                failure = failure or error
            round_ = _advance(batches, outcome)
    if notify:  # after the acks' commit, off their path: a big room's items wait for no ack
        notifications.notify_sent_soon(messages=notify)
    if any(isinstance(result, _MissingParent) for result in results):  # rare: a thread hop to the archive
        await database_sync_to_async(_explain_missing)(results)
    if rows is not None:
        await _reaction_results(list(zip(riding, rows, strict=True)), reacted)
    elif failure is not None and is_outage(failure):
        reacted = [result or Unavailable() for result in reacted]
    elif riding:
        await _areact_batch(riding, reacted)
    return results, reacted


def _send_and_react(sends: list[_Send], reactions: list[tuple[int, "_Reaction"]]) -> list[tuple[Any, Any]]:
    """awrite_many's transaction: every room's lock first, in id order (the sends' own lock in
    _SEND then takes nothing new, so two such transactions cannot deadlock), then the sends, then
    the reactions, each statement seeing the ones before it."""
    pairs = sorted({(str(s.room_id), s.user.pk) for s in sends} | {(str(r.room_id), r.user.pk) for _, r in reactions})
    batch, hot_from = _send_params(sends)
    return [
        _lock_step(pairs),
        (_SEND_PREPARED, {"sends": batch, "hot_from": hot_from}),
        *[(_REACT_PREPARED, reaction.params()) for _, reaction in reactions],
    ]


def _advance(batches: Generator[list[_Send], Outcome, None], outcome: Outcome) -> list[_Send] | None:
    """Hand a statement's outcome to `_send_batches`; the sends of its next statement, or None."""
    try:
        return batches.send(outcome)
    except StopIteration:
        return None


def _send_batches(requests: list[dict], results: list, notify: list[Message]) -> Generator[list[_Send], Outcome, None]:
    """The rules of a batch of sends, whatever runs the SQL: yields the sends of each statement
    to run (_SEND), is sent back its outcome (rows, or the error that failed the statement whole),
    fills `results` and announces each new message.

    A failed statement kept nothing. Then each send goes again alone, so that one bad send (or a
    key claimed concurrently, by the same client retrying elsewhere: alone, it finds the committed
    key and replays) fails only itself; a database that cannot be reached fails them all with
    `unavailable` at once."""
    for sends in _prepare(requests, results):
        outcome = yield sends
        if isinstance(outcome, list):
            _settle(outcome, sends, results, notify)
            continue
        if is_outage(outcome):
            logger.warning("sends failed: the database is unavailable (%s)", outcome)
            for send in sends:
                results[send.index] = Unavailable()
            continue
        if len(sends) > 1:
            logger.info("a batch of %s sends failed (%s); sending each alone", len(sends), outcome)
        for send in sends:
            # A second concurrent claim of one key can only be a second retry: the third try
            # finds one of them committed.
            for attempt in range(3):
                if attempt or len(sends) > 1:
                    outcome = yield [send]
                if isinstance(outcome, list):
                    _settle(outcome, [send], results, notify)
                    break
                if not _key_taken(outcome):
                    results[send.index] = Unavailable() if is_outage(outcome) else Internal()
                    if not is_outage(outcome):
                        logger.error("a send failed: %s", outcome)
                    break
            else:
                results[send.index] = Internal()


def _prepare(requests: list[dict], results: list) -> list[list[_Send]]:
    """Validate each request (errors go straight to `results`) and split the rest into rounds:
    a client_msg_id repeated within the batch waits for the next round, where it replays."""
    rounds: list[list[_Send]] = []
    seen: list[set] = []
    for index, request in enumerate(requests):
        try:
            content, sealed = _clean_sent(request.get("content"))
            key = _clean_client_msg_id(request.get("client_msg_id"))
            room_id = parse_room_id(request.get("room_id"))
            reply_to = _clean_reply_to(request["reply_to"]) if request.get("reply_to") is not None else None
        except ApplicationError as error:
            results[index] = error
            continue
        user = request["user"]
        number = next((n for n, keys in enumerate(seen) if (user.pk, key) not in keys), len(seen))
        if number == len(seen):
            rounds.append([])
            seen.append(set())
        names, room = ([], False) if sealed else mentions.names_in(content)  # only when the text has an '@'
        rounds[number].append(_Send(index, user, room_id, content, key, uuid.uuid4(), names, room, sealed, reply_to))
        seen[number].add((user.pk, key))
    return rounds


_SEND = f"""
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb)
        AS v(idx int, user_id bigint, room_id uuid, client_msg_id uuid, content text, message_id uuid,
             mention_names text[], mention_room bool, sealed bool, reply_to uuid)
), checked AS (
    SELECT v.*, r.kind, r.encrypted_since IS NOT NULL AS encrypted, m.role, w.role AS workspace_role,
           u.is_active AS user_active, k.room_id AS key_room,
           o.id AS o_id, o.sequence AS o_sequence, o.content AS o_content, o.created_at AS o_created_at,
           o.changed_sequence AS o_changed_sequence, o.edited_at AS o_edited_at, o.deleted_at AS o_deleted_at,
           o.reply_to AS o_reply_to, o.reply_count AS o_reply_count, o.last_reply_at AS o_last_reply_at,
           o.reactions AS o_reactions, o.change_kind AS o_change_kind, o.mentions AS o_mentions,
           -- messaging.mentions: the named members, and @room from those who may (rooms.access).
           CASE WHEN mn.users IS NOT NULL OR (v.mention_room AND m.role IN ({access.room_mention_roles_sql()}))
                THEN jsonb_build_object(
                    'users', coalesce(mn.users, '[]'::jsonb),
                    'room', coalesce(v.mention_room AND m.role IN ({access.room_mention_roles_sql()}), false))
           END AS mentions,
           -- A reply's thread root: the message it answers, or that one's root (threads are one deep).
           p.id AS parent_id, p.reply_to AS parent_root,
           coalesce(t.id, p.id) AS root_id, coalesce(t.created_at, p.created_at) AS root_created_at,
           CASE WHEN p.reply_to IS NULL THEN p.deleted_at ELSE t.deleted_at END AS root_deleted_at
      FROM v
      -- One index lookup per send. As plain joins, the planner (which guesses 100 rows for
      -- jsonb_to_recordset) preferred hashing whole tables: a scan of every key ever sent, per
      -- batch. LIMIT 1 (each is unique anyway) keeps the lookups per row.
      LEFT JOIN LATERAL (
          SELECT kind, workspace_id, encrypted_since FROM rooms_room WHERE id = v.room_id LIMIT 1
      ) r ON true
      LEFT JOIN LATERAL (
          SELECT role FROM rooms_membership WHERE room_id = v.room_id AND user_id = v.user_id LIMIT 1
      ) m ON true
      -- A non-member's role in the room's workspace, only to word the refusal (rooms.access.scoped_kind:
      -- another workspace's room is not_found); members (the hot path) skip the lookup.
      LEFT JOIN LATERAL (
          SELECT role FROM {WorkspaceMembership._meta.db_table}
           WHERE m.role IS NULL AND workspace_id = r.workspace_id AND user_id = v.user_id LIMIT 1
      ) w ON true
      LEFT JOIN LATERAL (SELECT is_active FROM {User._meta.db_table} WHERE id = v.user_id LIMIT 1) u ON true
      LEFT JOIN LATERAL (
          SELECT room_id, message_id, message_created_at FROM {SentMessageKey._meta.db_table}
           WHERE sender_id = v.user_id AND client_msg_id = v.client_msg_id LIMIT 1
      ) k ON true
      LEFT JOIN {Message._meta.db_table} o ON o.id = k.message_id AND o.created_at = k.message_created_at
      -- Only sends whose text names someone look anyone up (through the LOWER(username) index).
      LEFT JOIN LATERAL (
          SELECT jsonb_agg(jsonb_build_object('id', mu.id, 'username', mu.username) ORDER BY mu.id) AS users
            FROM {User._meta.db_table} mu
            JOIN rooms_membership mm ON mm.user_id = mu.id AND mm.room_id = v.room_id
           WHERE v.mention_names IS NOT NULL AND lower(mu.username) = ANY(v.mention_names)
      ) mn ON true
      -- Only replies look up their parent, and a reply's parent its root.
      LEFT JOIN LATERAL (
          SELECT id, reply_to, created_at, deleted_at FROM {Message._meta.db_table}
           WHERE v.reply_to IS NOT NULL AND room_id = v.room_id AND id = v.reply_to LIMIT 1
      ) p ON true
      LEFT JOIN LATERAL (
          SELECT id, created_at, deleted_at FROM {Message._meta.db_table}
           WHERE p.reply_to IS NOT NULL AND room_id = v.room_id AND id = p.reply_to LIMIT 1
      ) t ON true
), accepted AS (
    -- Who may send is rooms.access.send_refusal, as a table of its answers (replying is sending:
    -- reply_refusal allows the same). A reply needs a root that is not deleted, in a hot day.
    SELECT checked.*
      FROM checked
      JOIN {access.send_rules_sql()}
        ON send_rules.kind = checked.kind AND send_rules.role IS NOT DISTINCT FROM checked.role
       AND send_rules.user_active = checked.user_active
     WHERE send_rules.allowed AND key_room IS NULL
       AND (reply_to IS NULL OR (root_id IS NOT NULL AND root_deleted_at IS NULL AND root_created_at >= %s))
), locked AS MATERIALIZED (
    -- In id order, so that two batches sharing rooms cannot deadlock. The row lock serialises a
    -- room's writers until commit: numbers are gapless (a rollback returns them) and commit in order.
    -- The locked row is the room as it is now, whatever this statement's snapshot saw.
    SELECT id, encrypted_since IS NOT NULL AS encrypted
      FROM rooms_room WHERE id IN (SELECT room_id FROM accepted) ORDER BY id FOR NO KEY UPDATE
), admitted AS (
    -- _sealing_refusal: envelopes in end-to-end encrypted rooms, text elsewhere, as the room is
    -- once locked (a room switched to encryption while this statement waited takes no more text).
    SELECT a.*, row_number() OVER (PARTITION BY a.room_id ORDER BY a.idx) AS ord
      FROM accepted AS a JOIN locked ON locked.id = a.room_id
     WHERE locked.encrypted = coalesce(a.sealed, false)
), roots AS (
    -- Each thread that takes replies here changes once: its count and last reply time, numbered
    -- after the room's new messages.
    SELECT room_id, root_id, root_created_at, count(*) AS n,
           row_number() OVER (PARTITION BY room_id ORDER BY root_id) AS ord
      FROM admitted WHERE root_id IS NOT NULL GROUP BY room_id, root_id, root_created_at
), numbered AS (
    UPDATE rooms_room AS r SET last_sequence = r.last_sequence + c.n + coalesce(t.n, 0)
      FROM (SELECT room_id, count(*) AS n FROM admitted GROUP BY room_id) AS c
      LEFT JOIN (SELECT room_id, count(*) AS n FROM roots GROUP BY room_id) AS t ON t.room_id = c.room_id
     WHERE r.id = c.room_id
    -- Stamped after the lock: created_at never goes backwards along a room's sequence.
 RETURNING r.id, r.last_sequence - c.n - coalesce(t.n, 0) AS base, c.n AS sent, clock_timestamp() AS stamp
), inserted AS (
    INSERT INTO {Message._meta.db_table}
        (id, room_id, sequence, sender_id, content, client_msg_id, created_at, changed_sequence, mentions, reply_to)
    SELECT a.message_id, a.room_id, n.base + a.ord, a.user_id, a.content, a.client_msg_id, n.stamp, n.base + a.ord,
           a.mentions, a.root_id
      FROM admitted AS a JOIN numbered AS n ON n.id = a.room_id
 RETURNING id, sequence, created_at
), threaded AS (
    -- The roots' rows as they are when the room's lock is ours (PostgreSQL applies the SET to the
    -- newest version of a row changed meanwhile), with their senders: announced as changed.
    UPDATE {Message._meta.db_table} AS m
       SET reply_count = m.reply_count + t.n, last_reply_at = n.stamp, change_kind = 'thread',
           changed_sequence = n.base + n.sent + t.ord
      FROM roots AS t JOIN numbered AS n ON n.id = t.room_id
     WHERE m.room_id = t.room_id AND m.id = t.root_id AND m.created_at = t.root_created_at
 RETURNING m.id, to_jsonb(m) AS root,
           (SELECT to_jsonb(s) - 'password' FROM {User._meta.db_table} s WHERE s.id = m.sender_id) AS root_sender
), claimed AS (
    -- A key claimed by a concurrent send fails the statement here (_key_taken): all or nothing.
    INSERT INTO {SentMessageKey._meta.db_table} (sender_id, client_msg_id, room_id, message_id, message_created_at)
    SELECT a.user_id, a.client_msg_id, a.room_id, i.id, i.created_at
      FROM inserted AS i JOIN admitted AS a ON a.message_id = i.id
), owed AS (
    -- The notifications a message with mentions or in a direct room owes, committed with it
    -- (notifications.models.PendingNotification); other messages write nothing here.
    INSERT INTO {PendingNotification._meta.db_table} (message_id, message_created_at, room_id, number)
    SELECT i.id, i.created_at, a.room_id, i.sequence
      FROM inserted AS i JOIN admitted AS a ON a.message_id = i.id
     WHERE a.mentions IS NOT NULL OR a.kind = '{Room.Kind.DIRECT}' OR a.reply_to IS NOT NULL
)
SELECT c.idx, c.kind, coalesce(lk.encrypted, c.encrypted) AS encrypted, c.role, c.workspace_role, c.user_active,
       c.key_room, c.o_id, c.o_sequence, c.o_content, c.o_created_at, c.o_changed_sequence, c.o_edited_at,
       c.o_deleted_at, c.o_reply_to, c.o_reply_count, c.o_last_reply_at, c.o_reactions, c.o_change_kind,
       c.o_mentions, c.mentions, i.sequence, i.created_at, c.reply_to, c.parent_id, c.parent_root, c.root_id,
       c.root_created_at, c.root_deleted_at, th.root, th.root_sender
  FROM checked AS c
  LEFT JOIN inserted AS i ON i.id = c.message_id
  LEFT JOIN threaded AS th ON th.id = c.root_id AND i.id IS NOT NULL
  LEFT JOIN locked AS lk ON lk.id = c.room_id
"""

# awrite_many's transaction runs _SEND by name (core.asyncdb.Prepared), planned once per connection.
_SEND_PREPARED = asyncdb.Prepared(
    "parley_send",
    _SEND.replace("%s::jsonb", "%(sends)s::jsonb", 1).replace(">= %s))", ">= %(hot_from)s))", 1),
    ("sends", "hot_from"),
)


def _send_params(sends: list[_Send]) -> list:
    # One JSON document rather than six arrays: psycopg dumps arrays element by element in Python.
    rows = [
        {
            "idx": s.index,
            "user_id": s.user.pk,
            "room_id": str(s.room_id),
            "client_msg_id": str(s.key),
            "content": s.content,
            "message_id": str(s.message_id),
            # Only for texts that name someone: the hot path's rows stay as they were.
            **({"mention_names": s.mention_names} if s.mention_names else {}),
            **({"mention_room": True} if s.mention_room else {}),
            **({"sealed": True} if s.sealed else {}),
            **({"reply_to": str(s.reply_to)} if s.reply_to else {}),
        }
        for s in sends
    ]
    hot_from = dt.datetime.combine(hot_cutoff(), dt.time(), tzinfo=dt.UTC)  # replies' roots: not frozen
    return [json.dumps(rows, ensure_ascii=False), hot_from]


def _settle(rows: list[dict[str, Any]], sends: list[_Send], results: list, notify: list[Message]) -> None:
    """Turn _SEND's rows into each request's result and announce the changes: the new messages,
    and the roots of the threads they reply in. Those that notify someone (a mention, a direct
    room, a reply) go to `notify`."""
    by_index = {send.index: send for send in sends}
    changes: dict[uuid.UUID, Message] = {}
    for row in rows:
        send = by_index[row["idx"]]
        kind = access.scoped_kind(kind=row["kind"], role=row["role"], workspace_role=row["workspace_role"])
        refused = access.reply_refusal if send.reply_to is not None else access.send_refusal
        refusal = refused(kind=kind, role=row["role"], user_active=bool(row["user_active"]))
        if refusal is not None:
            results[send.index] = refusal
        elif row["key_room"] is not None and row["key_room"] != send.room_id:
            results[send.index] = Conflict(
                "This client_msg_id was already used in another room.", code="client_msg_id_reused"
            )
        elif row["key_room"] is not None and row["o_id"] is None:
            results[send.index] = Archived()  # the original is in an archived day
        elif row["key_room"] is not None:
            original = Message(
                id=row["o_id"],
                room_id=send.room_id,
                sequence=row["o_sequence"],
                sender=send.user,
                content=row["o_content"],
                client_msg_id=send.key,
                created_at=row["o_created_at"],
                changed_sequence=row["o_changed_sequence"],
                edited_at=row["o_edited_at"],
                deleted_at=row["o_deleted_at"],
                reply_to=row["o_reply_to"],
                reply_count=row["o_reply_count"],
                last_reply_at=row["o_last_reply_at"],
                # jsonb: text through Django's connection, decoded through core.asyncdb's.
                reactions=json.loads(row["o_reactions"]) if isinstance(row["o_reactions"], str) else row["o_reactions"],
                change_kind=row["o_change_kind"],
                mentions=_jsonb(row["o_mentions"]),
            )
            results[send.index] = (original, False)
        elif (refusal := _sealing_refusal(encrypted=bool(row["encrypted"]), sealed=send.sealed)) is not None:
            results[send.index] = refusal
        elif row["sequence"] is None:  # a reply that _SEND's rules for roots kept out
            results[send.index] = _reply_refusal(row, send)
        else:
            message = Message(
                id=send.message_id,
                room_id=send.room_id,
                sequence=row["sequence"],
                sender=send.user,
                content=send.content,
                client_msg_id=send.key,
                created_at=row["created_at"],
                changed_sequence=row["sequence"],
                mentions=_jsonb(row["mentions"]),
                reply_to=row["root_id"],
            )
            results[send.index] = (message, True)
            changes[message.id] = message
            if message.mentions or row["kind"] == Room.Kind.DIRECT or message.reply_to is not None:
                notify.append(message)  # notifications.services, once committed
            if row["root"] is not None and row["root_id"] not in changes:
                root = _model_from_json(Message, _jsonb(row["root"]))
                sender = _jsonb(row["root_sender"])
                root.sender = _model_from_json(User, sender) if sender is not None else None
                changes[root.id] = root
    for change in sorted(changes.values(), key=lambda message: (str(message.room_id), message.changed_sequence)):
        _announce_change(change)


class _MissingParent:
    """A reply whose parent (or the parent's root) is not in PostgreSQL: `_explain_missing` tells
    an archived one (`archived`) from none (`not_found`), with a look at the archive."""

    def __init__(self, room_id: uuid.UUID, message_id: uuid.UUID) -> None:
        self.room_id, self.message_id = room_id, message_id


def _reply_refusal(row: dict[str, Any], send: _Send) -> ApplicationError | _MissingParent:
    """Why _SEND did not take this reply, from its row (what the statement saw of the thread)."""
    if row["root_id"] is None:
        assert send.reply_to is not None  # only replies are kept out by the rules for roots
        missing = row["parent_root"] if row["parent_id"] is not None else send.reply_to
        return _MissingParent(send.room_id, missing)
    if row["root_created_at"].astimezone(dt.UTC).date() < hot_cutoff():
        return Archived()  # days outside the hot window are frozen (their archive matches them)
    if row["root_deleted_at"] is not None:
        return Conflict("This message was deleted: its thread takes no new replies.", code="deleted")
    return Internal()  # _SEND's rule for roots and this one disagree: a bug


def _explain_missing(results: list) -> None:
    for index, result in enumerate(results):
        if isinstance(result, _MissingParent):
            results[index] = missing_message(result.room_id, result.message_id)


def _jsonb(value: object) -> Any:
    """A jsonb column: text through Django's connection, decoded through core.asyncdb's."""
    return json.loads(value) if isinstance(value, str) else value


def _next_sequence(room_id: uuid.UUID) -> int:
    # The row lock taken here serialises changes in one room until commit, which is what makes
    # sequences gapless (a rollback returns the number) and commit order equal sequence order.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = last_sequence + 1 WHERE id = %s RETURNING last_sequence",
            [room_id],
        )
        return cursor.fetchone()[0]


def notice_insert(*, room_id: uuid.UUID, user: User, content: str) -> Message:
    """A message the server writes for a change of the room itself (e2ee.services: the notice that
    turned end-to-end encryption on): the room's next number, so live clients and sync learn it
    like any message. Inside the caller's transaction; announced after its commit."""
    partitions.ensure_for(timezone.now())
    number, stamp = _number_and_stamp(room_id)
    message = Message.objects.create(
        room_id=room_id,
        sequence=number,
        sender=user,
        content=content,
        client_msg_id=uuid.uuid4(),
        created_at=stamp,
        changed_sequence=number,
    )
    _announce_change(message)
    return message


def _announce_change(message: Message) -> None:
    """A numbered room change; consumers deliver these in number order."""
    event = {
        "type": "room.sequenced",
        "room": str(message.room_id),
        "seq": message.changed_sequence,
        "text": dumps(change_frame(message)),
    }
    send_event([room_group(message.room_id)], event)


class _Unchanged(Exception):
    """Raised inside a change transaction that turns out to change nothing: rolls back its number."""

    def __init__(self, message: Message) -> None:
        self.message = message


def _require_hot(message: Message) -> None:
    # Days outside the hot window are frozen so that their archive always matches them.
    if message.created_at.astimezone(dt.UTC).date() < hot_cutoff():
        raise Archived()


def message_edit(*, user: User, room_id: object, message_id: object, content: object) -> Message:
    """Replace a message's text (author only, while they may send). Keeps the old text as a revision."""
    content = _clean_content(content)
    try:
        with transaction.atomic():
            membership = membership_get(room_id=room_id, user=user)
            access.require_send(membership)
            if membership.room.encrypted_since is not None:  # docs/e2ee.md: edits are not offered
                raise Conflict(
                    "Messages in an end-to-end encrypted conversation cannot be edited.", code="encrypted_room"
                )
            room_id = membership.room.pk
            # Taking the number locks the room: every change in this room is serialised from here.
            number = _next_sequence(room_id)
            message = message_in_room(room_id, message_id)
            _require_hot(message)
            if message.sender_id != user.pk:
                raise Forbidden("Only the author can edit a message.")
            if message.deleted_at is not None:
                raise Conflict("This message was deleted.", code="deleted")
            if message.content == content:
                raise _Unchanged(message)
            before = message.mentions
            found = mentions.resolve(
                room_id=membership.room.pk, content=content, may_mention_room=access.may_mention_room(membership.role)
            )
            now = timezone.now()
            MessageRevision.objects.create(
                message_id=message.id,
                room_id=room_id,
                content=message.content,
                written_at=message.edited_at or message.created_at,
                replaced_at=now,
            )
            Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
                content=content, edited_at=now, changed_sequence=number, change_kind=None, mentions=found
            )
            message.content, message.edited_at, message.changed_sequence = content, now, number
            message.change_kind, message.mentions = None, found
            _announce_change(message)
            if found:  # those it names for the first time are notified (notifications.services)
                notifications.notify_edited(message=message, mentioned_before=before)
    except _Unchanged as unchanged:
        return unchanged.message
    return message


def message_delete(*, user: User, room_id: object, message_id: object) -> Message:
    """Delete a message for everyone (its author, or a room owner/admin): a tombstone stays in the
    history so sync and paging have no holes; the text and all revisions are gone."""
    try:
        with transaction.atomic():
            membership = membership_get(room_id=room_id, user=user)
            room_id = membership.room.pk
            number = _next_sequence(room_id)
            message = message_in_room(room_id, message_id)
            _require_hot(message)
            if message.sender_id != user.pk and not access.may_manage(membership):
                raise Forbidden("Only the author or a room admin can delete a message.")
            if message.content == envelope.ENABLED_NOTICE:  # the room stays encrypted: so does its notice
                raise Conflict("The notice that turned encryption on stays.", code="encryption_notice")
            if message.deleted_at is not None:
                raise _Unchanged(message)
            now = timezone.now()
            Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
                content="", deleted_at=now, changed_sequence=number, reactions=None, change_kind=None
            )
            MessageRevision.objects.filter(room_id=room_id, message_id=message.id).delete()
            message.content, message.deleted_at, message.changed_sequence = "", now, number
            message.reactions, message.change_kind = None, None
            if message.attachments:  # they go too (their objects leave the store after commit)
                Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
                    attachments=None
                )
                attachment_binding.release(room_id=room_id, message_id=message.id)
                message.attachments = None
            _announce_change(message)
            if message.reply_to is not None:
                _thread_changed(room_id, message.reply_to, replies=-1)
            if message.sender_id != user.pk:  # a room's owner or admin removed someone else's message
                summary = {"room": str(room_id), "sender": message.sender_id, "sequence": message.sequence}
                audit.record(
                    action="message.delete",
                    actor=user,
                    target=("message", message.id),
                    before=summary,
                    scope=audit.workspace_scope(membership.room.workspace_id),
                )
    except _Unchanged as unchanged:
        return unchanged.message
    return message


# -- Threads and reactions (docs/protocol.md "Threads and reactions") -----------------------------


def _clean_reply_to(reply_to: object) -> uuid.UUID:
    if isinstance(reply_to, uuid.UUID):
        return reply_to
    try:
        if isinstance(reply_to, str):
            return uuid.UUID(reply_to)
    except ValueError:
        pass
    raise InvalidInput("reply_to must be a message id.", fields={"reply_to": ["Must be a UUID."]})


def _number_and_stamp(room_id: uuid.UUID) -> tuple[int, dt.datetime]:
    """`_next_sequence`, and the time after the lock (created_at never goes back along a room's
    sequence, as in _SEND)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = last_sequence + 1 WHERE id = %s"
            " RETURNING last_sequence, clock_timestamp()",
            [room_id],
        )
        number, stamp = cursor.fetchone()
    return number, stamp


def _thread_changed(room_id: uuid.UUID, root_id: uuid.UUID, *, replies: int, at: dt.datetime | None = None) -> None:
    """A reply of this root was sent (replies=1, at its time) or deleted (-1): the root's count
    (and last reply time) change, as a numbered change of the root. Inside the change's
    transaction, the room locked. A root that is deleted or in a frozen (archived) day keeps its
    counters: it cannot change any more."""
    root = Message.objects.select_related("sender").filter(room_id=room_id, id=root_id).first()
    if root is None or root.deleted_at is not None:
        return
    if root.created_at.astimezone(dt.UTC).date() < hot_cutoff():
        return
    number = _next_sequence(room_id)
    root.reply_count = max(root.reply_count + replies, 0)
    if at is not None:
        root.last_reply_at = at
    root.changed_sequence, root.change_kind = number, "thread"
    Message.objects.filter(room_id=room_id, id=root.id, created_at=root.created_at).update(
        reply_count=root.reply_count,
        last_reply_at=root.last_reply_at,
        changed_sequence=number,
        change_kind="thread",
    )
    _announce_change(root)


def thread_reply(
    *, user: User, room_id: object, content: object, client_msg_id: object, reply_to: object
) -> tuple[Message, bool]:
    """Reply in the thread of `reply_to` (a reply to a reply goes to its root's thread: threads are
    one level deep). The reply takes the room's next number, and its root another one for its new
    reply count and last reply time; both are announced and both come back with sync.

    Viewers may not reply (rooms.access.reply_refusal). A deleted root takes no new replies
    (`deleted`), nor does one in a frozen day (`archived`); its existing replies stay readable.
    Resending a client_msg_id returns the original reply (created False), as for plain messages.
    """
    return message_send(user=user, room_id=room_id, content=content, client_msg_id=client_msg_id, reply_to=reply_to)


def _send_one(
    *,
    user: User,
    room_id: object,
    content: object,
    client_msg_id: object,
    reply_to: object = None,
    attachments: object = None,
) -> tuple[Message, bool]:
    """One message through the ORM rather than the batched statement: a reply (`thread_reply`),
    and/or a message with attachments (attachments.binding.claim: the sender's own completed
    uploads to this room, not sent before; their metadata is stored on the message, so payloads,
    history and sync carry it without another query). A message with attachments may have no text."""
    attachment_ids = attachment_binding.clean_ids(attachments)
    sealed = False
    if attachment_ids and (content is None or (isinstance(content, str) and not content.strip())):
        content = ""
    else:
        content, sealed = _clean_sent(content)
    key = _clean_client_msg_id(client_msg_id)
    parent_id = _clean_reply_to(reply_to) if reply_to is not None else None
    partitions.ensure_for(timezone.now())
    for attempt in range(2):
        try:
            with transaction.atomic():
                membership = membership_get(room_id=room_id, user=user)
                if parent_id is not None:
                    access.require_reply(membership)
                else:
                    access.require_send(membership)
                room_pk = membership.room.pk
                original = SentMessageKey.objects.filter(sender=user, client_msg_id=key).first()
                if original is not None:
                    if original.room_id != room_pk:
                        raise Conflict(
                            "This client_msg_id was already used in another room.", code="client_msg_id_reused"
                        )
                    message = (
                        Message.objects.select_related("sender")
                        .filter(room_id=room_pk, id=original.message_id, created_at=original.message_created_at)
                        .first()
                    )
                    if message is None:
                        raise Archived()
                    return message, False
                encrypted = membership.room.encrypted_since is not None
                if encrypted and attachment_ids:
                    raise Conflict(
                        "Files cannot be sent in an end-to-end encrypted conversation: they would not be encrypted.",
                        code="encrypted_room",
                    )
                if (refusal := _sealing_refusal(encrypted=encrypted, sealed=sealed)) is not None:
                    raise refusal
                # Taking the number locks the room: every change in this room is serialised from here.
                number, stamp = _number_and_stamp(room_pk)
                root = None
                if parent_id is not None:
                    root = message_in_room(room_pk, parent_id)
                    if root.reply_to is not None:
                        root = message_in_room(room_pk, root.reply_to)
                    _require_hot(root)
                    if root.deleted_at is not None:
                        raise Conflict("This message was deleted: its thread takes no new replies.", code="deleted")
                found = (
                    None
                    if sealed
                    else mentions.resolve(
                        room_id=room_pk, content=content, may_mention_room=access.may_mention_room(membership.role)
                    )
                )
                message_id = uuid.uuid4()
                carried = (
                    attachment_binding.claim(
                        user_id=user.pk, room_id=room_pk, ids=attachment_ids, message_id=message_id
                    )
                    if attachment_ids
                    else None
                )
                message = Message.objects.create(
                    id=message_id,
                    room_id=room_pk,
                    sequence=number,
                    sender=user,
                    content=content,
                    client_msg_id=key,
                    created_at=stamp,
                    changed_sequence=number,
                    reply_to=root.id if root is not None else None,
                    attachments=carried,
                    mentions=found,
                )
                SentMessageKey.objects.create(
                    sender=user, client_msg_id=key, room_id=room_pk, message_id=message.id, message_created_at=stamp
                )
                _announce_change(message)
                if root is not None:
                    _thread_changed(room_pk, root.id, replies=1, at=stamp)
                if found or root is not None or membership.room.kind == Room.Kind.DIRECT:
                    # The thread's people, those it mentions, a direct room's other member: once
                    # committed (notifications.services).
                    notifications.notify_sent(messages=[message])
            return message, True
        except IntegrityError:  # the same key claimed concurrently: the next try finds and replays it
            if attempt:
                raise
    raise AssertionError("unreachable")


MAX_REACTIONS = 20  # different emoji on one message


_M = TypeVar("_M", bound=models.Model)

# A message's reactions with one user's `emoji` added (`present`) or removed, as SQL over the
# reactions column {r} (a list of {{emoji, users: [user_ref]}} in the order first used, or NULL):
# _REACT evaluates it in its UPDATE, so that a concurrent change is reapplied to the row as it is
# when the room's lock is ours (PostgreSQL re-evaluates the SET against the newest row version).
_REACTED = """
CASE WHEN v.present THEN
    CASE WHEN EXISTS (
            SELECT 1 FROM jsonb_array_elements(coalesce({r}, '[]')) e, jsonb_array_elements(e->'users') u
             WHERE e->>'emoji' = v.emoji AND (u->>'id')::bigint = v.user_id)
         THEN {r}
         WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce({r}, '[]')) e WHERE e->>'emoji' = v.emoji)
         THEN (SELECT jsonb_agg(CASE WHEN e->>'emoji' = v.emoji
                                     THEN jsonb_set(e, '{{users}}', (e->'users') || jsonb_build_array(v.me)) ELSE e END
                                ORDER BY i)
                 FROM jsonb_array_elements({r}) WITH ORDINALITY x(e, i))
         WHEN jsonb_array_length(coalesce({r}, '[]')) >= v.max_reactions THEN {r}
         ELSE coalesce({r}, '[]')
              || jsonb_build_array(jsonb_build_object('emoji', v.emoji, 'users', jsonb_build_array(v.me)))
    END
ELSE (
    SELECT jsonb_agg(kept ORDER BY i) FROM (
        SELECT i, CASE WHEN e->>'emoji' <> v.emoji THEN e ELSE jsonb_set(e, '{{users}}', coalesce(
                   (SELECT jsonb_agg(u ORDER BY j) FROM jsonb_array_elements(e->'users') WITH ORDINALITY y(u, j)
                     WHERE (u->>'id')::bigint <> v.user_id), '[]')) END AS kept
          FROM jsonb_array_elements(coalesce({r}, '[]')) WITH ORDINALITY x(e, i)
    ) z WHERE jsonb_array_length(kept->'users') > 0)
END"""

_REACT = f"""
WITH v AS (
    SELECT %(room_id)s::uuid AS room_id, %(message_id)s::uuid AS message_id, %(user_id)s::bigint AS user_id,
           %(emoji)s::text AS emoji, %(present)s::bool AS present, %(me)s::jsonb AS me,
           %(hot_from)s::timestamptz AS hot_from, %(max_reactions)s::int AS max_reactions
), checked AS (
    SELECT v.*, r.kind, m.role, w.role AS workspace_role, u.is_active AS user_active
      FROM v
      LEFT JOIN LATERAL (SELECT kind, workspace_id FROM rooms_room WHERE id = v.room_id) r ON true
      LEFT JOIN LATERAL (
          SELECT role FROM rooms_membership WHERE room_id = v.room_id AND user_id = v.user_id LIMIT 1
      ) m ON true
      LEFT JOIN LATERAL (
          SELECT role FROM {WorkspaceMembership._meta.db_table}
           WHERE m.role IS NULL AND workspace_id = r.workspace_id AND user_id = v.user_id LIMIT 1
      ) w ON true
      LEFT JOIN LATERAL (SELECT is_active FROM {User._meta.db_table} WHERE id = v.user_id) u ON true
), allowed AS (
    -- Who may react is rooms.access.react_refusal, as a table of its answers.
    SELECT checked.* FROM checked
      JOIN {{rules}} ON rules.kind = checked.kind AND rules.role IS NOT DISTINCT FROM checked.role
       AND rules.user_active = checked.user_active
     WHERE rules.allowed
), locked AS MATERIALIZED (
    -- The room's lock before its number, as every numbered change takes it (gapless, in order).
    SELECT r.id, r.last_sequence FROM rooms_room r JOIN allowed ON allowed.room_id = r.id FOR NO KEY UPDATE OF r
), changed AS (
    UPDATE {Message._meta.db_table} AS m
       SET reactions = {_REACTED.format(r="m.reactions")},
           changed_sequence = locked.last_sequence + 1, change_kind = 'reaction'
      FROM allowed AS v, locked
     WHERE m.room_id = %(room_id)s AND m.id = %(message_id)s AND m.deleted_at IS NULL AND m.created_at >= v.hot_from
       AND ({_REACTED.format(r="m.reactions")}) IS DISTINCT FROM m.reactions
 RETURNING m.*
), numbered AS (
    UPDATE rooms_room AS r SET last_sequence = r.last_sequence + 1 FROM changed WHERE r.id = changed.room_id
)
SELECT c.kind, c.role, c.workspace_role, c.user_active, to_jsonb(ch) AS changed, to_jsonb(m) AS message,
       to_jsonb(s) - 'password' AS sender
  FROM checked AS c
  LEFT JOIN changed AS ch ON true
  -- The message as it is, only when the statement changed nothing (to tell why: a reaction it
  -- already had, deleted, archived, or none such): the common case reads no partition again.
  LEFT JOIN LATERAL (
      SELECT * FROM {Message._meta.db_table}
       WHERE ch.id IS NULL AND room_id = %(room_id)s AND id = %(message_id)s
  ) AS m ON true
  LEFT JOIN {User._meta.db_table} AS s ON s.id = coalesce(ch.sender_id, m.sender_id)
"""
_REACT_SQL = _REACT.replace("{rules}", access.react_rules_sql())
# Reactions take their rooms' locks first (in id order, as send batches do, so that the two cannot
# deadlock), in a statement of their own, then run _REACT: its snapshot then sees the message as the
# last writer left it (reaction_set). Only rooms the reacting user is a member of: the others'
# reactions are refused anyway, and must not make the room's writers wait.
_LOCK_ROOMS = """
SELECT id FROM rooms_room WHERE id IN (
    SELECT m.room_id FROM rooms_membership m
      JOIN unnest(%s::uuid[], %s::bigint[]) AS a(room_id, user_id) ON m.room_id = a.room_id AND m.user_id = a.user_id
) ORDER BY id FOR NO KEY UPDATE"""
# In the socket's batches (awrite_many, areaction_set_many), by name: a statement of its own in
# their transaction, planned once per connection rather than at every batch that holds a reaction.
_LOCK_ROOMS_PREPARED = asyncdb.Prepared(
    "parley_lock_rooms",
    _LOCK_ROOMS.replace("%s::uuid[]", "%(rooms)s::uuid[]").replace("%s::bigint[]", "%(users)s::bigint[]"),
    ("rooms", "users"),
)


def _lock_step(pairs: list[tuple[str, int]]) -> tuple[asyncdb.Prepared, dict[str, list]]:
    """The rooms' locks for (room, member) pairs, as a step of asyncdb.transaction."""
    return _LOCK_ROOMS_PREPARED, {"rooms": [room for room, _ in pairs], "users": [user for _, user in pairs]}


_REACT_PREPARED = asyncdb.Prepared(
    "parley_react",
    _REACT_SQL,
    ("room_id", "message_id", "user_id", "emoji", "present", "me", "hot_from", "max_reactions"),
)


def _model_from_json(model: type[_M], values: dict[str, Any]) -> _M:
    """A model instance from a row as `to_jsonb` gave it (its concrete fields, by column)."""
    fields = model._meta.concrete_fields
    return model(**{f.attname: f.to_python(values[f.column]) for f in fields if f.column in values})


@dataclass
class _Reaction:
    user: User
    room_id: uuid.UUID
    message_id: uuid.UUID
    emoji: str
    present: bool

    def params(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "message_id": self.message_id,
            "user_id": self.user.pk,
            "emoji": self.emoji,
            "present": self.present,
            "me": Jsonb(user_ref(self.user)),  # stored: who, not how they look
            "hot_from": dt.datetime.combine(hot_cutoff(), dt.time(), tzinfo=dt.UTC),
            "max_reactions": MAX_REACTIONS,
        }


class _MissingMessage(Exception):
    """Not among the room's messages in PostgreSQL: in an archived day (`archived`), or none."""


def _reaction_request(*, user: User, room_id: object, message_id: object, emoji: object, present: bool) -> _Reaction:
    emoji = clean_emoji(emoji)
    room_pk = parse_room_id(room_id)
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        raise NotFound("No such message.") from None
    return _Reaction(user, room_pk, message_uuid, emoji, present)


def _reaction_outcome(request: _Reaction, rows: list[dict[str, Any]]) -> Message:
    """_REACT's one row as the service's answer: the message as the change left it (announced), as
    it is (a change that changes nothing), or the refusal, checked in reaction_set's order."""
    (row,) = rows
    kind = access.scoped_kind(kind=row["kind"], role=row["role"], workspace_role=row["workspace_role"])
    refusal = access.react_refusal(kind=kind, role=row["role"], user_active=bool(row["user_active"]))
    if refusal is not None:
        raise refusal
    found = _jsonb(row["changed"]) or _jsonb(row["message"])
    if found is None:
        raise _MissingMessage()
    message = _model_from_json(Message, found)
    sender = _jsonb(row["sender"])
    message.sender = _model_from_json(User, sender) if sender is not None else None
    if row["changed"] is not None:
        _announce_change(message)
        return message
    _require_hot(message)
    if message.deleted_at is not None:
        raise Conflict("This message was deleted.", code="deleted")
    mine = [r for r in message.reactions or () if r["emoji"] == request.emoji]
    if request.present and not mine and len(message.reactions or ()) >= MAX_REACTIONS:
        raise Conflict(f"A message takes at most {MAX_REACTIONS} different reactions.", code="too_many_reactions")
    return message  # it already was as asked: no number taken, nothing announced


def reaction_set(*, user: User, room_id: object, message_id: object, emoji: object, present: bool) -> Message:
    """Add (`present`) or remove this user's `emoji` reaction on a message: a numbered change of
    the message (`message.update`), like an edit. Idempotent: adding a reaction one has, or
    removing one one has not, changes nothing, takes no number and announces nothing; the message
    is returned as it is. Every member reacts, viewers included (rooms.access.react_refusal);
    deleted messages (`deleted`) and frozen days (`archived`) take no reactions.

    The room's lock, then one statement (_REACT) in a transaction: taken first, so that the
    statement's snapshot is the message as the last writer before us left it (a statement that
    waited for the lock inside itself would judge "already there" on the message as it was before
    the wait). `areaction_set_many` runs the same from the event loop (the socket)."""
    request = _reaction_request(user=user, room_id=room_id, message_id=message_id, emoji=emoji, present=present)
    try:
        with transaction.atomic():
            sql.execute(_LOCK_ROOMS, [[str(request.room_id)], [user.pk]])
            return _reaction_outcome(request, sql.fetchall(_REACT_SQL, request.params()))
    except _MissingMessage:
        raise missing_message(request.room_id, request.message_id) from None


async def areaction_set_many(*, requests: list[dict]) -> list[ReactionResult]:
    """`reaction_set` for the event loop, several at once (each `{user, room_id, message_id, emoji,
    present}`), each with its own result: the message, or the ApplicationError `reaction_set`
    would have raised. The sockets of a process batch their reactions (messaging.consumers), so a
    reaction that waits for its room's lock holds up no queue of others behind it: those that
    come meanwhile go together in the next batch.

    One transaction on this process's third asyncio connection, in one round trip
    (core.asyncdb.transaction): the rooms' locks, then each reaction's statement (_REACT) in
    order, each seeing the ones before it, so two reactions to one message take a number each,
    as they would one after the other. If the transaction fails, each reaction runs again alone,
    so that one cannot fail the others."""
    _, results = await awrite_many(sends=[], reactions=requests)
    return results


def _reaction_batch(requests: list[dict], results: list[Any]) -> list[tuple[int, _Reaction]]:
    """The valid reactions of a batch with their places; the others' errors go to `results`."""
    batch: list[tuple[int, _Reaction]] = []
    for index, request in enumerate(requests):
        try:
            batch.append((index, _reaction_request(**request)))
        except ApplicationError as error:
            results[index] = error
    return batch


async def _areact_batch(batch: list[tuple[int, _Reaction]], results: list[Any]) -> None:
    """A batch of reactions in a transaction of its own on the third connection; if it fails,
    each goes again alone."""
    try:
        outcomes = await _areact(batch)
    except (DatabaseError, psycopg.Error) as error:
        if is_outage(error):
            logger.warning("%s reactions failed: the database is unavailable (%s)", len(batch), error)
            results[:] = [result or Unavailable() for result in results]
            return
        logger.info("a batch of %s reactions failed (%s); each goes alone", len(batch), error)
    else:
        await _reaction_results(list(zip(batch, outcomes, strict=True)), results)
        return
    for index, reaction in batch:
        try:
            (rows,) = await _areact([(index, reaction)])
        except (DatabaseError, psycopg.Error) as error:
            if is_outage(error):  # the rest would each wait for it too
                results[:] = [result or Unavailable() for result in results]
                return
            logger.error("a reaction failed: %s", error)
            results[index] = Internal()
            continue
        await _reaction_results([((index, reaction), rows)], results)


async def _areact(reactions: list[tuple[int, _Reaction]]) -> list[list[dict[str, Any]]]:
    """The reactions' statements after their rooms' locks, in one transaction: each statement's rows."""
    pairs = [(str(reaction.room_id), reaction.user.pk) for _, reaction in reactions]
    steps: list[tuple[str | asyncdb.Prepared, Any]] = [_lock_step(pairs)]
    steps += [(_REACT_PREPARED, reaction.params()) for _, reaction in reactions]
    return (await asyncdb.transaction(steps, changes=True))[1:]


async def _reaction_results(
    outcomes: list[tuple[tuple[int, _Reaction], list[dict[str, Any]]]], results: list[Any]
) -> list[Any]:
    """Committed reactions' rows as their results, announced together once this returns; why a
    message was not found is asked afterwards (a thread hop, rare), not holding the others up."""
    missing: list[tuple[int, _Reaction]] = []
    async with publishing():
        for (index, reaction), rows in outcomes:
            try:
                results[index] = _reaction_outcome(reaction, rows)
            except ApplicationError as error:
                results[index] = error
            except _MissingMessage:
                missing.append((index, reaction))
            except Exception:  # a bug: this one answers internal; the others' changes still go out
                logger.exception("a committed reaction could not be answered")
                results[index] = Internal()
    for index, reaction in missing:
        try:
            results[index] = await database_sync_to_async(missing_message)(reaction.room_id, reaction.message_id)
        except (DatabaseError, psycopg.Error) as error:
            results[index] = Unavailable() if is_outage(error) else Internal()
    return results


def message_attachment_changed(*, room_id: uuid.UUID, message_id: uuid.UUID, attachment: dict) -> Message | None:
    """One of a message's attachments changed (its thumbnail was made, or could not be:
    attachments.services): a numbered change of the message (`message.update`, change_kind
    "attach"), so live and syncing clients alike get the new metadata. Inside the caller's
    transaction, which has locked the room already. A deleted message, or one in a frozen day,
    does not change any more."""
    message = Message.objects.select_related("sender").filter(room_id=room_id, id=message_id).first()
    if message is None or message.deleted_at is not None or not message.attachments:
        return None
    if message.created_at.astimezone(dt.UTC).date() < hot_cutoff():
        return None
    carried = [attachment if a["id"] == attachment["id"] else a for a in message.attachments]
    if carried == message.attachments:
        return None
    number = _next_sequence(room_id)
    message.attachments, message.changed_sequence, message.change_kind = carried, number, "attach"
    Message.objects.filter(room_id=room_id, id=message.id, created_at=message.created_at).update(
        attachments=carried, changed_sequence=number, change_kind="attach"
    )
    _announce_change(message)
    return message


def _clean_mark(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer.", fields={name: ["Must be an integer >= 0."]})
    return value


def receipt_update(
    *, user: User, room_id: object, delivered_sequence: object = None, read_sequence: object = None
) -> Membership:
    """Move this member's delivered/read marks forward (never back; never past the room's end).
    Announces the new marks to the room (read hidden if the user turned read receipts off) and,
    unfiltered, to the user's own other devices."""
    delivered = _clean_mark(delivered_sequence, "delivered_sequence")
    read = _clean_mark(read_sequence, "read_sequence")
    if delivered is None and read is None:
        raise InvalidInput(
            "Send delivered_sequence, read_sequence or both.",
            fields={"non_field_errors": ["Send delivered_sequence, read_sequence or both."]},
        )
    with transaction.atomic():
        membership = membership_get(room_id=room_id, user=user)
        last = membership.room.last_sequence
        read = min(read or 0, last)
        delivered = max(min(delivered or 0, last), read)  # what you have read, you have received
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE rooms_membership AS m
                   SET delivered_sequence = GREATEST(m.delivered_sequence, %s),
                       read_sequence = GREATEST(m.read_sequence, %s)
                  FROM rooms_membership AS old
                 WHERE m.id = %s AND old.id = m.id
             RETURNING m.delivered_sequence, m.read_sequence, old.delivered_sequence, old.read_sequence
                """,
                [delivered, read, membership.pk],
            )
            new_delivered, new_read, old_delivered, old_read = cursor.fetchone()
        membership.delivered_sequence, membership.read_sequence = new_delivered, new_read
        if (new_delivered, new_read) == (old_delivered, old_read):
            return membership
        room = str(membership.room.pk)
        mine = {
            "type": "receipt",
            "room": room,
            "user": user_payload(user),
            "delivered_sequence": new_delivered,
            "read_sequence": new_read,
        }
        theirs = dict(mine, read_sequence=new_read if user.send_read_receipts else None)
        send_event([user_group(user.pk)], {"type": "user.relay", "text": dumps(mine)})
        if new_delivered != old_delivered or (user.send_read_receipts and new_read != old_read):
            send_event(
                [room_group(room)], {"type": "room.relay", "room": room, "exclude_user": user.pk, "text": dumps(theirs)}
            )
    return membership


# -- Account erasure (accounts.erasure; the rule: messaging.erasure) --------------------------------

ERASE_BATCH = 500  # messages changed per transaction (and per publication of their events)


def messages_erase_batch(*, room_id: uuid.UUID, user_id: int, mode: str) -> int:
    """One batch of an account erasure in one room: up to ERASE_BATCH of the room's messages that
    the person sent or reacted to are changed (messaging.erasure), each a numbered change like an
    edit, so live clients and sync both get the new copy; their events go out after commit in one
    publication. Returns how many changed: 0 when the room has none left (a changed message no
    longer matches, so calling it again resumes). The room's lock is held for one batch only, so
    the room's chat goes on between batches. Days outside the hot window that are still in
    PostgreSQL change too (messaging.archive.erase_user handles the archived ones)."""
    with transaction.atomic():
        # The room's row first, as every change of the room takes it: the read-modify-write below
        # cannot lose a concurrent reaction or edit.
        if not Room.objects.select_for_update().filter(pk=room_id).exists():
            return 0
        mine = Q(sender_id=user_id) | Q(reactions__contains=[{"users": [{"id": user_id}]}])
        rows = list(
            Message.objects.filter(room_id=room_id)
            .filter(mine)
            .select_related("sender")
            .order_by("sequence")[:ERASE_BATCH]
        )
        if not rows:
            return 0
        now = timezone.now()
        tombstoned: list[Message] = []
        with_files: list[uuid.UUID] = []
        replies_gone: dict[uuid.UUID, int] = {}
        for message in rows:
            live_reply = message.reply_to if message.sender_id == user_id and message.deleted_at is None else None
            had_files = bool(message.attachments)
            erase_in_message(message, user_id=user_id, mode=mode, now=now)
            if message.deleted_at == now:
                tombstoned.append(message)
                if had_files:
                    with_files.append(message.id)
                if live_reply is not None:
                    replies_gone[live_reply] = replies_gone.get(live_reply, 0) + 1
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE rooms_room SET last_sequence = last_sequence + %s WHERE id = %s RETURNING last_sequence",
                [len(rows), room_id],
            )
            last = cursor.fetchone()[0]
        for number, message in enumerate(rows, start=last - len(rows) + 1):
            message.changed_sequence = number
        sql.execute(_ERASE_UPDATE, _erase_params(room_id, rows))  # the whole batch in one statement
        if tombstoned:
            MessageRevision.objects.filter(room_id=room_id, message_id__in=[m.id for m in tombstoned]).delete()
            for message_id in with_files:  # their files leave the store after commit
                attachment_binding.release(room_id=room_id, message_id=message_id)
        send_events(
            [
                (
                    [room_group(room_id)],
                    {
                        "type": "room.sequenced",
                        "room": str(room_id),
                        "seq": message.changed_sequence,
                        "text": dumps(change_frame(message)),
                    },
                )
                for message in rows
            ]
        )
        for root_id, count in replies_gone.items():  # a root deleted in this batch stays as it is
            _thread_changed(room_id, root_id, replies=-count)
    return len(rows)


_ERASE_UPDATE = """
UPDATE messaging_message AS m
   SET sender_id = v.sender_id, content = v.content, deleted_at = v.deleted_at, attachments = v.attachments,
       reactions = v.reactions, mentions = v.mentions, change_kind = v.change_kind, changed_sequence = v.number
  FROM unnest(%s::uuid[], %s::timestamptz[], %s::bigint[], %s::text[], %s::timestamptz[], %s::jsonb[],
              %s::jsonb[], %s::jsonb[], %s::text[], %s::bigint[])
       AS v(id, created_at, sender_id, content, deleted_at, attachments, reactions, mentions, change_kind, number)
 WHERE m.room_id = %s AND m.id = v.id AND m.created_at = v.created_at
"""


def _erase_params(room_id: uuid.UUID, rows: list[Message]) -> list[Any]:
    def jsonb(value: object) -> Jsonb | None:
        return None if value is None else Jsonb(value)

    return [
        [m.id for m in rows],
        [m.created_at for m in rows],
        [m.sender_id for m in rows],
        [m.content for m in rows],
        [m.deleted_at for m in rows],
        [jsonb(m.attachments) for m in rows],
        [jsonb(m.reactions) for m in rows],
        [jsonb(m.mentions) for m in rows],
        [m.change_kind for m in rows],
        [m.changed_sequence for m in rows],
        room_id,
    ]


def rooms_to_erase(*, user_id: int) -> list[uuid.UUID]:
    """The rooms holding messages in PostgreSQL that `user_id` sent or reacted to (one scan:
    erasure is rare, and nothing else asks for messages by sender)."""
    mine = Q(sender_id=user_id) | Q(reactions__contains=[{"users": [{"id": user_id}]}])
    return sorted(Message.objects.filter(mine).order_by().values_list("room_id", flat=True).distinct())
