"""Convergence of board documents: random concurrent edits from three pycrdt clients, delivered to
the server in random orders and with duplicates, end with the same document everywhere (the
JSON rendering compared); and REST-only writes without an open document."""

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boards import crdt, documents
from boards.models import BoardUpdate
from boards.services import board_create, board_update_apply
from rooms.models import Room
from tests.boards_helpers import Client, b64
from tests.conftest import room_with

pytestmark = [pytest.mark.django_db]

ELEMENT_IDS = ["a", "b", "c", "d"]
PROPERTIES = {
    "x": st.integers(-1000, 1000),
    "y": st.integers(-1000, 1000),
    "fill": st.sampled_from(["red", "green", "blue", None]),
    "text": st.text(max_size=8),
    "z": st.sampled_from(["a0", "a1", "b0"]),
}
# One step of the run: a client edits (a property of an element, or deletes it), a client's
# queued update reaches the server (maybe again), or a client receives what the server has.
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("edit"),
            st.integers(0, 2),
            st.sampled_from(ELEMENT_IDS),
            st.sampled_from([*PROPERTIES, "delete"]),
            st.data(),
        ),
        st.tuples(st.just("deliver"), st.integers(0, 2), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("receive"), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=40,
)


@pytest.fixture
def board_of(make_user):
    people: dict = {}

    def make():
        if not people:
            people["ada"] = make_user("ada")
            people["room"] = room_with(people["ada"], "Convergence", Room.Kind.PRIVATE)
        return people["ada"], board_create(user=people["ada"], room_id=people["room"].pk, title="B")

    return make


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps, final_order=st.randoms(use_true_random=False))
def test_random_concurrent_edits_delivered_in_any_order_with_duplicates_converge(board_of, steps, final_order):
    user, board = board_of()
    live = documents.open(board.pk)  # the server's document, as while a socket has the board open
    try:
        clients = [Client() for _ in range(3)]
        queued: list[list[tuple[uuid.UUID, bytes]]] = [[], [], []]  # sent, maybe not yet delivered
        delivered: list[tuple[uuid.UUID, bytes]] = []

        def deliver(key: uuid.UUID, update: bytes) -> None:
            stored, created = board_update_apply(user=user, board_id=board.pk, update=b64(update), client_update_id=key)
            assert created == ((key, update) not in delivered)
            if created:
                delivered.append((key, update))

        def receive(client: Client) -> None:
            for row in BoardUpdate.objects.filter(board=board).order_by("sequence"):
                client.apply(bytes(row.update))

        for step in steps:
            if step[0] == "edit":
                _, who, element, prop, data = step
                client = clients[who]
                if prop == "delete":
                    update = client.delete(element)
                else:
                    value = data.draw(PROPERTIES[prop])
                    update = client.edit(element, **{prop: value, "type": "rect"})
                queued[who].append((uuid.uuid4(), update))
            elif step[0] == "deliver":
                _, who, index, again = step
                if queued[who]:
                    key, update = queued[who][index % len(queued[who])]  # any order, not the client's
                    deliver(key, update)
                    if again:
                        deliver(key, update)  # a resend: same ack, stored once
            else:
                receive(clients[step[1]])
        # Everything reaches the server at last, in a random order, some twice; everyone syncs.
        rest = [item for items in queued for item in items]
        final_order.shuffle(rest)
        for key, update in rest + rest[: len(rest) // 3]:
            deliver(key, update)
        for client in clients:
            receive(client)

        sequences = list(
            BoardUpdate.objects.filter(board=board).order_by("sequence").values_list("sequence", flat=True)
        )
        assert sequences == list(range(1, len(delivered) + 1))  # gapless, each update once
        renders = [client.render() for client in clients]
        assert renders[0] == renders[1] == renders[2]
        with live.lock:
            server = crdt.render(documents.catch_up(live, len(delivered)))
        assert server == renders[0]
        assert crdt.render(documents.load(board.pk, len(delivered))[0]) == renders[0]  # and from the database
    finally:
        documents.close(board.pk)


def test_the_service_applies_updates_without_sockets(make_user):
    """REST-only writes: a document loaded for the write and dropped after it."""
    owner = make_user("solo")
    room = room_with(owner, "Solo")
    board = board_create(user=owner, room_id=room.pk, title="B")
    ada = Client()
    first, created = board_update_apply(
        user=owner, board_id=board.pk, update=b64(ada.edit("x", x=1)), client_update_id=uuid.uuid4()
    )
    assert created and first.sequence == 1 and documents.peek(board.pk) is None
    second, _ = board_update_apply(
        user=owner, board_id=board.pk, update=ada.edit("x", x=2), client_update_id=uuid.uuid4()
    )
    assert second.sequence == 2
    assert crdt.render(documents.load(board.pk, 2)[0]) == ada.render()


def test_updates_that_arrive_before_what_they_depend_on_are_kept_until_it_comes(make_user):
    owner = make_user("solo")
    room = room_with(owner, "Solo")
    board = board_create(user=owner, room_id=room.pk, title="B")
    ada = Client()
    first, second = ada.edit("x", x=1, type="rect"), ada.edit("x", x=2)
    for update in (second, first):
        board_update_apply(user=owner, board_id=board.pk, update=update, client_update_id=uuid.uuid4())
    assert crdt.render(documents.load(board.pk, 2)[0]) == ada.render()
