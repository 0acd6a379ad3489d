import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from core.errors import ApplicationError, Forbidden
from messaging import partitions
from messaging.models import Message, SentMessageKey
from messaging.services import message_send
from rooms.models import Membership, Room
from rooms.services import room_create


def _in_thread(fn):
    """Run fn in a worker thread with its own database connection, closed afterwards."""

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return run


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_senders_get_gapless_ordered_unique_sequences(make_user):
    senders = [make_user(f"sender{i}") for i in range(8)]
    room = room_create(creator=senders[0], name="Busy")
    for user in senders[1:]:
        Membership.objects.create(room=room, user=user)
    start = threading.Barrier(len(senders))

    @_in_thread
    def burst(user):
        start.wait()
        return [
            message_send(user=user, room_id=room.pk, content=f"{user.username} {i}", client_msg_id=uuid.uuid4())[0]
            for i in range(25)
        ]

    with ThreadPoolExecutor(len(senders)) as pool:
        results = [m for batch in pool.map(burst, senders) for m in batch]

    sequences = sorted(m.sequence for m in results)
    assert sequences == list(range(1, 201))
    stored = list(Message.objects.filter(room=room).order_by("sequence").values_list("sequence", "created_at"))
    assert [s for s, _ in stored] == list(range(1, 201))
    # Commit order equals sequence order, so creation times never go backwards along the sequence.
    assert all(a[1] <= b[1] for a, b in zip(stored, stored[1:], strict=False))
    room.refresh_from_db()
    assert room.last_sequence == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_of_one_client_msg_id_store_exactly_one_row(make_user):
    ada = make_user("ada")
    room = room_create(creator=ada, name="Dup")
    key = uuid.uuid4()
    start = threading.Barrier(6)

    @_in_thread
    def resend(_):
        start.wait()
        return message_send(user=ada, room_id=room.pk, content="once", client_msg_id=key)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(resend, range(6)))

    assert len({m.id for m, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Message.objects.filter(room=room).count() == 1
    assert SentMessageKey.objects.filter(sender=ada, client_msg_id=key).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_send_leaves_no_hole(make_user):
    ada, viewer = make_user("ada"), make_user("viewer")
    room = room_create(creator=ada, name="Holes")
    Membership.objects.create(room=room, user=viewer, role="viewer")
    message_send(user=ada, room_id=room.pk, content="1", client_msg_id=uuid.uuid4())
    with pytest.raises(ApplicationError) as too_large:
        message_send(user=ada, room_id=room.pk, content="x" * 5000, client_msg_id=uuid.uuid4())
    assert too_large.value.code == "too_large"
    with pytest.raises(Forbidden):
        message_send(user=viewer, room_id=room.pk, content="no", client_msg_id=uuid.uuid4())
    message, _ = message_send(user=ada, room_id=room.pk, content="2", client_msg_id=uuid.uuid4())
    assert message.sequence == 2


@pytest.mark.django_db(transaction=True)
def test_a_send_creates_its_partition_when_it_is_missing(make_user):
    ada = make_user("ada")
    room = room_create(creator=ada, name="Partitions")
    today = dt.datetime.now(dt.UTC).strftime(partitions.NAME_FORMAT)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE messaging_message_{today}")
    partitions._known_days.clear()

    message, created = message_send(user=ada, room_id=room.pk, content="still works", client_msg_id=uuid.uuid4())

    assert created and Message.objects.get(id=message.id).content == "still works"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"messaging_message_{today}"])
        assert cursor.fetchone()[0] is not None


@pytest.mark.django_db(transaction=True)
def test_partitions_are_created_a_week_ahead_and_creation_is_idempotent():
    assert partitions.partitions_create_ahead() == []  # migrate already made them
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'messaging_message'::regclass")
        assert cursor.fetchone()[0] >= 7


@pytest.mark.django_db
def test_room_deletion_removes_its_messages(make_user):
    ada = make_user("ada")
    room = room_create(creator=ada, name="Doomed", kind=Room.Kind.PRIVATE)
    message_send(user=ada, room_id=room.pk, content="bye", client_msg_id=uuid.uuid4())
    room.delete()
    assert not Message.objects.exists()
