"""`GET /api/v1/events/` (Server-Sent Events) and `GET /api/v1/poll/` (long-polling): the socket's
events for clients that cannot keep a WebSocket (docs/protocol.md, "Server-Sent Events and
long-polling"), and, with `?boards=<id>,<id>`, those boards' events as a socket that joined them
gets them. Writes (sends, edits, receipts, typing, board updates) go over the REST endpoints.

Both are async views: a stream costs a hub membership and a few objects, no thread. Who is
asking: `Authorization: Bearer <JWT>` (mobile) or the session cookie; on the cookie path an
`Origin` header, when the browser sends one, must name one of ALLOWED_HOSTS, as for the socket
(accounts.middleware), so no other site's page rides on the cookie.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlparse

from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views import View
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.models import User
from core import metrics, threads
from core.api import exception_handler
from core.errors import ApplicationError, InvalidInput, Unavailable, is_outage
from core.loops import PerLoop, per_loop
from core.pubsub import _raise_if_cancelled
from core.threads import database_sync_to_async
from presence import services as presence
from transports import cursors
from transports.streams import MAX_BOARDS, MAX_PENDING, Stream, ping_seconds

logger = logging.getLogger(__name__)

_origins = AllowedHostsOriginValidator(None)


def _error(exc: Exception, request: Request) -> HttpResponse:
    response = exception_handler(exc, {"request": request, "view": None})
    if response is None:
        raise exc
    response.accepted_renderer = JSONRenderer()
    response.accepted_media_type = JSONRenderer.media_type
    response.renderer_context = {}  # type: ignore[attr-defined]  # DRF sets it in finalize_response
    response.render()
    return response


def _authenticate(request: HttpRequest) -> User | HttpResponse:
    """The user, or the error response REST would give (401 / 403 for a foreign Origin). Run on
    the database threads (core.threads), which give their connection back at once: the request's
    own thread must not keep one while the stream opens on those threads, or streams opening at
    once hold every connection of the pool and wait for more (a pool starvation, seen in
    tests/test_bench_smoke.py's SSE scenario)."""
    drf_request = Request(request, authenticators=[JWTAuthentication(), SessionAuthentication()])
    try:
        user = drf_request.user
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated()
        if isinstance(drf_request.successful_authenticator, SessionAuthentication):
            origin = request.headers.get("Origin")
            if origin is not None and not _origins.valid_origin(urlparse(origin)):
                raise exceptions.PermissionDenied("This origin may not use the session cookie here.")
    except Exception as exc:
        return _error(exc, drf_request)
    return user


def _position(request: HttpRequest, *names: str) -> str | None:
    """The resume position from the first of the query parameters `names` or Last-Event-ID."""
    for name in names:
        value = request.GET.get(name)
        if value:
            return value
    return request.headers.get("Last-Event-ID") or None


def _boards(request: HttpRequest) -> list[str]:
    """The boards asked for (`?boards=<id>,<id>`, at most MAX_BOARDS), canonical and in order."""
    raw = request.GET.get("boards", "")
    boards: list[str] = []
    for part in raw.split(",") if raw else ():
        try:
            board_id = str(uuid.UUID(part.strip()))
        except ValueError:
            raise InvalidInput("Boards are ids, separated by commas.", fields={"boards": ["Not a board id."]}) from None
        if board_id not in boards:
            boards.append(board_id)
    if len(boards) > MAX_BOARDS:
        message = f"At most {MAX_BOARDS} boards."
        raise InvalidInput(message, fields={"boards": [message]})
    return boards


def _check_position(position: str | None, field: str) -> None:
    if position is not None:
        try:
            cursors.parse(position)
        except cursors.BadPosition:
            raise InvalidInput("Not a position this server gave.", fields={field: ["Unknown cursor."]}) from None


class EventsApi(View):
    async def get(self, request: HttpRequest) -> HttpResponseBase:
        user = await database_sync_to_async(_authenticate)(request)
        if isinstance(user, HttpResponse):
            return user
        position = _position(request, "last_event_id")
        try:
            _check_position(position, "last_event_id")
            boards = _boards(request)
        except ApplicationError as error:
            return _error(error, Request(request))
        response = StreamingHttpResponse(_sse(user, position, boards), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response


def _sse_frame(text: str, event_id: str | None) -> str:
    return (f"id: {event_id}\n" if event_id is not None else "") + f"data: {text}\n\n"


async def _sse(user: User, position: str | None, boards: list[str]) -> AsyncIterator[bytes]:
    stream = Stream(user, boards)
    presence_id = f"sse-{uuid.uuid4().hex}"
    metrics.opened("sse")
    try:
        yield b"retry: 2000\n\n"  # the headers and a first byte go out at once
        try:
            await stream.open(position, live=True)
            await presence.presence_heartbeat(user=user, socket_id=presence_id, active=True)
            await threads.hand_back()  # a stream may last hours: it keeps no idle thread
        except Exception as error:
            if not is_outage(error):
                raise
            logger.warning("an event stream of user %s could not start: %s", user.pk, error)
            return  # the browser reconnects after `retry`
        beats = 0
        while True:
            _raise_if_cancelled()
            out = stream.take()
            if stream.overflowed:
                logger.info("ending an event stream of user %s: %s frames unread", user.pk, MAX_PENDING)
                metrics.SLOW["sse"].inc()
                return  # the browser reconnects with Last-Event-ID and catches up
            if out:
                yield "".join(_sse_frame(text, event_id) for text, event_id in out).encode()
                if stream.ended:
                    return
                await stream.rebase()
                continue
            try:
                async with asyncio.timeout(ping_seconds()):
                    await stream.wake.wait()
            except TimeoutError:
                yield b": ping\n\n"
                beats += 1
                if beats % 2 == 0:  # a presence lease lasts 60 s; sockets beat every 30 s
                    presence.heartbeats().beat(user=user, socket_id=presence_id, active=False)
    finally:
        metrics.closed("sse")
        await stream.close()
        try:
            await presence.presence_disconnect(user=user, socket_id=presence_id)
        except Exception:  # Redis away: the lease runs out by itself
            logger.debug("presence disconnect failed", exc_info=True)


@dataclass
class _Parked:
    stream: Stream
    timer: asyncio.TimerHandle


# Long-poll streams waiting for their client's next poll, by the cursor they answered with: the
# next poll with that cursor takes the stream and what it buffered meanwhile (unnumbered events
# too). Any other poll (another cursor, another process) resumes from PostgreSQL instead.
_parked: PerLoop[dict[str, _Parked]] = per_loop(dict)


def _park(cursor: str, stream: Stream) -> None:
    loop = asyncio.get_running_loop()

    def expire() -> None:
        parked = _parked().get(cursor)
        if parked is not None and parked.stream is stream:
            del _parked()[cursor]
            task = loop.create_task(stream.close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    old = _parked().pop(cursor, None)
    if old is not None:
        old.timer.cancel()
        expire_old = loop.create_task(old.stream.close())
        _closing.add(expire_old)
        expire_old.add_done_callback(_closing.discard)
    _parked()[cursor] = _Parked(stream, loop.call_later(settings.TRANSPORT_POLL_LINGER_SECONDS, expire))


_closing: set[asyncio.Task] = set()


def _unpark(cursor: str, user: User, boards: list[str]) -> Stream | None:
    parked = _parked().get(cursor)
    if parked is None or parked.stream.user.pk != user.pk or parked.stream.wanted != tuple(boards):
        return None  # (other boards asked for: resumed from PostgreSQL; the parked one expires)
    del _parked()[cursor]
    parked.timer.cancel()
    if parked.stream.overflowed:  # its client stayed away too long: resume from PostgreSQL
        metrics.SLOW["poll"].inc()
        _closing.add(task := asyncio.get_running_loop().create_task(parked.stream.close()))
        task.add_done_callback(_closing.discard)
        return None
    return parked.stream


class PollApi(View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        user = await database_sync_to_async(_authenticate)(request)
        if isinstance(user, HttpResponse):
            return user
        position = _position(request, "cursor")
        try:
            boards = _boards(request)
        except ApplicationError as error:
            return _error(error, Request(request))
        stream = _unpark(position, user, boards) if position is not None else None
        parked = False
        metrics.opened("poll")
        try:
            if stream is None:
                _check_position(position, "cursor")
                stream = Stream(user, boards)
                # A fresh start answers at once (session.ready): it needs no hub.
                await stream.open(position, live=position is not None)
                active = True
            else:
                active = False
            if stream.live and stream.position is not None:
                # A poller counts as connected while it keeps polling (the lease outlasts a wait).
                presence.heartbeats().beat(user=user, socket_id=f"poll-{stream.position.stream}", active=active)
            if not stream.out and not stream.ended:
                await threads.hand_back()
                try:
                    async with asyncio.timeout(settings.TRANSPORT_POLL_WAIT_SECONDS):
                        await stream.wake.wait()
                except TimeoutError:
                    pass
            out = stream.take()
            await stream.rebase()
            cursor = stream.position.encode() if stream.position is not None else position
            if not any(event_id for _, event_id in out) and position is not None and not stream.ended:
                cursor = position  # nothing moved: the same cursor
            if stream.live and not stream.ended and cursor is not None:
                _park(cursor, stream)
                parked = True
        except ApplicationError as error:
            return _error(error, Request(request))
        except Exception as error:
            if not is_outage(error):
                raise
            return _error(Unavailable(), Request(request))
        finally:
            metrics.closed("poll")
            if stream is not None and not parked:
                await stream.close()
        body = '{"cursor":' + json.dumps(cursor) + ',"events":[' + ",".join(text for text, _ in out) + "]}"
        return HttpResponse(body, content_type="application/json")
