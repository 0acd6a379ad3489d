"""What mentions and notifications cost (docs/notifications.md, docs/performance.md):

    .venv/bin/python scripts/stack.py test -- .venv/bin/python bench/notify.py

- the send path's check for mentions (messaging.mentions.names_in) on texts without an '@' (every
  message) and with one, under timeit;
- message_send (the REST driver: the one _SEND statement, commit, the event) of plain texts, of
  texts naming a member (the names resolved inside _SEND, then the notification after commit:
  recipients, the INSERT, the socket event), alternating in blocks within one run;
- the durable pending row's cost (docs/notifications.md, "Durability"): message_send naming a
  member with the notification step switched off, so only the send's statement is timed, with
  _SEND as it is (one more INSERT, of the pending row, inside the statement) and with that INSERT
  cut out of it, alternating send by send (medians);
- the send statement prepared on Django's connection (core.sql; planned once) against planned at
  every call (psycopg's prepare_threshold None, as Django leaves it, and as it was until
  2026-12-04), alternating blocks of plain sends: milliseconds and PostgreSQL's CPU per send;
- one @room in a room of MEMBERS members: the notification step alone after commit (the recipients
  statement, the one INSERT of MEMBERS - 1 items, the unread counts, MEMBERS - 1 socket events
  queued to Redis), best and median of a few.

Writes bench/results/notify.json. Only ratios within one run mean much on a shared machine.
"""

import json
import os
import re
import statistics
import sys
import time
import timeit
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PARLEY_TESTING", "1")

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import User  # noqa: E402
from messaging import services as messaging  # noqa: E402
from messaging.mentions import names_in  # noqa: E402
from messaging.services import message_send  # noqa: E402
from notifications import services as notifications  # noqa: E402
from notifications.models import Notification, PendingNotification  # noqa: E402
from rooms.models import Membership, Room  # noqa: E402
from rooms.services import room_create  # noqa: E402
from workspaces.services import default_workspace  # noqa: E402

MEMBERS = int(os.environ.get("MEMBERS", "1000"))
SENDS_PER_BLOCK = int(os.environ.get("SENDS_PER_BLOCK", "100"))
BLOCKS_EACH = int(os.environ.get("BLOCKS_EACH", "5"))
DAY_MESSAGES = int(os.environ.get("DAY_MESSAGES", "40000"))
PLAIN = "I think the deploy went fine, checking the dashboards now"


def ns_per_call(text: str) -> float:
    number = 200_000
    return min(timeit.repeat(lambda: names_in(text), number=number, repeat=5)) / number * 1e9


def send_block(user: User, room_id: object, text: str) -> float:
    started = time.perf_counter()
    for _ in range(SENDS_PER_BLOCK):
        message_send(user=user, room_id=room_id, content=text, client_msg_id=uuid.uuid4())
    return (time.perf_counter() - started) / SENDS_PER_BLOCK * 1e3


def fill_the_day(owner: User) -> None:
    """DAY_MESSAGES messages of today in 100 rooms of their own, then ANALYZE."""
    rooms = Room.objects.bulk_create(
        [Room(name=f"notify bench day {n}", created_by=owner, workspace=default_workspace()) for n in range(100)]
    )
    per_room = DAY_MESSAGES // len(rooms)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO messaging_message
                (id, room_id, sequence, changed_sequence, sender_id, content, client_msg_id, created_at)
            SELECT gen_random_uuid(), r.id, s.n, s.n, %(owner)s, 'filler ' || s.n, gen_random_uuid(),
                   now() - make_interval(secs => (%(per_room)s - s.n) * 0.01)
              FROM unnest(%(rooms)s::uuid[]) AS r(id), generate_series(1, %(per_room)s) AS s(n)
            """,
            {"owner": owner.pk, "per_room": per_room, "rooms": [str(room.pk) for room in rooms]},
        )
        cursor.execute(
            "UPDATE rooms_room SET last_sequence = %s WHERE id = ANY(%s::uuid[])",
            [per_room, [str(room.pk) for room in rooms]],
        )
        cursor.execute("ANALYZE")


def main() -> int:
    call_command("migrate", interactive=False, verbosity=0)
    tag = uuid.uuid4().hex[:6]
    owner = User.objects.create_user(f"nb-owner-{tag}", password=None)
    other = User.objects.create_user(f"nb-other-{tag}", password=None)
    small = room_create(creator=owner, name="notify bench", kind="private")
    Membership.objects.create(room=small, user=other, role="member")
    mention = f"@{other.username} I think the deploy went fine, checking the dashboards now"

    figures: dict[str, float] = {
        "names_in_ns_plain": round(ns_per_call(PLAIN), 1),
        "names_in_ns_mention": round(ns_per_call(mention), 1),
    }

    send_block(owner, small.pk, PLAIN)  # warm up
    plain, named = [], []
    for _ in range(BLOCKS_EACH):
        plain.append(send_block(owner, small.pk, PLAIN))
        named.append(send_block(owner, small.pk, mention))
    figures["send_ms_plain"] = round(statistics.median(plain), 3)
    figures["send_ms_with_a_mention_and_its_notification"] = round(statistics.median(named), 3)

    # Prepared (planned once per connection) against planned at every call, in alternating blocks,
    # once the day holds DAY_MESSAGES messages, analyzed (the planner's choice depends on it:
    # docs/performance.md, "PostgreSQL planned every send once the day was analyzed").
    fill_the_day(owner)
    raw = connection.connection
    backend = psutil.Process(raw.info.backend_pid)  # PostgreSQL's process serving this connection
    threshold = raw.prepare_threshold
    assert threshold is not None, "core.sql prepares on this connection (settings without prepare_threshold)"
    ab: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    try:
        for block in range(2 * BLOCKS_EACH):
            for prepared in (True, False) if block % 2 else (False, True):
                raw.prepare_threshold = threshold if prepared else None
                cpu = sum(backend.cpu_times()[:2])
                ms = send_block(owner, small.pk, PLAIN)
                ab[prepared].append((ms, (sum(backend.cpu_times()[:2]) - cpu) * 1e3 / SENDS_PER_BLOCK))
    finally:
        raw.prepare_threshold = threshold
    for prepared, label in ((True, "prepared"), (False, "planned_every_call")):
        figures[f"send_ms_{label}"] = round(statistics.median(ms for ms, _ in ab[prepared]), 3)
        figures[f"send_postgres_cpu_ms_{label}"] = round(statistics.median(cpu for _, cpu in ab[prepared]), 3)

    # The pending row alone: the same send, its notification step off, with and without the INSERT.
    with_row = messaging._SEND
    without_row = re.sub(r"\), owed AS \(.*?\n\)\n", ")\n", with_row, flags=re.DOTALL)
    assert without_row != with_row and "owed AS" not in without_row
    fast_path = notifications.notify_committed
    notifications.notify_committed = lambda *, messages: None
    try:
        kept: list[float] = []
        cut: list[float] = []
        for n in range(SENDS_PER_BLOCK * BLOCKS_EACH):  # send by send, alternating which goes first
            for statement, times in ((with_row, kept), (without_row, cut))[:: 1 if n % 2 else -1]:
                messaging._SEND = statement
                started = time.perf_counter()
                message_send(user=owner, room_id=small.pk, content=mention, client_msg_id=uuid.uuid4())
                times.append((time.perf_counter() - started) * 1e3)
    finally:
        messaging._SEND = with_row
        notifications.notify_committed = fast_path
        PendingNotification.objects.all().delete()
    figures["send_ms_with_a_mention_statement_with_pending_row"] = round(statistics.median(kept), 3)
    figures["send_ms_with_a_mention_statement_without_pending_row"] = round(statistics.median(cut), 3)

    big = room_create(creator=owner, name="notify bench big", kind="private")
    users = User.objects.bulk_create(
        [User(username=f"nb-{tag}-{n}", password="!") for n in range(MEMBERS - 1)], batch_size=1000
    )
    Membership.objects.bulk_create([Membership(room=big, user=user, role="member") for user in users], batch_size=1000)
    timings = []
    for _ in range(5):
        message, _ = message_send(user=owner, room_id=big.pk, content="@room " + PLAIN, client_msg_id=uuid.uuid4())
        Notification.objects.filter(message_id=message.id).delete()  # as if just sent: time the step alone
        PendingNotification.objects.create(
            message_id=message.id, message_created_at=message.created_at, room=big, number=message.sequence
        )
        started = time.perf_counter()
        notifications._notify([notifications.Owed(message, message.sequence)])
        timings.append((time.perf_counter() - started) * 1e3)
        assert Notification.objects.filter(message_id=message.id).count() == MEMBERS - 1
    figures["room_mention_members"] = MEMBERS
    figures["room_mention_notify_ms_best"] = round(min(timings), 1)
    figures["room_mention_notify_ms_median"] = round(statistics.median(timings), 1)

    for name, value in figures.items():
        print(f"{name:<48}{value:>12}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "notify.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
