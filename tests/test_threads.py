"""Request threads kept between requests (core/threads.py)."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from core import threads
from tests.asgi_requests import Request

pytestmark = pytest.mark.asyncio

TIMEOUT = 10  # a bound on waiting for something that must happen, never a measurement
NEVER = 3600.0  # overflow_after, where a test keeps requests waiting for a thread


def recording_app(seen: list[list[int]], inside: asyncio.Event | None = None, go: asyncio.Event | None = None):
    """An ASGI app whose request makes two sync calls (as Django's handler does: request_started,
    then the view or response.close) and records the thread of each."""

    async def app(scope, receive, send):
        calls = [await sync_to_async(threading.get_ident)()]
        if inside is not None and go is not None:
            inside.set()
            await go.wait()
        calls.append(await sync_to_async(threading.get_ident)())
        seen.append(calls)

    return app


async def test_a_requests_sync_calls_share_one_thread_and_the_next_request_reuses_it():
    seen: list[list[int]] = []
    pool = threads.Pool()
    app = threads.serve(recording_app(seen), pool)
    started = threading.active_count()
    for _ in range(5):
        await app({"type": "http"}, None, None)
    assert all(len(set(calls)) == 1 for calls in seen)  # thread-sensitive within a request
    assert len({calls[0] for calls in seen}) == 1  # and the same thread for every request after it
    assert threading.active_count() == started + 1  # one thread started for the five, kept idle
    assert pool.lent == 0 and len(pool.idle) == 1
    close(pool)


async def test_requests_at_the_same_time_each_have_a_thread_of_their_own():
    seen: list[list[int]] = []
    inside = [asyncio.Event() for _ in range(3)]
    go = asyncio.Event()
    pool = threads.Pool()
    requests = [
        asyncio.ensure_future(threads.serve(recording_app(seen, event, go), pool)({"type": "http"}, None, None))
        for event in inside
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in inside)), TIMEOUT)
    assert pool.lent == 3
    go.set()
    await asyncio.wait_for(asyncio.gather(*requests), TIMEOUT)
    assert len({calls[0] for calls in seen}) == 3 and all(len(set(calls)) == 1 for calls in seen)
    assert pool.lent == 0 and len(pool.idle) == 3
    close(pool)


class WatchedPool(threads.Pool):
    """A pool that tells when a request starts waiting for a thread."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.queued: asyncio.Queue = asyncio.Queue()

    def wait(self, lease: threads.Lease) -> None:
        super().wait(lease)
        self.queued.put_nowait(lease)


async def queued(pool: WatchedPool) -> None:
    await asyncio.wait_for(pool.queued.get(), TIMEOUT)


async def test_past_the_pools_threads_a_request_waits_for_one_given_back_in_order():
    """No more than `most` threads run requests' sync code (each takes the GIL from the event
    loop): the next request's sync call waits, on the loop, and runs on a thread given back."""
    seen: list[list[list[int]]] = [[] for _ in range(4)]  # by request: they end in any order
    inside = [asyncio.Event() for _ in range(4)]
    go = asyncio.Event()
    pool = WatchedPool(most=2, overflow_after=NEVER)
    started = threading.active_count()

    def request(index: int) -> asyncio.Future:
        return asyncio.ensure_future(
            threads.serve(recording_app(seen[index], inside[index], go), pool)({"type": "http"}, None, None)
        )

    requests = [request(0), request(1)]
    await asyncio.wait_for(asyncio.gather(inside[0].wait(), inside[1].wait()), TIMEOUT)
    requests += [request(2)]
    await queued(pool)
    requests += [request(3)]
    await queued(pool)
    assert pool.lent == 2 and len(pool.waiting) == 2 and not inside[2].is_set() and not inside[3].is_set()
    assert threading.active_count() == started + 2  # no thread started for the two waiting
    go.set()
    await asyncio.wait_for(asyncio.gather(*requests), TIMEOUT)
    assert all(len(entries) == 1 for entries in seen)
    calls = [entries[0] for entries in seen]
    assert all(len(set(both)) == 1 for both in calls)
    assert {both[0] for both in calls[2:]} <= {both[0] for both in calls[:2]}  # the threads given back
    assert pool.lent == 0 and len(pool.idle) == 2 and not pool.waiting
    assert threading.active_count() == started + 2
    close(pool)


async def test_a_request_that_waited_too_long_for_a_thread_gets_one_of_its_own_for_the_while():
    """Requests holding every thread for long (PostgreSQL frozen: each statement waits its deadline)
    must not hold the others back for longer than `overflow_after`: past it, a thread beyond the
    bound, ended when given back."""
    seen: list[list[int]] = []
    inside = [asyncio.Event() for _ in range(2)]
    go = asyncio.Event()
    pool = threads.Pool(most=1, overflow_after=0.05)
    holding = asyncio.ensure_future(
        threads.serve(recording_app(seen, inside[0], go), pool)({"type": "http"}, None, None)
    )
    await asyncio.wait_for(inside[0].wait(), TIMEOUT)
    late = asyncio.ensure_future(threads.serve(recording_app(seen, inside[1], go), pool)({"type": "http"}, None, None))
    await asyncio.wait_for(inside[1].wait(), TIMEOUT)  # it runs while the first still holds its thread
    assert pool.lent == 2 and not pool.waiting
    go.set()
    await asyncio.wait_for(asyncio.gather(holding, late), TIMEOUT)
    assert seen[0][0] != seen[1][0]
    assert pool.lent == 0 and len(pool.idle) == 1  # the one past the bound ended
    close(pool)


async def test_a_request_cancelled_while_waiting_for_a_thread_leaves_the_queue():
    seen: list[list[int]] = []
    inside = asyncio.Event()
    go = asyncio.Event()
    pool = WatchedPool(most=1, overflow_after=NEVER)
    holding = asyncio.ensure_future(threads.serve(recording_app(seen, inside, go), pool)({"type": "http"}, None, None))
    await asyncio.wait_for(inside.wait(), TIMEOUT)
    waiting = asyncio.ensure_future(threads.serve(recording_app(seen), pool)({"type": "http"}, None, None))
    await queued(pool)
    assert len(pool.waiting) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not pool.waiting  # it gave up its place
    go.set()
    await asyncio.wait_for(holding, TIMEOUT)
    assert len(seen) == 1 and pool.lent == 0 and len(pool.idle) == 1  # its call never ran
    await asyncio.wait_for(threads.serve(recording_app(seen), pool)({"type": "http"}, None, None), TIMEOUT)
    assert seen[1][0] == seen[0][0]
    close(pool)


async def test_a_request_that_waited_for_its_thread_is_tidied_first_there_too(monkeypatch):
    done: list[str] = []
    monkeypatch.setattr(threads, "reset_queries", lambda: done.append("reset_queries"))
    monkeypatch.setattr(threads, "close_old_connections", lambda: done.append("close_old_connections"))
    inside, go = asyncio.Event(), asyncio.Event()
    pool = WatchedPool(most=1, overflow_after=NEVER)
    holding = asyncio.ensure_future(threads.serve(recording_app([], inside, go), pool)({"type": "http"}, None, None))
    await asyncio.wait_for(inside.wait(), TIMEOUT)

    async def app(scope, receive, send):
        await sync_to_async(lambda: done.append("view"))()

    waiting = asyncio.ensure_future(threads.serve(app, pool)({"type": "http"}, None, None))
    await queued(pool)
    del done[:]
    go.set()
    await asyncio.wait_for(asyncio.gather(holding, waiting), TIMEOUT)
    assert done == ["reset_queries", "close_old_connections", "view"]
    close(pool)


async def test_a_thread_still_running_a_cancelled_requests_call_is_not_lent_again():
    """asgiref lets a sync call finish after its request is cancelled: the next request must not
    queue behind it on that thread."""
    release, running = threading.Event(), threading.Event()
    pool = threads.Pool()
    blocked: list[int] = []

    def block() -> None:
        blocked.append(threading.get_ident())
        running.set()
        release.wait(TIMEOUT)

    async def app(scope, receive, send):
        await sync_to_async(block)()

    request = asyncio.ensure_future(threads.serve(app, pool)({"type": "http"}, None, None))
    await asyncio.wait_for(asyncio.to_thread(running.wait, TIMEOUT), TIMEOUT)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert pool.lent == 0 and not pool.idle  # the busy thread ends once its call is done
    seen: list[list[int]] = []
    await asyncio.wait_for(threads.serve(recording_app(seen), pool)({"type": "http"}, None, None), TIMEOUT)
    assert seen[0][0] != blocked[0]  # answered on another thread while the first is still busy
    release.set()
    close(pool)


@pytest.mark.django_db(transaction=True)
async def test_a_request_through_django_gives_its_database_connection_back_with_its_thread(make_user):
    """The real handler and middleware, as config.asgi serves them: the view reads the database on
    the borrowed thread, and request_finished gives that connection back to the pool, on that
    thread, before the thread waits idle for the next request."""
    user = await sync_to_async(make_user)("reader")
    # A sync DRF view: it reads the user and the rooms on the borrowed thread.
    request = Request(ASGIHandler(), None, "/api/v1/rooms/", str(AccessToken.for_user(user)))
    await asyncio.wait_for(request.task, TIMEOUT)
    assert request.status() == 200
    assert threads.pool.lent == 0 and threads.pool.idle
    thread = threads.pool.idle[-1]
    # The connection that thread used is closed (back in Django's pool), seen from that thread.
    assert await asyncio.wrap_future(thread.submit(lambda: connection.connection is None))


@pytest.mark.django_db(transaction=True)
async def test_a_request_that_runs_no_sync_code_borrows_no_thread(make_user):
    """The socket ticket (asked at every reconnect) is answered on the event loop: Django's
    request_started and the response's close() no longer take it to a thread and back."""
    user = await sync_to_async(make_user)("ticketed")
    pool = threads.Pool()
    request = Request(ASGIHandler(), pool, "/api/v1/auth/ws-ticket/", str(AccessToken.for_user(user)), method="POST")
    await asyncio.wait_for(request.task, TIMEOUT)
    assert request.status() == 200 and b'"ticket"' in request.body()
    assert pool.lent == 0 and not pool.idle  # never borrowed one


async def test_a_borrowed_thread_is_tidied_as_request_started_did_before_the_requests_sync_code(monkeypatch):
    """What Django's request_started receivers did (serve() disconnects them) runs on the request's
    thread when it borrows one, before its first sync call there."""
    done: list[tuple[str, int]] = []
    monkeypatch.setattr(threads, "reset_queries", lambda: done.append(("reset_queries", threading.get_ident())))
    monkeypatch.setattr(
        threads, "close_old_connections", lambda: done.append(("close_old_connections", threading.get_ident()))
    )

    async def app(scope, receive, send):
        await sync_to_async(lambda: done.append(("view", threading.get_ident())))()
        await sync_to_async(lambda: done.append(("close", threading.get_ident())))()

    pool = threads.Pool()
    await threads.serve(app, pool)({"type": "http"}, None, None)
    assert [name for name, _ in done] == ["reset_queries", "close_old_connections", "view", "close"]
    assert len({thread for _, thread in done}) == 1 and done[0][1] != threading.get_ident()
    close(pool)


async def test_a_close_after_the_answer_runs_on_the_loop_only_when_no_thread_was_borrowed():
    """After the response's last body message, a request that ran sync code closes on its thread;
    one that ran none closes where it is, on the event loop."""
    closed: list[int] = []

    def app_with(sync_view: bool):
        async def app(scope, receive, send):
            if sync_view:
                await sync_to_async(lambda: None)()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            await sync_to_async(lambda: closed.append(threading.get_ident()))()

        return app

    async def send(message):
        pass

    pool = threads.Pool()
    await threads.serve(app_with(sync_view=True), pool)({"type": "http"}, None, send)
    await threads.serve(app_with(sync_view=False), pool)({"type": "http"}, None, send)
    assert closed[0] != threading.get_ident() and closed[1] == threading.get_ident()
    assert len(pool.idle) == 1  # the one borrowed by the first request
    close(pool)


async def test_request_finished_has_only_djangos_receivers_which_may_run_on_the_loop():
    """A request that borrowed no thread runs request_finished's receivers on the event loop
    (core.threads): they must never block. Django's three only tidy the thread's own database
    connections (none there), its caches (a no-op for Redis) and its URL conf. A receiver added
    later fails here until it has been checked for that and added to this list."""
    sync_receivers, async_receivers = request_finished._live_receivers(ASGIHandler)
    names = {f"{receiver.__module__}.{receiver.__qualname__}" for receiver in [*sync_receivers, *async_receivers]}
    assert names <= {
        "django.db.close_old_connections",
        "django.core.cache.close_caches",
        "django.core.handlers.base.reset_urlconf",
    }


def close(pool: threads.Pool) -> None:
    for thread in pool.idle:
        thread.shutdown()
    pool.idle.clear()


@pytest.mark.django_db(transaction=True)
async def test_one_sockets_slow_read_does_not_hold_up_anothers(make_user, monkeypatch):
    """The sockets' database work runs on a few threads (core.threads.database_sync_to_async), not
    on asgiref's one thread for the whole process: a history page that takes its time (a large
    room, a slow disk) must not queue every other socket's sync behind it."""
    from messaging import consumers, selectors
    from rooms.services import room_create
    from tests.sockets import connect, receive_type

    slow, quick = await sync_to_async(make_user)("slow"), await sync_to_async(make_user)("quick")
    room = await sync_to_async(room_create)(creator=slow, name="Reads")
    await sync_to_async(room.memberships.create)(user=quick, role="member")
    inside, release = threading.Event(), threading.Event()
    messages_page = selectors.messages_page

    def held_page(*, user, **kwargs):
        if user.pk == slow.pk:
            inside.set()
            release.wait(TIMEOUT)
        return messages_page(user=user, **kwargs)

    monkeypatch.setattr(consumers.selectors, "messages_page", held_page)
    first, _ = await connect(slow)
    second, _ = await connect(quick)
    try:
        await first.send_json_to({"type": "history", "room": str(room.pk)})
        await asyncio.wait_for(asyncio.to_thread(inside.wait, TIMEOUT), TIMEOUT)
        await second.send_json_to({"type": "sync", "room": str(room.pk), "after_sequence": 0})
        assert (await receive_type(second, "sync.batch"))["room"] == str(room.pk)  # while the other waits
        assert not release.is_set()
        release.set()
        assert (await receive_type(first, "history.page"))["room"] == str(room.pk)
    finally:
        release.set()
        await first.disconnect()
        await second.disconnect()
