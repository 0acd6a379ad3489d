"""A waiting long-poll holds no thread (transports/api.py; core/staticfiles.py).

Under ASGI, Django runs a synchronous-only middleware (WhiteNoise 6's) and everything after it down
to the view from a worker thread that waits for the async rest: a long-poll waiting 25 s would hold
that thread blocked the whole time. Here every request of Django's real ASGI handler and middleware
shares ONE worker thread (a server with the smallest possible thread pool): while several long-polls
wait, a normal request must still be answered, and the polls must still be waiting when it is.

Even without a blocked thread, each request keeps the worker thread it borrowed (core.threads)
until its response is sent; a waiting long-poll and an open event stream give theirs back
(core.threads.hand_back): the second test.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.db import database_sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import user_set_active
from core import threads
from core.events import user_group
from core.hub import get_hub
from tests.asgi_requests import Request
from tests.conftest import await_until
from transports.streams import Stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TIMEOUT = 10  # a bound on waiting for something that must happen, never a measurement


async def test_waiting_long_polls_hold_no_thread_so_a_normal_request_is_answered_meanwhile(make_user, settings):
    settings.TRANSPORT_POLL_WAIT_SECONDS = 600  # they wait until the test ends them

    def world():  # users in no room: no presence event of another ends a poll early
        users = [make_user(f"poller{n}") for n in range(4)]
        return users, [str(AccessToken.for_user(user)) for user in users]

    users, tokens = await database_sync_to_async(world)()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="only-worker")
    handler = ASGIHandler()
    polls: list[Request] = []
    try:
        for token in tokens:
            start = Request(handler, executor, "/api/v1/poll/", token)
            await asyncio.wait_for(start.task, TIMEOUT)  # a fresh poll answers at once (session.ready)
            assert start.status() == 200, start.body()
            cursor = json.loads(start.body())["cursor"]
            polls.append(Request(handler, executor, "/api/v1/poll/", token, f"cursor={cursor}"))

        def waiting() -> bool:  # every poll follows its user live (and waits: nothing happens)
            groups = get_hub().groups
            return all(any(isinstance(m, Stream) for m in groups.get(user_group(u.pk), ())) for u in users)

        await await_until(waiting, what="every long-poll to follow its user")
        me = Request(handler, executor, "/api/v1/me/", tokens[0])
        await asyncio.wait_for(me.task, TIMEOUT)  # answered while the polls wait
        assert me.status() == 200 and b'"username":"poller0"' in me.body().replace(b" ", b"")
        assert not any(poll.task.done() for poll in polls)  # the polls were waiting all along
    finally:
        for poll in polls:
            poll.cut()
        await asyncio.wait([poll.task for poll in polls] or [asyncio.sleep(0)], timeout=TIMEOUT)
        await asyncio.get_running_loop().run_in_executor(executor, connections.close_all)
        executor.shutdown()


async def test_a_waiting_long_poll_or_event_stream_keeps_no_thread_of_its_own(make_user, settings):
    """As uvicorn runs it, each request borrows a worker thread from the process's pool
    (core.threads) for its middleware and sync calls, until the response is sent. A long-poll or an
    event stream gives its thread back before it waits."""
    settings.TRANSPORT_POLL_WAIT_SECONDS = 600

    def world():  # users in no room: no presence event of another ends a poll early
        users = [make_user(f"poller{n}") for n in range(4)]
        return users, [str(AccessToken.for_user(user)) for user in users]

    users, tokens = await database_sync_to_async(world)()
    handler = ASGIHandler()
    polls: list[Request] = []
    sse: Request | None = None
    try:
        for token in tokens[:3]:
            start = Request(handler, None, "/api/v1/poll/", token)
            await asyncio.wait_for(start.task, TIMEOUT)
            assert start.status() == 200, start.body()
            polls.append(Request(handler, None, "/api/v1/poll/", token, f"cursor={json.loads(start.body())['cursor']}"))

        def waiting() -> bool:
            groups = get_hub().groups
            return all(any(isinstance(m, Stream) for m in groups.get(user_group(u.pk), ())) for u in users[:3])

        await await_until(waiting, what="every long-poll to follow its user")
        sse = Request(handler, None, "/api/v1/events/", tokens[3])  # and an event stream
        await await_until(lambda: b"session.ready" in sse.body(), what="the stream to start")
        # While they wait, no request has a thread: each was given back.
        await await_until(lambda: threads.pool.lent == 0, what="the polls' threads to be given back")
        me = Request(handler, None, "/api/v1/me/", tokens[0])
        await asyncio.wait_for(me.task, TIMEOUT)
        assert me.status() == 200
        assert not any(poll.task.done() for poll in polls)
        # An event still ends them as usual (the rest of each request gets a fresh thread): here the
        # revocation of the users' credentials, which answers a poll and ends a stream.
        for user in users:
            await database_sync_to_async(user_set_active)(user=user, active=False)
        for request in [*polls, sse]:
            await asyncio.wait_for(request.task, TIMEOUT)
            assert request.status() == 200 and b"session.revoked" in request.body()
    finally:
        requests = [*polls, *([sse] if sse is not None else [])]
        for request in requests:
            request.cut()
        await asyncio.wait([r.task for r in requests] or [asyncio.sleep(0)], timeout=TIMEOUT)
