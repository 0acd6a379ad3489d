"""Full-text search over the messages a user may read (issue 16; docs/search.md).

PostgreSQL does the work: `websearch_to_tsquery` parses what people type (words, "quoted
phrases", `or`, `-excluded`; it never fails on syntax), the GIN expression index of
search/migrations/0001 finds the candidates (on every partition, including days created ahead
and restored days), `ts_rank_cd` ranks them and `ts_headline` cuts a snippet for the page's rows
only. Who may read which room is rooms.access's `member_refusal`, as for history; a room named in
the `room` filter that the user may not read answers as history does (`not_found`, `not_member`).

Snippets never carry HTML: ts_headline marks the matches with two private-use characters (taken
out of the text first), which become `[{"text", "match"}]` segments the client renders as text.

Archived days (dropped from PostgreSQL, messaging/archive.py) are not searched: the answer names
the archived days that hold messages of the searched rooms within the date range, so the gap is
never silent; an operator's `restore_day` makes such a day searchable again.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection

from accounts.models import User
from core.errors import ApplicationError, InvalidInput
from core.jsontext import storable_text
from core.sql import fetchall
from messaging.models import Message, MessageArchive
from rooms import access
from rooms.models import Membership, Room
from rooms.selectors import membership_get

# The text search configuration: it must be the one the index was built with (the migration).
CONFIG = "english"
QUERY_MAX_LENGTH = 200
PAGE_MAX = 50
OFFSET_MAX = 1000
ARCHIVED_DAYS_LISTED = 60

_START, _STOP = "\ue000", "\ue001"  # match markers in ts_headline's output (never in the text)
_HEADLINE_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12"
_VECTOR = f"to_tsvector('{CONFIG}'::regconfig, m.content)"
_QUERY = f"websearch_to_tsquery('{CONFIG}'::regconfig, %(q)s)"
_TABLE = Message._meta.db_table


class QueryError(ApplicationError):
    status = 400


def query_error(code: str, message: str) -> QueryError:
    return QueryError(message, code=code, fields={"q": [message]})


@dataclass
class SearchParams:
    q: str
    room: object | None = None
    sender: int | None = None
    from_date: dt.date | None = None  # inclusive, UTC days
    to_date: dt.date | None = None  # inclusive
    order: str = "rank"  # or "recent"
    limit: int = 20
    offset: int = 0
    workspace_id: int | None = None  # without `room`: only this workspace's rooms (the current one)


@dataclass
class Hit:
    message: Message
    room: Room
    rank: float
    snippet: list[dict[str, Any]]


@dataclass
class SearchPage:
    hits: list[Hit]
    has_more: bool
    next_offset: int | None
    archived_days: list[dt.date]  # newest first, at most ARCHIVED_DAYS_LISTED
    archived_days_count: int


def clean_query(q: object) -> str:
    if not isinstance(q, str) or not q.strip():
        raise query_error("query_required", "Type something to search for.")
    q = storable_text(q.strip(), field="q")
    if len(q) > QUERY_MAX_LENGTH:
        raise query_error("query_too_long", f"Searches are at most {QUERY_MAX_LENGTH} characters.")
    return q


def readable_rooms(user: User, room: object | None = None, workspace_id: int | None = None) -> list[Room]:
    """The rooms whose messages `user` may read (all of them, those of one workspace, or the one
    named), end-to-end encrypted rooms left out: the server cannot read their messages (docs/e2ee.md).
    Naming one is `room_encrypted`."""
    if room is not None:
        named = membership_get(room_id=room, user=user).room
        if named.encrypted_since is not None:
            message = "An end-to-end encrypted conversation cannot be searched."
            raise QueryError(message, code="room_encrypted", fields={"room": [message]})
        return [named]
    memberships = Membership.objects.filter(user=user, room__encrypted_since__isnull=True).select_related(
        "room", "user"
    )
    if workspace_id is not None:
        memberships = memberships.filter(room__workspace_id=workspace_id)
    return [
        m.room
        for m in memberships
        if access.member_refusal(kind=m.room.kind, role=m.role, user_active=m.user.is_active) is None
    ]


def _segments(headline: str) -> list[dict[str, Any]]:
    """ts_headline's output, markers in, as [{"text", "match"}] (adjacent matches merged)."""
    segments: list[dict[str, Any]] = []
    match = False
    for piece_index, piece in enumerate(headline.replace(_STOP, _START).split(_START)):
        match = piece_index % 2 == 1
        if not piece:
            continue
        if segments and segments[-1]["match"] == match:
            segments[-1]["text"] += piece
        else:
            segments.append({"text": piece, "match": match})
    return segments


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def message_search(*, user: User, params: SearchParams) -> SearchPage:
    q = clean_query(params.q)
    if params.from_date and params.to_date and params.from_date > params.to_date:
        raise InvalidInput("from_date is after to_date.", fields={"from_date": ["Must not be after to_date."]})
    rooms = readable_rooms(user, params.room, params.workspace_id)
    if not rooms:
        _require_terms(q)
        return SearchPage([], False, None, [], 0)
    # One round trip for the rest (each costs a scheduling delay on a busy database server): the
    # query's terms, the archived days and the page, with each sender's name.
    sql, values = statement(q, rooms, params)
    rows = _fetch(sql, values)
    if rows[0]["nodes"] == 0 or rows[0]["tree"] == "T":
        raise _no_terms()
    archived: list[dt.date] = rows[0]["archived_days"]
    rows = [row for row in rows if row["id"] is not None]
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    by_id = {r.pk: r for r in rooms}
    hits = []
    for row in rows:
        message = Message(
            id=row["id"],
            room_id=row["room_id"],
            sequence=row["sequence"],
            sender=User(
                id=row["sender_id"],
                username=row["sender_username"],
                display_name=row["sender_display_name"],
                avatar=row["sender_avatar"],
            )
            if row["sender_id"]
            else None,
            content=row["content"],
            client_msg_id=row["client_msg_id"],
            created_at=row["created_at"],
            edited_at=row["edited_at"],
            changed_sequence=row["changed_sequence"],
        )
        hits.append(Hit(message, by_id[row["room_id"]], float(row["rank"]), _segments(row["headline"])))
    next_offset = params.offset + len(hits) if has_more else None
    if next_offset is not None and next_offset > OFFSET_MAX:
        has_more, next_offset = False, None
    return SearchPage(hits, has_more, next_offset, archived[:ARCHIVED_DAYS_LISTED], len(archived))


# Planning the statement over every daily partition costs about as much as running it (9-23 ms
# against 16-60 ms in EXPLAIN ANALYZE at 1,000,000 rows over 38 partitions, docs/performance.md),
# so it runs with server-side parameters as a prepared statement (one per connection and variant of
# filters); bench/search.py compares both ways in one run.
PREPARED = True


def _no_terms() -> QueryError:
    # Only stop words or punctuation ("the", "!!"), or only exclusions ("-lunch"): the index
    # cannot answer it (querytree 'T') and nothing useful would match.
    return query_error("query_no_terms", "Search for at least one word that is not too common or excluded.")


def _require_terms(q: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT numnode({_QUERY}), querytree({_QUERY})", {"q": q})
        nodes, tree = cursor.fetchone()
    if nodes == 0 or tree == "T":
        raise _no_terms()


def _fetch(sql: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    if not PREPARED:
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            columns = [c.name for c in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return fetchall(sql, values)


def statement(q: str, rooms: list[Room], params: SearchParams) -> tuple[str, dict[str, Any]]:
    """The SQL of a page of results and its parameters (bench/search.py explains it)."""
    # The query is spelled out (not a CTE): a constant at plan time, so the planner estimates its
    # matches from the index's statistics.
    where = ["m.deleted_at IS NULL", "m.room_id = ANY(%(rooms)s)", f"{_VECTOR} @@ {_QUERY}"]
    values: dict[str, Any] = {"q": q, "rooms": [r.pk for r in rooms], "options": _HEADLINE_OPTIONS}
    if params.sender is not None:
        where.append("m.sender_id = %(sender)s")
        values["sender"] = params.sender
    if params.from_date is not None:
        where.append("m.created_at >= %(start)s")
        values["start"] = _day_start(params.from_date)
    if params.to_date is not None and params.to_date < dt.date.max:
        where.append("m.created_at < %(end)s")
        values["end"] = _day_start(params.to_date + dt.timedelta(days=1))
    order = "rank DESC, m.created_at DESC, m.id" if params.order == "rank" else "m.created_at DESC, m.id"
    values["limit"], values["offset"] = params.limit + 1, params.offset
    archived_where = ["a.status = %(dropped)s", "a.room_ranges ?| %(room_keys)s"]
    values["dropped"], values["room_keys"] = MessageArchive.Status.DROPPED.value, [str(r.pk) for r in rooms]
    if params.from_date is not None:
        archived_where.append("a.day >= %(from_day)s")
        values["from_day"] = params.from_date
    if params.to_date is not None:
        archived_where.append("a.day <= %(to_day)s")
        values["to_day"] = params.to_date
    # A query the index cannot answer (no terms, or only exclusions) scans nothing: `terms` gates it.
    sql = f"""
        WITH terms AS MATERIALIZED (SELECT numnode({_QUERY}) AS nodes, querytree({_QUERY}) AS tree),
        archived AS MATERIALIZED (
            SELECT coalesce(array_agg(a.day ORDER BY a.day DESC), '{{}}'::date[]) AS archived_days
              FROM {MessageArchive._meta.db_table} AS a
             WHERE {" AND ".join(archived_where)}
        ),
        hits AS MATERIALIZED (
            SELECT m.id, m.room_id, m.sequence, m.sender_id, m.content, m.client_msg_id, m.created_at,
                   m.edited_at, m.changed_sequence, ts_rank_cd({_VECTOR}, {_QUERY}) AS rank
              FROM {_TABLE} AS m
             WHERE {" AND ".join(where)} AND (SELECT nodes > 0 AND tree <> 'T' FROM terms)
             ORDER BY {order}
             LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT terms.nodes, terms.tree, archived.archived_days, page.*
          FROM terms CROSS JOIN archived
          LEFT JOIN LATERAL (
              SELECT hits.*, u.username AS sender_username, u.display_name AS sender_display_name,
                     u.avatar AS sender_avatar, ts_headline(
                         '{CONFIG}'::regconfig,
                         replace(replace(hits.content, %(start_mark)s, ''), %(stop_mark)s, ''),
                         {_QUERY}, %(options)s
                     ) AS headline
                FROM hits LEFT JOIN {User._meta.db_table} AS u ON u.id = hits.sender_id
          ) AS page ON true
         ORDER BY {order.replace("rank", "page.rank").replace("m.", "page.")}
    """
    values["start_mark"], values["stop_mark"] = _START, _STOP
    return sql, values
