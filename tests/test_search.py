"""Full-text search (search/; GET /api/v1/search/): what a user may find, ranking, snippets,
filters, paging, bad queries, the index on every partition (future and restored days) and
archived days named in the answer."""

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize

from messaging import archive, partitions
from messaging.archive_storage import archive_storage
from messaging.models import Message
from messaging.partitions import NAME_FORMAT
from messaging.services import message_delete, message_edit
from rooms.models import Room
from rooms.services import membership_remove, staff_actor
from tests.conftest import client_for, room_with, send_message

pytestmark = pytest.mark.django_db

TODAY = dt.datetime.now(dt.UTC).date()
INDEX = "message_search_english"


def search(user, **params) -> dict:
    response = client_for(user).get("/api/v1/search/", params)
    assert response.status_code == 200, response.content
    return response.json()


def refused(user, **params) -> tuple[int, str, dict]:
    response = client_for(user).get("/api/v1/search/", params)
    body = response.json()
    assert response["Content-Type"].startswith("application/json")
    return response.status_code, body["error"]["code"], body["error"].get("fields") or {}


def contents(page: dict) -> list[str]:
    return ["".join(piece["text"] for piece in hit["snippet"]) for hit in page["results"]]


def make_partition(day: dt.date) -> None:
    if archive.partition_exists(day):
        return
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    partition = PostgresTimePartition(
        size=PostgresTimePartitionSize(days=1), start_datetime=start, name_format=NAME_FORMAT
    )
    with connection.schema_editor() as editor:
        partition.create(Message, editor)


def move_to(message: Message, day: dt.date) -> None:
    """Put a message on another day (PostgreSQL moves the row to that day's partition)."""
    make_partition(day)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE messaging_message SET created_at = %s WHERE id = %s",
            [dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC), message.id],
        )


@pytest.fixture
def world(make_user):
    ada, bob, cy, eve = make_user("ada"), make_user("bob"), make_user("cy"), make_user("eve")
    ops = room_with(ada, "Ops", Room.Kind.PRIVATE, members={bob: "member", cy: "viewer"})
    lobby = room_with(bob, "Lobby", Room.Kind.PUBLIC)
    secret = room_with(eve, "Secret", Room.Kind.PRIVATE)
    return {"ada": ada, "bob": bob, "cy": cy, "eve": eve, "ops": ops, "lobby": lobby, "secret": secret}


def test_it_finds_stemmed_words_best_first_with_highlighted_snippets(world):
    ada, bob, ops = world["ada"], world["bob"], world["ops"]
    send_message(ops, ada, "lunch at noon")
    once = send_message(ops, bob, "the deploy is done")
    twice = send_message(ops, ada, "Deploying now; deployed twice since the last deploy window")
    page = search(ada, q="deploys")
    assert [hit["id"] for hit in page["results"]] == [str(twice.id), str(once.id)]
    hit = page["results"][1]
    assert hit["room"] == {"id": str(ops.pk), "name": "Ops", "kind": "private"}
    assert (hit["sequence"], hit["sender"]["username"]) == (once.sequence, "bob")
    assert hit["snippet"] == [
        {"text": "the ", "match": False},
        {"text": "deploy", "match": True},
        {"text": " is done", "match": False},
    ]
    assert page["results"][0]["rank"] > hit["rank"] > 0
    assert (page["has_more"], page["next_offset"], page["archived_days_not_searched"]) == (False, None, 0)


def test_snippets_are_text_never_markup(world):
    ada, ops = world["ada"], world["ops"]
    send_message(ops, ada, 'a <img src=x onerror="alert(1)"> release \ue000note\ue001 **here**')
    [hit] = search(ada, q="release")["results"]
    # ts_headline leaves HTML-looking tags out (as spaces); the markers typed into the text are gone
    # too; what remains is plain text pieces.
    assert hit["snippet"] == [
        {"text": "a   ", "match": False},
        {"text": "release", "match": True},
        {"text": " note **here**", "match": False},
    ]


def test_only_rooms_one_may_read_are_searched(world):
    ada, bob, cy, eve = world["ada"], world["bob"], world["cy"], world["eve"]
    send_message(world["ops"], ada, "quarterly budget in ops")
    send_message(world["lobby"], bob, "quarterly budget in the lobby")
    send_message(world["secret"], eve, "quarterly budget in secret")
    assert contents(search(ada, q="budget")) == ["quarterly budget in ops"]  # not a member of the lobby
    assert contents(search(cy, q="budget")) == ["quarterly budget in ops"]  # viewers read
    assert len(search(bob, q="budget")["results"]) == 2
    assert contents(search(eve, q="budget")) == ["quarterly budget in secret"]
    membership_remove(actor=staff_actor(room=world["ops"], user=ada), user=bob)
    assert contents(search(bob, q="budget")) == ["quarterly budget in the lobby"]


def test_deleted_messages_are_never_found_and_edits_are_found_by_their_new_text(world):
    ada, ops = world["ada"], world["ops"]
    gone = send_message(ops, ada, "secret launch codes")
    message_delete(user=ada, room_id=ops.pk, message_id=gone.id)
    changed = send_message(ops, ada, "old wording")
    message_edit(user=ada, room_id=ops.pk, message_id=changed.id, content="new phrasing")
    assert search(ada, q="launch")["results"] == []
    assert search(ada, q="wording")["results"] == []
    assert contents(search(ada, q="phrasing")) == ["new phrasing"]


def test_filters_by_room_sender_and_days(world):
    ada, bob, ops, lobby = world["ada"], world["bob"], world["ops"], world["lobby"]
    old = send_message(ops, ada, "incident report one")
    move_to(old, TODAY - dt.timedelta(days=3))
    send_message(ops, bob, "incident report two")
    send_message(lobby, bob, "incident report three")
    assert len(search(bob, q="incident")["results"]) == 3
    assert contents(search(bob, q="incident", room=str(lobby.pk))) == ["incident report three"]
    assert sorted(contents(search(bob, q="incident", sender=ada.pk))) == ["incident report one"]
    since = (TODAY - dt.timedelta(days=1)).isoformat()
    assert sorted(contents(search(bob, q="incident", from_date=since))) == [
        "incident report three",
        "incident report two",
    ]
    until = (TODAY - dt.timedelta(days=2)).isoformat()
    assert contents(search(bob, q="incident", to_date=until)) == ["incident report one"]
    day = (TODAY - dt.timedelta(days=3)).isoformat()
    assert contents(search(bob, q="incident", from_date=day, to_date=day)) == ["incident report one"]
    newest_first = search(bob, q="incident", order="recent")["results"]
    assert [hit["created_at"] for hit in newest_first] == sorted((h["created_at"] for h in newest_first), reverse=True)


def test_a_room_one_may_not_read_is_refused_like_history(world):
    ada = world["ada"]
    assert refused(ada, q="x", room=str(world["secret"].pk))[:2] == (404, "not_found")
    assert refused(ada, q="x", room=str(uuid.uuid4()))[:2] == (404, "not_found")
    assert refused(ada, q="x", room=str(world["lobby"].pk))[:2] == (403, "not_member")


@pytest.mark.parametrize(
    ("params", "status", "code", "field"),
    [
        ({}, 400, "query_required", "q"),
        ({"q": "   "}, 400, "query_required", "q"),
        ({"q": "x" * 201}, 400, "query_too_long", "q"),
        ({"q": "the and of"}, 400, "query_no_terms", "q"),
        ({"q": "!!! ..."}, 400, "query_no_terms", "q"),
        ({"q": "-lunch"}, 400, "query_no_terms", "q"),
        ({"q": "nul\x00byte"}, 400, "invalid", "q"),
        ({"q": "x", "limit": "0"}, 400, "invalid", "limit"),
        ({"q": "x", "limit": "51"}, 400, "invalid", "limit"),
        ({"q": "x", "offset": "-1"}, 400, "invalid", "offset"),
        ({"q": "x", "room": "not-a-uuid"}, 400, "invalid", "room"),
        ({"q": "x", "sender": "ada"}, 400, "invalid", "sender"),
        ({"q": "x", "from_date": "yesterday"}, 400, "invalid", "from_date"),
        ({"q": "x", "from_date": "2026-05-02", "to_date": "2026-05-01"}, 400, "invalid", "from_date"),
        ({"q": "x", "order": "random"}, 400, "invalid", "order"),
    ],
)
def test_bad_queries_get_a_stable_code(world, params, status, code, field):
    got_status, got_code, fields = refused(world["ada"], **params)
    assert (got_status, got_code) == (status, code)
    assert field in fields


def test_queries_with_operators_and_odd_characters_are_answered(world):
    ada, ops = world["ada"], world["ops"]
    send_message(ops, ada, "the blue deploy pipeline")
    send_message(ops, ada, "the red deploy pipeline")
    assert contents(search(ada, q='"blue deploy"')) == ["the blue deploy pipeline"]
    assert contents(search(ada, q="deploy -red")) == ["the blue deploy pipeline"]
    assert len(search(ada, q="blue or red")["results"]) == 2
    for odd in ["deploy & | ! ( ) : * <->", "'deploy'", "deploy\\", "%_deploy_%", "日本語 deploy"]:
        search(ada, q=odd)


def test_pages_cover_every_match_once(world):
    ada, ops = world["ada"], world["ops"]
    for i in range(23):
        send_message(ops, ada, f"standup note {i}")
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = search(ada, q="standup", limit=10, offset=offset)
        seen += [hit["id"] for hit in page["results"]]
        offset, pages = page["next_offset"], pages + 1
        assert page["has_more"] == (offset is not None)
    assert (pages, len(seen), len(set(seen))) == (3, 23, 23)
    # Run often enough on one connection, the statement is prepared (server-side): same answers.
    first = search(ada, q="standup", limit=10)["results"]
    for _ in range(6):
        assert search(ada, q="standup", limit=10)["results"] == first


# -- the index ------------------------------------------------------------------------------------


def partition_indexes(name: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [name])
        return [row[0] for row in cursor.fetchall()]


def test_the_index_is_on_every_partition_and_on_partitions_created_later(world):
    ahead = TODAY + dt.timedelta(days=40)
    partitions.partitions_create_ahead(days_ahead=41)
    past = TODAY - dt.timedelta(days=30)
    make_partition(past)
    for day in (TODAY, ahead, past):
        definitions = partition_indexes(archive.partition_name(day))
        wanted = ["gin", "to_tsvector('english'::regconfig, content)", "deleted_at IS NULL"]
        assert any(all(part in d for part in wanted) for d in definitions), (day, definitions)
    # And the query uses it (the planner prefers a scan on tiny tables unless told not to).
    send_message(world["ops"], world["ada"], "indexed words")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM messaging_message WHERE to_tsvector('english'::regconfig, content) "
            "@@ websearch_to_tsquery('english'::regconfig, 'indexed') AND deleted_at IS NULL"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_search_english" in plan or "to_tsvector_idx" in plan or "Bitmap Index Scan" in plan, plan


# Archiving detaches and drops a partition, which PostgreSQL refuses inside the transaction that
# wrote to it (pending constraint triggers): this one commits, and drops its day afterwards.
@pytest.mark.django_db(transaction=True)
def test_archived_days_are_named_and_searchable_again_once_restored(world, tmp_path):
    ada, ops = world["ada"], world["ops"]
    day = TODAY - dt.timedelta(days=20)
    old = send_message(ops, ada, "retrospective from long ago")
    move_to(old, day)
    send_message(ops, ada, "retrospective today")
    with override_settings(S3_BUCKET="", ARCHIVE_LOCAL_DIR=str(tmp_path)):
        archive_storage.cache_clear()
        try:
            assert archive.archive_day(day).status == "dropped"
            page = search(ada, q="retrospective")
            assert contents(page) == ["retrospective today"]
            assert (page["archived_days_not_searched"], page["archived_days"]) == (1, [day.isoformat()])
            # Outside the dates asked for, or in other rooms, it is not mentioned.
            assert search(ada, q="retrospective", from_date=TODAY.isoformat())["archived_days_not_searched"] == 0
            send_message(world["lobby"], world["bob"], "retrospective in the lobby")
            assert search(world["bob"], q="retrospective", room=str(world["lobby"].pk))["archived_days"] == []
            archive.restore_day(day)
            assert any("to_tsvector" in d for d in partition_indexes(archive.partition_name(day)))
            page = search(ada, q="retrospective")
            assert sorted(contents(page)) == ["retrospective from long ago", "retrospective today"]
            assert page["archived_days_not_searched"] == 0
        finally:
            archive_storage.cache_clear()
            archive._cache.clear()
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE IF EXISTS "{archive.partition_name(day)}"')
