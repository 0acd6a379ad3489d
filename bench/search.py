"""Search latency over ROWS messages (default 1,000,000): `make bench-search`.

    make bench-search                 # PostgreSQL with its durable defaults (BENCH_STACK=bench)
    ROWS=20000 make bench-search      # a quick look

Bulk-loads ROWS messages with one INSERT ... SELECT (generate_series) into ROOMS rooms over DAYS
daily partitions (the full-text index of search/migrations/0001 is maintained as they go in), the
words of each message drawn from a vocabulary with Zipf frequencies (a word's frequency ~ 1/rank,
the most frequent ones English stop words, as in real text). Then one user, a member of MY_ROOMS
rooms, searches through search.selectors.message_search (the REST view's code: the SQL, the
snippets, the senders), REPEAT queries of each kind:

- common: one of the 20 most frequent searchable words (matches tens of thousands of messages);
- typical: a word of frequency rank 50-500;
- rare: rank 1,000-4,000;
- two words, a "quoted phrase" of two adjacent words, and a typical word within one room.

Prints p50/p95/max per kind and overall "typical" (everything but `common`), and writes
bench/results/search.json. Timings are wall clock of the whole call on this machine: on a machine
other work loads too, compare runs only with care (docs/performance.md).
"""

import datetime as dt
import importlib
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize  # noqa: E402

from accounts.models import User  # noqa: E402
from messaging import archive  # noqa: E402
from messaging.models import Message  # noqa: E402
from messaging.partitions import NAME_FORMAT  # noqa: E402
from rooms.models import Membership, Room  # noqa: E402
from search import selectors  # noqa: E402
from search.selectors import SearchParams, message_search, statement  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

ROWS = int(os.environ.get("ROWS", "1000000"))
ROOMS = int(os.environ.get("ROOMS", "1000"))
DAYS = int(os.environ.get("DAYS", "30"))
MY_ROOMS = int(os.environ.get("MY_ROOMS", "20"))
USERS = 200
REPEAT = int(os.environ.get("REPEAT", "40"))
STOP_WORDS = (
    "the a to and of i is in it you that for on we this be with are have so at not but can just it's "
    "will do if me my was what all up get or as about our from they there out one now an no"
).split()


def vocabulary(size: int = 5000) -> list[str]:
    """Stop words first (the most frequent), then made-up words of two to four syllables."""
    rng = random.Random(16)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["ch" + v for v in "aeiou"]
    words, seen = list(STOP_WORDS), set(STOP_WORDS)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


CREATED_PARTITIONS: list[dt.date] = []


def make_partition(day: dt.date) -> None:
    if archive.partition_exists(day):
        return
    CREATED_PARTITIONS.append(day)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with connection.schema_editor() as editor:
        PostgresTimePartition(
            size=PostgresTimePartitionSize(days=1), start_datetime=start, name_format=NAME_FORMAT
        ).create(Message, editor)


def clean_up(users: list[User], rooms: list[Room]) -> None:
    """Leave the database as we found it: the days' partitions (and so the messages) go, then the
    rooms and users (past days left behind would be due for archiving)."""
    with connection.cursor() as cursor:
        for day in CREATED_PARTITIONS:
            cursor.execute(f'DROP TABLE IF EXISTS "{archive.partition_name(day)}"')
    Room.objects.filter(pk__in=[r.pk for r in rooms]).delete()
    User.objects.filter(pk__in=[u.pk for u in users]).delete()


def fill(words: list[str]) -> tuple[list[User], list[Room]]:
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=DAYS)
    for offset in range(DAYS):
        make_partition(first + dt.timedelta(days=offset))
    tag = uuid.uuid4().hex[:6]
    users = User.objects.bulk_create([User(username=f"search-{tag}-{i}", password="!") for i in range(USERS)])
    me = users[0]
    workspace = default_workspace()
    rooms = Room.objects.bulk_create(
        [Room(name=f"search bench {i}", created_by=me, workspace=workspace) for i in range(ROOMS)]
    )
    Membership.objects.bulk_create([Membership(room=room, user=me, role="member") for room in rooms[:MY_ROOMS]])
    per_room = ROWS // ROOMS
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    index = importlib.import_module("search.migrations.0001_message_search_index")
    with connection.cursor() as cursor:
        # Bulk load first, index after (the migration's own statement): much faster than keeping a
        # GIN index up to date row by row (the first runs took 9-13 minutes to load that way).
        cursor.execute(index.DROP)
        cursor.execute(
            """
            INSERT INTO messaging_message
                (id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at)
            SELECT gen_random_uuid(), r.id, s.n, s.n, (%(users)s::bigint[])[1 + (s.n * 7 + r.i) %% %(nusers)s],
                   (SELECT string_agg(w.list[floor(exp(random() * ln(w.size)))::int], ' ')
                      FROM generate_series(1, 4 + (s.n + r.i) %% 14) AS g(k),
                           (SELECT %(words)s::text[] AS list, %(nwords)s::float AS size) AS w),
                   gen_random_uuid(),
                   %(start)s::timestamptz + make_interval(secs => (s.n - 1) * %(span)s / %(per_room)s + r.i %% 60)
              FROM unnest(%(rooms)s::uuid[]) WITH ORDINALITY AS r(id, i), generate_series(1, %(per_room)s) AS s(n)
            """,
            {
                "users": [u.pk for u in users],
                "nusers": USERS,
                "words": words,
                "nwords": len(words),
                "start": start,
                "span": DAYS * 86400.0 - 120,
                "per_room": per_room,
                "rooms": [str(r.pk) for r in rooms],
            },
        )
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = %s WHERE id = ANY(%s::uuid[])",
            [per_room, [str(r.pk) for r in rooms]],
        )
        cursor.execute(index.CREATE)
        cursor.execute("ANALYZE messaging_message")
    return users, rooms


def timed(user: User, params: SearchParams) -> tuple[float, int]:
    started = time.perf_counter()
    page = message_search(user=user, params=params)
    return (time.perf_counter() - started) * 1000, len(page.hits)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def main() -> int:
    call_command("migrate", interactive=False, verbosity=0)
    words = vocabulary()
    with connection.cursor() as cursor:  # no made-up word that happens to be an English stop word
        cursor.execute(
            "SELECT w FROM unnest(%s::text[]) WITH ORDINALITY AS v(w, i) "
            "WHERE numnode(plainto_tsquery('english'::regconfig, w)) > 0 ORDER BY i",
            [words[len(STOP_WORDS) :]],
        )
        searchable = [row[0] for row in cursor.fetchall()]
    words = STOP_WORDS + searchable
    print(f"loading {ROWS:,} messages into {ROOMS} rooms over {DAYS} days, then indexing ...", flush=True)
    started = time.perf_counter()
    users, rooms = fill(words)
    load_seconds = time.perf_counter() - started
    try:
        figures = measure(users[0], rooms, searchable, load_seconds)
    finally:
        clean_up(users, rooms)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def measure(me: User, rooms: list[Room], searchable: list[str], load_seconds: float) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(sum(pg_relation_size(inhrelid))) FROM pg_inherits "
            "WHERE inhparent = 'message_search_english'::regclass"
        )
        index_size = cursor.fetchone()[0]
    rng = random.Random(7)
    kinds = {
        "common": lambda: SearchParams(q=rng.choice(searchable[:20])),
        "typical": lambda: SearchParams(q=rng.choice(searchable[50:500])),
        "rare": lambda: SearchParams(q=rng.choice(searchable[1000:4000])),
        "two words": lambda: SearchParams(q=f"{rng.choice(searchable[20:300])} {rng.choice(searchable[20:300])}"),
        "phrase": lambda: SearchParams(q=f'"{rng.choice(searchable[:100])} {rng.choice(searchable[:100])}"'),
        "in one room": lambda: SearchParams(q=rng.choice(searchable[50:500]), room=rng.choice(rooms[:MY_ROOMS]).pk),
    }
    for _ in range(5):  # warm the cache and the connection
        timed(me, kinds["typical"]())
    figures: dict = {
        "rows": ROWS,
        "rooms": ROOMS,
        "days": DAYS,
        "my_rooms": MY_ROOMS,
        "load_seconds": round(load_seconds, 1),
        "index_size": index_size,
        "kinds": {},
    }
    typical: list[float] = []
    for kind, make in kinds.items():
        times, found = [], []
        for _ in range(REPEAT):
            ms, hits = timed(me, make())
            times.append(ms)
            found.append(hits)
        if kind != "common":
            typical += times
        figures["kinds"][kind] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "max_ms": round(max(times), 1),
            "mean_hits_on_page": round(statistics.mean(found), 1),
        }
    # How much each kind matches, in the whole table and in my rooms (one word of each band).
    with connection.cursor() as cursor:
        for kind, word in (("common", searchable[10]), ("typical", searchable[250]), ("rare", searchable[2000])):
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE room_id = ANY(%s::uuid[])) FROM messaging_message "
                "WHERE to_tsvector('english'::regconfig, content) @@ plainto_tsquery('english'::regconfig, %s) "
                "AND deleted_at IS NULL",
                [[str(r.pk) for r in rooms[:MY_ROOMS]], word],
            )
            everywhere, mine = cursor.fetchone()
            figures["kinds"][kind]["sample_matches_all_rooms"] = everywhere
            figures["kinds"][kind]["sample_matches_my_rooms"] = mine
    # Prepared (planned once per connection) against planned at every call, alternating blocks of the
    # same typical queries in this one run: the ratio is what the figure says.
    ab: dict[bool, list[float]] = {True: [], False: []}
    for block in range(6):
        for prepared in (True, False) if block % 2 else (False, True):
            selectors.PREPARED = prepared
            block_rng = random.Random(block)
            for _ in range(max(REPEAT // 4, 2)):
                ab[prepared].append(timed(me, SearchParams(q=block_rng.choice(searchable[50:500])))[0])
    selectors.PREPARED = True
    figures["prepared_vs_planned_typical_p50_ms"] = [
        round(statistics.median(ab[True]), 1),
        round(statistics.median(ab[False]), 1),
    ]
    # The plan of one typical and one common query, for docs/performance.md.
    for kind, word in (("typical", searchable[250]), ("common", searchable[10])):
        sql, values = statement(word, rooms[:MY_ROOMS], SearchParams(q=word))
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, values)
            plan = [row[0] for row in cursor.fetchall()]
        figures["kinds"][kind]["plan"] = plan
        print(f"plan of a {kind} query:\n  " + "\n  ".join(plan[:40]))
    figures["typical_p95_ms"] = round(percentile(typical, 95), 1)
    figures["typical_p50_ms"] = round(statistics.median(typical), 1)
    print(f"loaded in {load_seconds:.1f} s; search index {index_size}")
    print(f"{'query':<14}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'hits':>8}")
    for kind, row in figures["kinds"].items():
        print(f"{kind:<14}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['max_ms']:>10}{row['mean_hits_on_page']:>8}")
    for kind in ("common", "typical", "rare"):
        row = figures["kinds"][kind]
        print(
            f"a {kind} word matches {row['sample_matches_all_rooms']:,} messages, "
            f"{row['sample_matches_my_rooms']:,} in my rooms"
        )
    print(f"typical queries (all but common): p50 {figures['typical_p50_ms']} ms, p95 {figures['typical_p95_ms']} ms")
    prepared_ms, planned_ms = figures["prepared_vs_planned_typical_p50_ms"]
    print(f"typical p50, prepared {prepared_ms} ms against planned at every call {planned_ms} ms (same run)")
    return figures


if __name__ == "__main__":
    sys.exit(main())
