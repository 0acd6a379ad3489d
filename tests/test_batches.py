"""Work asked for at once is done together (core.batches), and a connection storm's reads and first
presence beats share statements and script calls (core.asyncdb.Lookups, presence.services)."""

import asyncio
import contextvars

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from core import asyncdb
from core.batches import Answers, Batches
from tests.conftest import room_with
from tests.sockets import connect_app, receive_type


class Recorder:
    """A batch runner that records its batches and holds each one until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, requests: list[int]) -> list[int]:
        self.batches.append(requests)
        self.started.set()
        await self.release.wait()
        return [request * 10 for request in requests]


@pytest.mark.asyncio
async def test_requests_of_one_tick_go_together_and_those_made_meanwhile_go_next():
    recorder = Recorder()
    batches = Batches(recorder.run)

    first = [asyncio.create_task(batches.submit(n)) for n in (1, 2, 3)]
    await recorder.started.wait()  # the first batch is running
    later = [asyncio.create_task(batches.submit(n)) for n in (4, 5)]
    # Released now, the running batch resumes only after the two tasks above have queued their
    # requests: the loop runs ready callbacks in the order they were scheduled.
    recorder.release.set()

    assert await asyncio.gather(*first, *later) == [10, 20, 30, 40, 50]
    assert recorder.batches == [[1, 2, 3], [4, 5]]
    assert batches.runner is None  # idle again: the next request starts a batch of its own


@pytest.mark.asyncio
async def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_still_runs():
    calls = []

    async def run(requests: list[str]) -> list[str]:
        calls.append(requests)
        if "bad" in requests:
            raise ConnectionError("store away")
        return requests

    batches = Batches(run)
    results = await asyncio.gather(batches.submit("bad"), batches.submit("ok"), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert await batches.submit("fine") == "fine"
    assert calls == [["bad", "ok"], ["fine"]]


@pytest.mark.asyncio
async def test_a_request_whose_caller_went_away_does_not_break_the_others():
    recorder = Recorder()
    batches = Batches(recorder.run)
    gone, kept = asyncio.create_task(batches.submit(1)), asyncio.create_task(batches.submit(2))
    await recorder.started.wait()
    gone.cancel()
    recorder.release.set()
    assert await kept == 20
    assert gone.cancelled()


@pytest.mark.asyncio
async def test_answers_go_out_in_the_order_their_frames_came_whenever_their_results_do():
    """A socket's answers (core.batches.Answers) follow its frames' order, not the order in which
    their writes finish; an error is an answer like any other; settle waits for them all."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]
    sent: list[tuple[str, bool]] = []  # each answer, and whether the first write was done by then
    answers = Answers()

    async def answer(result: object) -> None:
        sent.append((str(result), futures[0].done()))

    for future in futures:
        answers.add(future, answer)
    futures[2].set_result("third")
    futures[1].set_exception(ValueError("second"))
    settled = asyncio.create_task(answers.settle())
    futures[0].set_result("first")
    await settled
    assert sent == [("first", True), ("second", True), ("third", True)]
    assert answers.task is None and not answers.queue


@pytest.mark.asyncio
async def test_cancelled_answers_leave_their_writes_be():
    """A socket that closes cancels its answers; the write its answering task is waiting for
    (a future shared with the batch) is not cancelled, so the batch still answers it."""
    loop = asyncio.get_running_loop()
    done, pending = loop.create_future(), loop.create_future()
    done.set_result("written before")
    answered = asyncio.Event()

    async def first(result: object) -> None:
        answered.set()  # the task goes on to wait for `pending` before the test runs again

    async def second(result: object) -> None:
        raise AssertionError("answered after the socket closed")

    answers = Answers()
    answers.add(done, first)
    answers.add(pending, second)
    await answered.wait()
    task = answers.task
    assert task is not None and list(answers.queue) == [(pending, second)]
    answers.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pending.cancelled()
    pending.set_result("written")
    assert answers.task is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_lookups_give_each_key_its_rows_from_one_statement(make_user, sql_statements):
    ada, bob = await database_sync_to_async(lambda: (make_user("ada"), make_user("bob")))()
    await database_sync_to_async(lambda: (room_with(ada, "a"), room_with(ada, "b"), room_with(bob, "c")))()
    lookups = asyncdb.Lookups("SELECT user_id, room_id FROM rooms_membership WHERE user_id = ANY(%s)", "user_id")

    with sql_statements.recording():
        ada_rows, bob_rows, nobody_rows, ada_again = await asyncio.gather(
            lookups.get(ada.pk), lookups.get(bob.pk), lookups.get(-1), lookups.get(ada.pk)
        )

    assert len(sql_statements) == 1
    assert sorted(row["user_id"] for row in ada_rows) == [ada.pk, ada.pk] and ada_again == ada_rows
    assert [row["user_id"] for row in bob_rows] == [bob.pk]
    assert nobody_rows == []


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sockets_that_connect_together_share_their_reads_and_their_first_beat(make_user, monkeypatch):
    """Eight browsers connecting at once with their session cookies: every one is signed in as
    itself and gets its own rooms, with fewer reads and presence script calls than one each
    (alone, a socket reads its session, its user and its rooms, and makes one script call)."""
    from presence import services as presence

    people = await database_sync_to_async(lambda: [make_user(f"p{n}") for n in range(8)])()
    rooms = await database_sync_to_async(lambda: [room_with(person, f"r{n}") for n, person in enumerate(people)])()
    cookies = await database_sync_to_async(lambda: [session_cookie(person) for person in people])()
    reads, updates = [], []
    fetchall, update = asyncdb.fetchall, presence._update

    async def counting_fetchall(statement, params, **kwargs):
        if kwargs.get("reads"):
            reads.append(statement)
        return await fetchall(statement, params, **kwargs)

    async def counting_update(beats, known_rooms=None):
        updates.append(len(beats))
        return await update(beats, known_rooms)

    monkeypatch.setattr(asyncdb, "fetchall", counting_fetchall)
    monkeypatch.setattr(presence, "_update", counting_update)

    sockets = await asyncio.gather(
        *(connect_app(headers=[(b"cookie", cookie), (b"origin", b"http://localhost")]) for cookie in cookies)
    )
    try:
        for socket, person, room in zip(sockets, people, rooms, strict=True):
            ready = await receive_type(socket, "session.ready")
            assert ready["user"] == person.pk and list(ready["rooms"]) == [str(room.pk)]
            online = await receive_type(socket, "presence")  # its own, announced to its room after its beat
            assert (online["user"]["id"], online["status"]) == (person.pk, "online")
        assert sum(updates) == len(people) and len(updates) < len(people)
        assert len(reads) < 3 * len(people)
    finally:
        for socket in sockets:
            await socket.disconnect()


@pytest.mark.asyncio
async def test_a_batch_runs_in_a_context_of_its_own_and_a_cancelled_runner_leaves_no_caller_waiting():
    """The runner does not carry its first caller's context (a socket's log bindings, a request's
    deadline); cancelled (the loop closing), it starts nothing more, and the requests it will never
    run are cancelled rather than left waiting."""
    caller = contextvars.ContextVar("caller", default="none")
    seen: list[str] = []
    recorder = Recorder()

    async def run(requests: list[int]) -> list[int]:
        seen.append(caller.get())
        return await recorder.run(requests)

    batches = Batches(run)
    caller.set("first socket")
    running = batches.put(1)
    await recorder.started.wait()
    waiting = batches.put(2)
    assert batches.runner is not None
    batches.runner.cancel()
    await asyncio.wait([running, waiting], timeout=10)  # a bound, not a wait: both end at once
    assert running.cancelled() and waiting.cancelled()
    assert seen == ["none"] and recorder.batches == [[1]]
    assert batches.runner is None and not batches.waiting
